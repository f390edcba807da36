package kernels

import (
	"fmt"
	"math"
)

// SAMImageSize is the edge of the square image the SAM / MedSAM ViT-B encoder takes.
const SAMImageSize = 1024

// SAM's per-channel pixel normalisation (RGB order): the encoder sees (v - mean) / std.
var (
	SAMPixelMean = [3]float64{123.675, 116.28, 103.53}
	SAMPixelStd  = [3]float64{58.395, 57.12, 57.375}
)

// truncBias is added before truncating a resampled grey value to an integer, so that a
// weighted average of equal integers (weights summing to 1 up to float32 rounding) stays
// that integer instead of dropping by one.
const truncBias = 1.0 / 1024

// Taps holds a separable 1D resampling filter: output index o reads source indices
// Index[Start[o]:Start[o+1]] with weights Weight[Start[o]:Start[o+1]] (they sum to 1).
type Taps struct {
	Start  []int32
	Index  []int32
	Weight []float32
}

// LinearTaps returns the filter that resizes n samples to m along one axis with bilinear
// interpolation on half-pixel centres: output o samples source position
// x = (o + 0.5) * n/m - 0.5, the convention of torch's interpolate(align_corners=False)
// and of skimage's resize. For upsampling (m >= n) the weights are the two linear ones, and a
// position before the first or after the last sample takes the edge sample. For downsampling
// (m < n) the triangle is widened by the factor n/m, so every source sample within n/m of x
// contributes, weighted by 1 - |j - x| / (n/m), with the weights of the taps inside the image
// renormalised to sum to 1: the antialiased bilinear filter of torch's
// interpolate(antialias=True) and of PIL. Weights are computed in float64 and stored as
// float32. n and m must be positive.
func LinearTaps(n, m int) (Taps, error) {
	if n <= 0 || m <= 0 {
		return Taps{}, fmt.Errorf("kernels: linear taps: sizes %d -> %d must be positive", n, m)
	}
	scale := float64(n) / float64(m)
	support := max(scale, 1)
	t := Taps{Start: make([]int32, 1, m+1)}
	var ws []float64
	for o := 0; o < m; o++ {
		x := (float64(o)+0.5)*scale - 0.5
		lo := int(math.Floor(x-support)) + 1
		hi := int(math.Ceil(x+support)) - 1
		ws = ws[:0]
		var sum float64
		for j := max(lo, 0); j <= min(hi, n-1); j++ {
			w := 1 - math.Abs(float64(j)-x)/support
			if w <= 0 {
				continue
			}
			t.Index = append(t.Index, int32(j))
			ws = append(ws, w)
			sum += w
		}
		if len(ws) == 0 { // x lies beyond the edge by at least one sample: take the edge
			j := min(max(int(math.Round(x)), 0), n-1)
			t.Index = append(t.Index, int32(j))
			ws = append(ws, 1)
			sum = 1
		}
		for _, w := range ws {
			t.Weight = append(t.Weight, float32(w/sum))
		}
		t.Start = append(t.Start, int32(len(t.Index)))
	}
	return t, nil
}

// samNormTable maps a grey value 0..255 to the three normalised channel values.
func samNormTable() [3][256]float32 {
	var tab [3][256]float32
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			tab[c][v] = float32((float64(v) - SAMPixelMean[c]) / SAMPixelStd[c])
		}
	}
	return tab
}

// SAMPreprocess turns slices of an 8-bit windowed CT volume into the SAM encoder's input
// batch, in one pass per output row: slice k of win (the (j, i) plane, H = NY rows and
// W = NX columns, row j holding voxels i = 0..NX-1, exactly the array the reference reads as
// image[k] of SimpleITK's (z, y, x) array, with no transpose or flip) is resized to
// SAMImageSize x SAMImageSize with LinearTaps along each axis (rows first, then columns),
// truncated to an integer grey value as the reference's uint8 cast does, copied to the three
// channels and normalised with SAMPixelMean and SAMPixelStd. Batch entry b of dst is
// slices[b], in the layout [len(slices), 3, 1024, 1024] (channel planes, rows, columns).
//
// win is the whole volume windowed by SAMWindow, shape [NX, NY, NZ] with i fastest; dst must
// hold exactly len(slices)*3*1024*1024 values. The reference resizes with skimage's
// resize(order=3, anti_aliasing=True): a cubic spline, which rings slightly at edges, where
// this kernel interpolates linearly (engine/segment's documentation gives the measured
// effect on the masks). Work is split over Workers() goroutines by output row.
func SAMPreprocess(dst []float32, win []uint8, shape [3]int, slices []int) error {
	nx, ny, nz := shape[0], shape[1], shape[2]
	if nx <= 0 || ny <= 0 || nz <= 0 {
		return fmt.Errorf("kernels: SAM preprocess: shape %v must be positive", shape)
	}
	if nx > math.MaxInt32 || ny > math.MaxInt32 || len(win)/nx/ny != nz ||
		len(win) != nx*ny*nz {
		return fmt.Errorf("kernels: SAM preprocess: %d voxels for shape %v", len(win), shape)
	}
	const S = SAMImageSize
	if len(dst) != len(slices)*3*S*S {
		return fmt.Errorf("kernels: SAM preprocess: dst has %d values, %d slices need %d",
			len(dst), len(slices), len(slices)*3*S*S)
	}
	for b, k := range slices {
		if k < 0 || k >= nz {
			return fmt.Errorf("kernels: SAM preprocess: slices[%d] = %d outside [0, %d)",
				b, k, nz)
		}
	}
	rows, err := LinearTaps(ny, S)
	if err != nil {
		return err
	}
	cols, err := LinearTaps(nx, S)
	if err != nil {
		return err
	}
	tab := samNormTable()
	plane := nx * ny
	ParallelFor(len(slices)*S, 16, func(lo, hi int) {
		buf := make([]float32, nx)
		for n := lo; n < hi; n++ {
			b, r := n/S, n%S
			src := win[slices[b]*plane : (slices[b]+1)*plane]
			// Vertical pass: blend the source rows of output row r.
			clear(buf)
			for t := rows.Start[r]; t < rows.Start[r+1]; t++ {
				w, row := rows.Weight[t], src[int(rows.Index[t])*nx:][:nx]
				for i, v := range row {
					buf[i] += w * float32(v)
				}
			}
			// Horizontal pass, truncation and normalisation into the three channels.
			out := dst[(b*3*S+r)*S:]
			o0, o1, o2 := out[:S], out[S*S:][:S], out[2*S*S:][:S]
			for c := 0; c < S; c++ {
				var v float32
				for t := cols.Start[c]; t < cols.Start[c+1]; t++ {
					v += cols.Weight[t] * buf[cols.Index[t]]
				}
				g := min(int(v+truncBias), 255)
				o0[c], o1[c], o2[c] = tab[0][g], tab[1][g], tab[2][g]
			}
		}
	})
	return nil
}
