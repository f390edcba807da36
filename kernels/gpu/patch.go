//go:build cuda

package gpu

/*
#include "patch.cuh"
#include "intensity.cuh"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The device operations of MedLAM's localisation (kernels/cuda/patch.cu): the volume's
// reorientation, the crops of the padded 3 mm grid and the reads of the grid at points, and
// the min/max that decides whether a volume is raw HU.

func invalid(op, format string, args ...any) error {
	return &Error{Op: op, Code: codeInvalid, Message: fmt.Sprintf(format, args...)}
}

// ReorientedShape is the shape of a volume of shape after Reorient with perm.
func ReorientedShape(shape, perm [3]int) [3]int {
	return [3]int{shape[perm[0]], shape[perm[1]], shape[perm[2]]}
}

// Reorient enqueues the reorientation of src (float32, shape, i fastest) into dst as
// engine/volume's Reorientation.Apply with that Perm and Flip: dst axis n runs along src
// axis perm[n], backwards where flip[n]. dst and src must not overlap.
func (s *Stream) Reorient(dst, src *Buffer, shape, perm [3]int, flip [3]bool) error {
	f, err := s.reorientOp(dst, src, shape, perm, flip)
	if err != nil {
		return err
	}
	return s.enqueue("reorient", f)
}

func (s *Stream) reorientOp(dst, src *Buffer, shape, perm [3]int,
	flip [3]bool) (nativeOp, error) {
	n := shapeLen(shape)
	if shape[0] <= 0 || shape[1] <= 0 || shape[2] <= 0 || 4*n > src.bytes || 4*n > dst.bytes {
		return nil, invalid("reorient", "shape %v does not fit buffers of %d and %d bytes",
			shape, src.bytes, dst.bytes)
	}
	var p, fl [3]C.int
	for a := range 3 {
		p[a] = C.int(perm[a])
		if flip[a] {
			fl[a] = 1
		}
	}
	return func(in *C.mlk_copy, nin C.int, out *C.mlk_copy, nout C.int,
		st *C.mlk_status) C.int {
		return C.mlk_reorient_batch(s.d.dev(), s.s, in, nin, out, nout, dst.ptr, src.ptr,
			C.int(shape[0]), C.int(shape[1]), C.int(shape[2]), &p[0], &fl[0], st)
	}, nil
}

// CropPatches enqueues kernels.CropPatches: n patches of edge^3 float32 into dst, cut from
// grid (extent dims, C order) around centres, a device buffer of n (z, y, x) int32 triples.
func (s *Stream) CropPatches(dst, grid *Buffer, dims [3]int, centres *Buffer, n, offset,
	edge int) error {
	f, err := s.cropOp(dst, grid, dims, centres, n, offset, edge)
	if err != nil {
		return err
	}
	return s.enqueue("crop patches", f)
}

func (s *Stream) cropOp(dst, grid *Buffer, dims [3]int, centres *Buffer, n, offset,
	edge int) (nativeOp, error) {
	if dims[0] <= 0 || dims[1] <= 0 || dims[2] <= 0 || 4*shapeLen(dims) > grid.bytes ||
		n < 1 || edge < 1 || edge > 1024 || 12*n > centres.bytes ||
		4*n*edge*edge*edge > dst.bytes {
		return nil, invalid("crop patches", "%d patches of %d^3 from a grid of %v do not fit "+
			"buffers of %d (dst), %d (grid) and %d (centres) bytes", n, edge, dims, dst.bytes,
			grid.bytes, centres.bytes)
	}
	return func(in *C.mlk_copy, nin C.int, out *C.mlk_copy, nout C.int,
		st *C.mlk_status) C.int {
		return C.mlk_crop_patches_batch(s.d.dev(), s.s, in, nin, out, nout, dst.ptr, grid.ptr,
			C.int(dims[0]), C.int(dims[1]), C.int(dims[2]), centres.ptr, C.int(n),
			C.int(offset), C.int(edge), st)
	}, nil
}

func (s *Stream) gatherOp(dst, grid *Buffer, dims [3]int, points *Buffer, n,
	offset int) (nativeOp, error) {
	if dims[0] <= 0 || dims[1] <= 0 || dims[2] <= 0 || 4*shapeLen(dims) > grid.bytes ||
		n < 1 || 12*n > points.bytes || 4*n > dst.bytes {
		return nil, invalid("gather", "%d points of a grid of %v do not fit the buffers", n,
			dims)
	}
	return func(in *C.mlk_copy, nin C.int, out *C.mlk_copy, nout C.int,
		st *C.mlk_status) C.int {
		return C.mlk_gather_batch(s.d.dev(), s.s, in, nin, out, nout, dst.ptr, grid.ptr,
			C.int(dims[0]), C.int(dims[1]), C.int(dims[2]), points.ptr, C.int(n),
			C.int(offset), st)
	}, nil
}

// Gather returns kernels.Gather of grid (a device buffer of extent dims) at points, in
// one native call on s that copies the points in, reads the grid and copies the values
// back, after the work already enqueued on s.
func (s *Stream) Gather(grid *Buffer, dims [3]int, points [][3]int, offset int) ([]float32,
	error) {
	if len(points) == 0 {
		return nil, nil
	}
	b := s.d.newBatch()
	defer b.release()
	hIn, in, err := b.input(12 * len(points))
	if err != nil {
		return nil, err
	}
	hOut, out, err := b.output(4 * len(points))
	if err != nil {
		return nil, err
	}
	putTriples(hIn.Int32s(), points)
	f, err := s.gatherOp(out, grid, dims, in, len(points), offset)
	if err != nil {
		return nil, err
	}
	if err := b.run("gather", f); err != nil {
		return nil, err
	}
	return append([]float32(nil), hOut.Float32s()[:len(points)]...), nil
}

// putTriples writes points as int32 triples into v.
func putTriples(v []int32, points [][3]int) {
	for i, p := range points {
		v[3*i], v[3*i+1], v[3*i+2] = int32(p[0]), int32(p[1]), int32(p[2])
	}
}

// MinMax returns kernels.MinMax of the first n float32 values of src (NaNs ignored; ok is
// false when every value is NaN), in one native call on s after the work enqueued on it.
func (s *Stream) MinMax(src *Buffer, n int) (lo, hi float32, ok bool, err error) {
	if n < 1 || 4*n > src.bytes {
		return 0, 0, false, invalid("min max", "%d values in %d bytes", n, src.bytes)
	}
	b := s.d.newBatch()
	defer b.release()
	h, scratch, err := b.output(8)
	if err != nil {
		return 0, 0, false, err
	}
	err = b.run("min max", func(in *C.mlk_copy, nin C.int, out *C.mlk_copy, nout C.int,
		st *C.mlk_status) C.int {
		return C.mlk_minmax_batch(s.d.dev(), s.s, in, nin, out, nout, scratch.ptr, src.ptr,
			C.size_t(n), st)
	})
	if err != nil {
		return 0, 0, false, err
	}
	lo = keyFloat(binary.LittleEndian.Uint32(h.Bytes()[0:]))
	hi = keyFloat(binary.LittleEndian.Uint32(h.Bytes()[4:]))
	// An all-NaN input leaves the initial keys: the minimum's above the maximum's.
	return lo, hi, binary.LittleEndian.Uint32(h.Bytes()[0:]) <=
		binary.LittleEndian.Uint32(h.Bytes()[4:]), nil
}

// keyFloat inverts the order-preserving key of kernels/cuda/intensity.cu (float_key).
func keyFloat(k uint32) float32 {
	if k&0x80000000 != 0 {
		return math.Float32frombits(k & 0x7fffffff)
	}
	return math.Float32frombits(^k)
}

// Reorient is the voxel permutation of volume.Reorientation.Apply on the GPU: dst receives
// src (shape) reoriented by perm and flip.
func (d *Device) Reorient(dst, src []float32, shape, perm [3]int, flip [3]bool) error {
	if n := shapeLen(shape); len(src) != n || len(dst) != n || n == 0 {
		return fmt.Errorf("gpu: reorient: %d and %d values for shape %v", len(dst), len(src),
			shape)
	}
	return d.staged("reorient", 4*len(src), 4*len(dst),
		func(h *HostBuffer) { copy(h.Float32s(), src) },
		func(s *Stream, in, out *Buffer) (nativeOp, error) {
			return s.reorientOp(out, in, shape, perm, flip)
		},
		func(h *HostBuffer) { copy(dst, h.Float32s()) })
}

// CropPatches is kernels.CropPatches on the GPU.
func (d *Device) CropPatches(dst, grid []float32, dims [3]int, centres [][3]int, offset,
	edge int) error {
	vox := edge * edge * edge
	if len(grid) != shapeLen(dims) || len(centres) == 0 || len(dst) != len(centres)*vox {
		return fmt.Errorf("gpu: crop patches: %d values for %d patches of %d^3, grid of %d "+
			"values for %v", len(dst), len(centres), edge, len(grid), dims)
	}
	gridBytes := 4 * len(grid)
	return d.staged("crop patches", gridBytes+12*len(centres), 4*len(dst),
		func(h *HostBuffer) {
			copy(h.Float32s(), grid)
			putTriples(h.Int32s()[gridBytes/4:], centres)
		},
		func(s *Stream, in, out *Buffer) (nativeOp, error) {
			g, err := in.View(0, gridBytes)
			if err != nil {
				return nil, err
			}
			c, err := in.View(gridBytes, 12*len(centres))
			if err != nil {
				return nil, err
			}
			return s.cropOp(out, g, dims, c, len(centres), offset, edge)
		},
		func(h *HostBuffer) { copy(dst, h.Float32s()) })
}
