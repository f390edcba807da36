//go:build cuda

package gpu

/*
#include "maskpost.cuh"
*/
import "C"

import (
	"fmt"
)

// MaskPostArgs are the device buffers of Stream.SAMMaskPost: the masks decoded for a batch
// of slices, grouped by slice, and the label volume they are scattered into.
type MaskPostArgs struct {
	Volume *Buffer // int16 labels [NZ][NY][NX], x fastest
	Shape  [3]int  // NX (the slices' w), NY (h), NZ
	Logits *Buffer // float32 [Masks][LowRes][LowRes], rows along y
	LowRes int
	Masks  int
	Labels *Buffer // int16 [Masks]: the label of each mask
	Starts *Buffer // int32 [Slices+1]: slice k's masks are [Starts[k], Starts[k+1])
	Z      *Buffer // int32 [Slices]: the distinct planes of Volume that the slices write
	Slices int
	Prob   *Buffer // workspace of at least 4*Masks*LowRes^2 bytes (the sigmoids)
}

// SAMMaskPost enqueues kernels.SAMMaskPost for every slice of a batch: slice k's masks go
// through the sigmoid, the composed resize to NY x NX, the threshold and the overlap rule,
// into plane Z[k] of Volume; pixels claimed by no mask keep their value. The kernel clamps
// Starts to [0, Masks] and skips planes outside [0, NZ), so malformed device tables cannot
// make it write out of bounds; Z must be distinct for a deterministic result.
func (s *Stream) SAMMaskPost(a MaskPostArgs) error {
	f, err := s.maskPostOp(a)
	if err != nil {
		return err
	}
	return s.enqueue("SAM mask post", f)
}

func (s *Stream) maskPostOp(a MaskPostArgs) (nativeOp, error) {
	bad := func(format string, v ...any) (nativeOp, error) {
		return nil, &Error{Op: "SAM mask post", Code: codeInvalid,
			Message: fmt.Sprintf(format, v...)}
	}
	w, h, nz := a.Shape[0], a.Shape[1], a.Shape[2]
	switch {
	case w < 1 || h < 1 || nz < 1 || h > 65535:
		return bad("shape %v: edges must be positive, NY at most 65535", a.Shape)
	case a.LowRes < 1 || a.LowRes > C.MLK_MASK_MAX_LOWRES:
		return bad("low-res size %d outside [1, %d]", a.LowRes, C.MLK_MASK_MAX_LOWRES)
	case a.Masks < 0 || a.Slices < 0 || a.Slices > 65535:
		return bad("%d masks, %d slices", a.Masks, a.Slices)
	case a.Volume.bytes < 2*shapeLen(a.Shape):
		return bad("volume of %d bytes for shape %v", a.Volume.bytes, a.Shape)
	case a.Logits.bytes < 4*a.Masks*a.LowRes*a.LowRes || a.Prob.bytes <
		4*a.Masks*a.LowRes*a.LowRes:
		return bad("logits or workspace too small for %d masks of %d^2", a.Masks, a.LowRes)
	case a.Labels.bytes < 2*a.Masks || a.Starts.bytes < 4*(a.Slices+1) ||
		a.Z.bytes < 4*a.Slices:
		return bad("labels, starts or planes too small for %d masks, %d slices", a.Masks,
			a.Slices)
	}
	return func(in *C.mlk_copy, nin C.int, out *C.mlk_copy, nout C.int,
		st *C.mlk_status) C.int {
		return C.mlk_mask_post_batch(s.d.dev(), s.s, in, nin, out, nout, a.Volume.ptr,
			C.int(w), C.int(h), C.int(nz), a.Logits.ptr, C.int(a.LowRes), C.int(a.Masks),
			a.Labels.ptr, a.Starts.ptr, a.Z.ptr, C.int(a.Slices), a.Prob.ptr,
			C.size_t(a.Prob.bytes), st)
	}, nil
}

// MaskSlice is the decoder output of one slice for Device.SAMMaskPostSlices.
type MaskSlice struct {
	Z      int       // the plane of the label volume
	Logits []float32 // len(Labels) masks of LowRes^2 logits
	Labels []int16
}

// SAMMaskPost is kernels.SAMMaskPost on the GPU for one slice: dst is the slice's h*w
// labels, row-major. It is SAMMaskPostSlices with one slice.
func (d *Device) SAMMaskPost(dst []int16, h, w int, logits []float32, lowRes int,
	labels []int16) error {
	if h <= 0 || w <= 0 || len(dst)/w != h || len(dst) != h*w {
		return fmt.Errorf("gpu: SAM mask post: dst has %d values for %dx%d", len(dst), h, w)
	}
	return d.SAMMaskPostSlices(dst, [3]int{w, h, 1}, lowRes,
		[]MaskSlice{{Z: 0, Logits: logits, Labels: labels}})
}

// SAMMaskPostSlices applies kernels.SAMMaskPost to every slice of a batch of a label volume
// vol (shape [NX, NY, NZ], x fastest; slice planes are NY rows of NX): slice k's masks are
// scattered into plane slices[k].Z, which must be distinct. One native call copies the
// touched planes and the masks in, post-processes them and copies the planes back; the
// other planes are not moved. Results equal the CPU kernel's (see kernels/cuda/maskpost.cu
// for the one-ulp sigmoid caveat).
func (d *Device) SAMMaskPostSlices(vol []int16, shape [3]int, lowRes int,
	slices []MaskSlice) error {
	w, h, nz := shape[0], shape[1], shape[2]
	if w <= 0 || h <= 0 || nz <= 0 || len(vol)/w/h != nz || len(vol) != w*h*nz {
		return fmt.Errorf("gpu: SAM mask post: %d labels for shape %v", len(vol), shape)
	}
	if lowRes <= 0 || lowRes > C.MLK_MASK_MAX_LOWRES {
		return fmt.Errorf("gpu: SAM mask post: low-res size %d outside [1, %d]", lowRes,
			C.MLK_MASK_MAX_LOWRES)
	}
	per := lowRes * lowRes
	masks := 0
	seen := make(map[int]bool, len(slices))
	for k, sl := range slices {
		if sl.Z < 0 || sl.Z >= nz || seen[sl.Z] {
			return fmt.Errorf("gpu: SAM mask post: slices[%d].Z = %d outside [0, %d) or "+
				"repeated", k, sl.Z, nz)
		}
		seen[sl.Z] = true
		if len(sl.Logits)/per != len(sl.Labels) || len(sl.Logits) != len(sl.Labels)*per {
			return fmt.Errorf("gpu: SAM mask post: slices[%d]: %d logits for %d masks of "+
				"%dx%d", k, len(sl.Logits), len(sl.Labels), lowRes, lowRes)
		}
		masks += len(sl.Labels)
	}
	if masks == 0 {
		return nil
	}
	plane, n := w*h, len(slices)
	b := d.newBatch()
	defer b.release()
	hVol, dVol, err := b.inout(2 * n * plane)
	if err != nil {
		return err
	}
	hLog, dLog, err := b.input(4 * masks * per)
	if err != nil {
		return err
	}
	// The tables travel as one block: starts [n+1] int32, planes [n] int32, labels int16.
	offZ, offLab := 4*(n+1), 4*(2*n+1)
	hMeta, dMeta, err := b.input(offLab + 2*masks)
	if err != nil {
		return err
	}
	prob, err := b.device(4 * masks * per)
	if err != nil {
		return err
	}
	starts, _ := dMeta.View(0, offZ)
	zs, _ := dMeta.View(offZ, offLab-offZ)
	labels, _ := dMeta.View(offLab, 2*masks)
	f, err := d.stream.maskPostOp(MaskPostArgs{Volume: dVol, Shape: [3]int{w, h, n},
		Logits: dLog, LowRes: lowRes, Masks: masks, Labels: labels, Starts: starts, Z: zs,
		Slices: n, Prob: prob})
	if err != nil {
		return err
	}
	hv, hl := hVol.Int16s(), hLog.Float32s()
	meta := hMeta.Int32s()
	hLab := hMeta.Int16s()[offLab/2:]
	m := 0
	for k, sl := range slices {
		copy(hv[k*plane:(k+1)*plane], vol[sl.Z*plane:(sl.Z+1)*plane])
		copy(hl[m*per:], sl.Logits)
		copy(hLab[m:], sl.Labels)
		meta[k] = int32(m)
		meta[n+1+k] = int32(k) // the compact plane of the staged block
		m += len(sl.Labels)
	}
	meta[n] = int32(m)
	if err := b.run("SAM mask post", f); err != nil {
		return err
	}
	for k, sl := range slices {
		copy(vol[sl.Z*plane:(sl.Z+1)*plane], hv[k*plane:(k+1)*plane])
	}
	return nil
}
