//go:build cuda

package gpu

/*
#include "resample.cuh"
#include "intensity.cuh"
*/
import "C"

import (
	"fmt"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// The device-resident operations: each enqueues one batch on the stream and returns; the
// buffers must stay open until the stream has passed the work.

func shapeLen(s [3]int) int { return s[0] * s[1] * s[2] }

// Resample enqueues kernels.ResampleTrilinear (nearest false) or kernels.ResampleNearest
// (nearest true) of src (float32, srcShape) into dst (dstShape), as device buffers.
func (s *Stream) Resample(dst *Buffer, dstShape [3]int, src *Buffer, srcShape [3]int,
	r [3]float64, nearest bool) error {
	op, f, err := s.resampleOp(dst, dstShape, src, srcShape, r, nearest)
	if err != nil {
		return err
	}
	return s.enqueue(op, f)
}

func (s *Stream) resampleOp(dst *Buffer, dstShape [3]int, src *Buffer, srcShape [3]int,
	r [3]float64, nearest bool) (string, nativeOp, error) {
	op, mode := "resample trilinear", C.int(C.MLK_RESAMPLE_TRILINEAR)
	if nearest {
		op, mode = "resample nearest", C.MLK_RESAMPLE_NEAREST
	}
	if want, err := kernels.ResampleShape(srcShape, r); err != nil {
		return op, nil, &Error{Op: op, Code: codeInvalid, Message: err.Error()}
	} else if want != dstShape {
		return op, nil, &Error{Op: op, Code: codeInvalid, Message: fmt.Sprintf(
			"dst shape %v, want %v for src shape %v and ratios %v", dstShape, want, srcShape,
			r)}
	}
	if 4*shapeLen(srcShape) > src.bytes || 4*shapeLen(dstShape) > dst.bytes {
		return op, nil, &Error{Op: op, Code: codeInvalid, Message: fmt.Sprintf("buffers of %d and %d"+
			" bytes are too small for src %v and dst %v", src.bytes, dst.bytes, srcShape,
			dstShape)}
	}
	return op, func(in *C.mlk_copy, nin C.int, out *C.mlk_copy, nout C.int,
		st *C.mlk_status) C.int {
		return C.mlk_resample_batch(s.d.dev(), s.s, in, nin, out, nout, mode, dst.ptr,
			C.int(dstShape[0]), C.int(dstShape[1]), C.int(dstShape[2]), src.ptr,
			C.int(srcShape[0]), C.int(srcShape[1]), C.int(srcShape[2]), C.double(r[0]),
			C.double(r[1]), C.double(r[2]), st)
	}, nil
}

// NormalizeHU enqueues kernels.NormalizeHU of n float32 values; dst may be src.
func (s *Stream) NormalizeHU(dst, src *Buffer, n int) error {
	f, err := s.normalizeHUOp(dst, src, n)
	if err != nil {
		return err
	}
	return s.enqueue("normalize HU", f)
}

func (s *Stream) normalizeHUOp(dst, src *Buffer, n int) (nativeOp, error) {
	if n < 0 || 4*n > dst.bytes || 4*n > src.bytes {
		return nil, &Error{Op: "normalize HU", Code: codeInvalid,
			Message: fmt.Sprintf("%d values do not fit the buffers", n)}
	}
	return func(in *C.mlk_copy, nin C.int, out *C.mlk_copy, nout C.int,
		st *C.mlk_status) C.int {
		return C.mlk_normalize_hu_batch(s.d.dev(), s.s, in, nin, out, nout, dst.ptr, src.ptr,
			C.size_t(n), st)
	}, nil
}

// SAMWindow enqueues kernels.SAMWindow (asFloat false: dst holds n uint8) or
// kernels.SAMWindowFloat (asFloat true: n float32; dst may be src) of the whole volume src
// of n float32 values. scratch (8 bytes or more) receives the volume's min and max.
func (s *Stream) SAMWindow(dst, src *Buffer, n int, asFloat bool, scratch *Buffer) error {
	f, err := s.samWindowOp(dst, src, n, asFloat, scratch)
	if err != nil {
		return err
	}
	return s.enqueue("SAM window", f)
}

func (s *Stream) samWindowOp(dst, src *Buffer, n int, asFloat bool,
	scratch *Buffer) (nativeOp, error) {
	kind, size := C.int(C.MLK_OUT_U8), 1
	if asFloat {
		kind, size = C.MLK_OUT_F32, 4
	}
	if n < 0 || size*n > dst.bytes || 4*n > src.bytes || scratch.bytes < 8 {
		return nil, &Error{Op: "SAM window", Code: codeInvalid,
			Message: fmt.Sprintf("%d values or the min/max do not fit the buffers", n)}
	}
	return func(in *C.mlk_copy, nin C.int, out *C.mlk_copy, nout C.int,
		st *C.mlk_status) C.int {
		return C.mlk_sam_window_batch(s.d.dev(), s.s, in, nin, out, nout, kind, dst.ptr,
			src.ptr, C.size_t(n), scratch.ptr, st)
	}, nil
}

// staged runs one batch for a slice method in a single native call: fill writes the input
// (nIn bytes) into pooled pinned memory, op binds the kernel to the pooled device input and
// output (nOut bytes), and read receives the pinned result after the call, which copied in,
// ran the kernel, copied out and waited for the device's stream.
func (d *Device) staged(name string, nIn, nOut int, fill func(h *HostBuffer),
	op func(s *Stream, in, out *Buffer) (nativeOp, error), read func(h *HostBuffer)) error {
	b := d.newBatch()
	defer b.release()
	hIn, in, err := b.input(nIn)
	if err != nil {
		return err
	}
	hOut, out, err := b.output(nOut)
	if err != nil {
		return err
	}
	f, err := op(d.stream, in, out)
	if err != nil {
		return err
	}
	fill(hIn)
	if err := b.run(name, f); err != nil {
		return err
	}
	read(hOut)
	return nil
}

func (d *Device) resample(op string, dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int, r [3]float64, nearest bool) error {
	want, err := kernels.ResampleShape(srcShape, r)
	if err != nil {
		return fmt.Errorf("gpu: %s: %w", op, err)
	}
	switch {
	case want != dstShape:
		return fmt.Errorf("gpu: %s: dst shape %v, want %v for src shape %v and ratios %v", op,
			dstShape, want, srcShape, r)
	case len(src) != shapeLen(srcShape):
		return fmt.Errorf("gpu: %s: src has %d voxels, shape %v needs %d", op, len(src),
			srcShape, shapeLen(srcShape))
	case len(dst) != shapeLen(dstShape):
		return fmt.Errorf("gpu: %s: dst has %d voxels, shape %v needs %d", op, len(dst),
			dstShape, shapeLen(dstShape))
	}
	return d.staged(op, 4*len(src), 4*len(dst),
		func(h *HostBuffer) { copy(h.Float32s(), src) },
		func(s *Stream, in, out *Buffer) (nativeOp, error) {
			_, f, err := s.resampleOp(out, dstShape, in, srcShape, r, nearest)
			return f, err
		},
		func(h *HostBuffer) { copy(dst, h.Float32s()) })
}

// ResampleTrilinear is kernels.ResampleTrilinear on the GPU, same arguments and results
// (bit for bit: see kernels/cuda/resample.cu).
func (d *Device) ResampleTrilinear(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int, r [3]float64) error {
	return d.resample("resample trilinear", dst, dstShape, src, srcShape, r, false)
}

// ResampleNearest is kernels.ResampleNearest on the GPU.
func (d *Device) ResampleNearest(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int, r [3]float64) error {
	return d.resample("resample nearest", dst, dstShape, src, srcShape, r, true)
}

// NormalizeHU is kernels.NormalizeHU on the GPU; dst may be src.
func (d *Device) NormalizeHU(dst, src []float32) error {
	if len(dst) != len(src) {
		return fmt.Errorf("gpu: normalize HU: dst has %d values, src %d", len(dst), len(src))
	}
	if len(src) == 0 {
		return nil
	}
	return d.staged("normalize HU", 4*len(src), 4*len(dst),
		func(h *HostBuffer) { copy(h.Float32s(), src) },
		func(s *Stream, in, out *Buffer) (nativeOp, error) {
			return s.normalizeHUOp(out, in, len(src))
		},
		func(h *HostBuffer) { copy(dst, h.Float32s()) })
}

func (d *Device) samWindow(n int, asFloat bool, src []float32, read func(h *HostBuffer)) error {
	size := 1
	if asFloat {
		size = 4
	}
	scratch, err := d.pool.Device(8)
	if err != nil {
		return err
	}
	defer d.pool.PutDevice(scratch)
	return d.staged("SAM window", 4*n, size*n,
		func(h *HostBuffer) { copy(h.Float32s(), src) },
		func(s *Stream, in, out *Buffer) (nativeOp, error) {
			return s.samWindowOp(out, in, n, asFloat, scratch)
		}, read)
}

// SAMWindow is kernels.SAMWindow on the GPU: pass the whole volume.
func (d *Device) SAMWindow(dst []uint8, src []float32) error {
	if len(dst) != len(src) {
		return fmt.Errorf("gpu: SAM window: dst has %d values, src %d", len(dst), len(src))
	}
	if len(src) == 0 {
		return nil
	}
	return d.samWindow(len(src), false, src, func(h *HostBuffer) { copy(dst, h.Bytes()) })
}

// SAMWindowFloat is kernels.SAMWindowFloat on the GPU; dst may be src.
func (d *Device) SAMWindowFloat(dst, src []float32) error {
	if len(dst) != len(src) {
		return fmt.Errorf("gpu: SAM window: dst has %d values, src %d", len(dst), len(src))
	}
	if len(src) == 0 {
		return nil
	}
	return d.samWindow(len(src), true, src, func(h *HostBuffer) { copy(dst, h.Float32s()) })
}
