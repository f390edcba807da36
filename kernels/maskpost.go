package kernels

import (
	"fmt"
	"math"
)

// MaskMap is the composed mapping of SAM's post-processing along one axis: output pixel o of
// the slice reads the low-resolution logits at L0[o] and L1[o] with weights W0[o], W1[o].
type MaskMap struct {
	L0, L1 []int32
	W0, W1 []float32
}

// NewMaskMap composes the two resizes of the reference's post-processing along one axis of
// n output pixels, from low-resolution masks of lowRes samples:
//
//  1. bilinear from lowRes to SAMImageSize with align_corners=False (torch's interpolate):
//     pixel s of the 1024 grid samples x = max(0, (s + 0.5) * lowRes/1024 - 0.5), between
//     floor(x) and min(floor(x) + 1, lowRes-1) with weights 1 - frac(x) and frac(x);
//  2. nearest from SAMImageSize to n as OpenCV's INTER_NEAREST does it: output o takes
//     pixel s = floor(o * 1024 / n) (no half-pixel offset), computed exactly in integers.
//
// Nearest only selects pixels, so evaluating step 1 at the selected s is exactly the two
// steps in sequence, without the 1024 x 1024 intermediate.
func NewMaskMap(n, lowRes int) (MaskMap, error) {
	if n <= 0 || lowRes <= 0 || n > math.MaxInt32/SAMImageSize {
		return MaskMap{}, fmt.Errorf("kernels: mask map: sizes %d, %d must be positive and "+
			"at most %d", n, lowRes, math.MaxInt32/SAMImageSize)
	}
	m := MaskMap{L0: make([]int32, n), L1: make([]int32, n), W0: make([]float32, n),
		W1: make([]float32, n)}
	scale := float32(lowRes) / SAMImageSize
	for o := 0; o < n; o++ {
		s := o * SAMImageSize / n
		x := max((float32(s)+0.5)*scale-0.5, 0)
		x0 := int32(x)
		m.L0[o], m.L1[o] = x0, min(x0+1, int32(lowRes-1))
		m.W1[o] = x - float32(x0)
		m.W0[o] = 1 - m.W1[o]
	}
	return m, nil
}

// SAMMaskPost turns the low-resolution mask logits of the boxes decoded on one slice into
// that slice's labels: each box's logits [lowRes, lowRes] (row-major, rows = the slice's j
// axis) go through a sigmoid, then NewMaskMap's composed bilinear-then-nearest resize to
// h x w, and a pixel belongs to the box when its probability exceeds 0.5, the reference's
// order of operations (sigmoid before interpolation, so this is not the same as thresholding
// interpolated logits at 0 where the two neighbours' logits differ in sign and magnitude).
//
// Overlap rule: a pixel claimed by several boxes takes the label of the box with the highest
// probability there; on equal probabilities the box earlier in logits wins. Pixels claimed by
// no box are left as they are in dst.
//
// dst is the slice's h*w labels, row-major (row j, column i); logits holds len(labels)
// masks of lowRes*lowRes values and labels their labels. SAMMaskPost reads logits without
// modifying it, allocates len(logits) float32 values of scratch, and splits the rows over
// Workers() goroutines.
func SAMMaskPost(dst []int16, h, w int, logits []float32, lowRes int, labels []int16) error {
	if h <= 0 || w <= 0 || lowRes <= 0 {
		return fmt.Errorf("kernels: SAM mask post: sizes %dx%d, low-res %d must be positive",
			h, w, lowRes)
	}
	if len(dst)/w != h || len(dst) != h*w {
		return fmt.Errorf("kernels: SAM mask post: dst has %d values for %dx%d", len(dst), h, w)
	}
	per := lowRes * lowRes
	if len(logits)/lowRes/lowRes != len(labels) || len(logits) != len(labels)*per {
		return fmt.Errorf("kernels: SAM mask post: %d logits for %d masks of %dx%d",
			len(logits), len(labels), lowRes, lowRes)
	}
	if len(labels) == 0 {
		return nil
	}
	rows, err := NewMaskMap(h, lowRes)
	if err != nil {
		return err
	}
	cols, err := NewMaskMap(w, lowRes)
	if err != nil {
		return err
	}
	prob := make([]float32, len(logits))
	ParallelFor(len(logits), elemGrain, func(a, b int) {
		for i, v := range logits[a:b] {
			prob[a+i] = float32(1 / (1 + math.Exp(-float64(v))))
		}
	})
	ParallelFor(h, 8, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			out := dst[r*w : (r+1)*w]
			y0, y1 := int(rows.L0[r])*lowRes, int(rows.L1[r])*lowRes
			h0, h1 := rows.W0[r], rows.W1[r]
			for c := range out {
				x0, x1 := int(cols.L0[c]), int(cols.L1[c])
				w0, w1 := cols.W0[c], cols.W1[c]
				best, win := float32(0.5), -1
				for b := range labels {
					p := prob[b*per:][:per]
					v := h0*(w0*p[y0+x0]+w1*p[y0+x1]) + h1*(w0*p[y1+x0]+w1*p[y1+x1])
					if v > best {
						best, win = v, b
					}
				}
				if win >= 0 {
					out[c] = labels[win]
				}
			}
		}
	})
	return nil
}
