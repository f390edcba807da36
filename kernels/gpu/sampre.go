//go:build cuda

package gpu

/*
#include "sampre.cuh"
*/
import "C"

import (
	"fmt"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// samPlane is the number of values of one channel plane of the encoder input.
const samPlane = kernels.SAMImageSize * kernels.SAMImageSize

// SAMPreprocessWorkspace returns the bytes of device workspace that Stream.SAMPreprocess
// needs for slices of nx x ny voxels, or 0 when a size is out of range.
func SAMPreprocessWorkspace(nx, ny int) int {
	if nx < 1 || ny < 1 || nx > C.MLK_SAM_MAX_EDGE || ny > C.MLK_SAM_MAX_EDGE {
		return 0
	}
	return int(C.mlk_sam_preprocess_workspace(C.int(nx), C.int(ny)))
}

// SAMPreprocess enqueues kernels.SAMPreprocess of slices of the uint8 windowed volume win
// (shape [NX, NY, NZ], i fastest) into dst, [len(slices)][3][1024][1024] of float32 (half
// false) or of IEEE half floats (half true: each float32 value rounded to nearest even), as
// device buffers; ws is workspace of at least SAMPreprocessWorkspace(NX, NY) bytes, which
// the stream uses until it has passed the work. The float32 output equals the CPU kernel's
// bit for bit.
func (s *Stream) SAMPreprocess(dst *Buffer, half bool, win *Buffer, shape [3]int,
	slices []int, ws *Buffer) error {
	f, err := s.samPreprocessOp(dst, half, win, shape, slices, ws)
	if err != nil {
		return err
	}
	return s.enqueue("SAM preprocess", f)
}

func (s *Stream) samPreprocessOp(dst *Buffer, half bool, win *Buffer, shape [3]int,
	slices []int, ws *Buffer) (nativeOp, error) {
	bad := func(format string, a ...any) (nativeOp, error) {
		return nil, &Error{Op: "SAM preprocess", Code: codeInvalid,
			Message: fmt.Sprintf(format, a...)}
	}
	kind, size := C.int(C.MLK_SAM_F32), 4
	if half {
		kind, size = C.MLK_SAM_F16, 2
	}
	need := SAMPreprocessWorkspace(shape[0], shape[1])
	switch {
	case need == 0 || shape[2] < 1:
		return bad("shape %v: edges must be in [1, %d]", shape, C.MLK_SAM_MAX_EDGE)
	case len(slices) == 0:
		return bad("no slices")
	case win.bytes < shapeLen(shape):
		return bad("win of %d bytes holds no volume of shape %v", win.bytes, shape)
	case dst.bytes < len(slices)*3*samPlane*size:
		return bad("dst of %d bytes is too small for %d slices", dst.bytes, len(slices))
	case ws.bytes < need:
		return bad("workspace of %d bytes, %d needed", ws.bytes, need)
	}
	zs := make([]C.int, len(slices))
	for b, k := range slices {
		if k < 0 || k >= shape[2] {
			return bad("slices[%d] = %d outside [0, %d)", b, k, shape[2])
		}
		zs[b] = C.int(k)
	}
	return func(in *C.mlk_copy, nin C.int, out *C.mlk_copy, nout C.int,
		st *C.mlk_status) C.int {
		return C.mlk_sam_preprocess_batch(s.d.dev(), s.s, in, nin, out, nout, kind, dst.ptr,
			win.ptr, C.int(shape[0]), C.int(shape[1]), C.int(shape[2]), &zs[0],
			C.int(len(zs)), ws.ptr, C.size_t(ws.bytes), st)
	}, nil
}

// samPreprocess checks the arguments as kernels.SAMPreprocess does, then makes one native
// call: the selected slices go in as one pinned block (only they cross the bus), are
// preprocessed, and the encoder input comes back into pinned memory for read.
func (d *Device) samPreprocess(outLen int, half bool, win []uint8, shape [3]int,
	slices []int, read func(h *HostBuffer)) error {
	nx, ny, nz := shape[0], shape[1], shape[2]
	if nx <= 0 || ny <= 0 || nz <= 0 {
		return fmt.Errorf("gpu: SAM preprocess: shape %v must be positive", shape)
	}
	if len(win)/nx/ny != nz || len(win) != nx*ny*nz {
		return fmt.Errorf("gpu: SAM preprocess: %d voxels for shape %v", len(win), shape)
	}
	if outLen != len(slices)*3*samPlane {
		return fmt.Errorf("gpu: SAM preprocess: dst has %d values, %d slices need %d",
			outLen, len(slices), len(slices)*3*samPlane)
	}
	for b, k := range slices {
		if k < 0 || k >= nz {
			return fmt.Errorf("gpu: SAM preprocess: slices[%d] = %d outside [0, %d)", b, k, nz)
		}
	}
	if len(slices) == 0 {
		return nil
	}
	size := 4
	if half {
		size = 2
	}
	plane := nx * ny
	b := d.newBatch()
	defer b.release()
	hIn, in, err := b.input(len(slices) * plane)
	if err != nil {
		return err
	}
	hOut, out, err := b.output(len(slices) * 3 * samPlane * size)
	if err != nil {
		return err
	}
	ws, err := b.device(SAMPreprocessWorkspace(nx, ny))
	if err != nil {
		return err
	}
	compact := make([]int, len(slices))
	for i := range compact {
		compact[i] = i
	}
	f, err := d.stream.samPreprocessOp(out, half, in, [3]int{nx, ny, len(slices)}, compact,
		ws)
	if err != nil {
		return err
	}
	hb := hIn.Bytes()
	for i, k := range slices {
		copy(hb[i*plane:(i+1)*plane], win[k*plane:(k+1)*plane])
	}
	if err := b.run("SAM preprocess", f); err != nil {
		return err
	}
	read(hOut)
	return nil
}

// SAMPreprocess is kernels.SAMPreprocess on the GPU, same arguments and the same float32
// values bit for bit, in one native call for the whole batch of slices.
func (d *Device) SAMPreprocess(dst []float32, win []uint8, shape [3]int, slices []int) error {
	return d.samPreprocess(len(dst), false, win, shape, slices,
		func(h *HostBuffer) { copy(dst, h.Float32s()) })
}

// SAMPreprocessHalf is SAMPreprocess with the encoder input as IEEE half floats (the bits
// of each float32 value of SAMPreprocess rounded to nearest even), for an fp16 engine.
func (d *Device) SAMPreprocessHalf(dst []uint16, win []uint8, shape [3]int,
	slices []int) error {
	return d.samPreprocess(len(dst), true, win, shape, slices,
		func(h *HostBuffer) { copy(dst, h.Uint16s()) })
}
