//go:build cuda

package gpu

/*
#include "zoom.cuh"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// ZoomCubicTablesBytes is the pinned buffer that Stream.ZoomCubic's tables need.
func ZoomCubicTablesBytes(dstShape [3]int) int {
	return int(C.mlk_zoom_tables_bytes(C.int(dstShape[0]), C.int(dstShape[1]),
		C.int(dstShape[2])))
}

// ZoomCubicWorkspace is the device workspace Stream.ZoomCubic needs (0 for a bad shape).
func ZoomCubicWorkspace(dstShape, srcShape [3]int) int {
	return int(C.mlk_zoom_workspace_bytes(C.int(dstShape[0]), C.int(dstShape[1]),
		C.int(dstShape[2]), C.int(srcShape[0]), C.int(srcShape[1]), C.int(srcShape[2])))
}

// fillZoomTables writes the interpolation tables of kernels.PlanZoomCubic into h (at
// least ZoomCubicTablesBytes) in the layout of kernels/cuda/zoom.cuh, and returns the rest
// of the plan for the native call.
func fillZoomTables(h *HostBuffer, dstShape, srcShape [3]int) (C.mlk_zoom_spline,
	error) {
	n := ZoomCubicTablesBytes(dstShape)
	if n == 0 || h.bytes < n {
		return C.mlk_zoom_spline{}, invalid("zoom cubic", "tables of %d bytes in %d",
			n, h.bytes)
	}
	p := kernels.PlanZoomCubic(dstShape, srcShape)
	b := h.Bytes()
	off := 0
	for a := range 3 {
		for _, i := range p.Idx[a] {
			binary.LittleEndian.PutUint32(b[off:], uint32(int32(i)))
			off += 4
		}
	}
	off = (off + 7) / 8 * 8
	for a := range 3 {
		for _, w := range p.W[a] {
			binary.LittleEndian.PutUint64(b[off:], math.Float64bits(w))
			off += 8
		}
	}
	sp := C.mlk_zoom_spline{pole: C.double(p.Pole), gain: C.double(p.Gain),
		horizon: C.int(p.Horizon)}
	for a := range 3 {
		sp.pole_power[a] = C.double(p.PolePower[a])
	}
	return sp, nil
}

// zoomOp binds mlk_zoom_cubic_batch, whose copies in bring the tables (h, filled by
// fillZoomTables) into the start of ws.
func (s *Stream) zoomOp(dst, src *Buffer, dstShape, srcShape [3]int, ws *Buffer,
	h *HostBuffer) (nativeOp, []C.mlk_copy, error) {
	need := ZoomCubicWorkspace(dstShape, srcShape)
	if need == 0 || ws.bytes < need || 4*shapeLen(dstShape) > dst.bytes ||
		4*shapeLen(srcShape) > src.bytes {
		return nil, nil, invalid("zoom cubic", "shapes %v <- %v with buffers of %d, %d and "+
			"%d (workspace; %d needed) bytes", dstShape, srcShape, dst.bytes, src.bytes,
			ws.bytes, need)
	}
	sp, err := fillZoomTables(h, dstShape, srcShape)
	if err != nil {
		return nil, nil, err
	}
	tables := []C.mlk_copy{{host: h.ptr, dev: ws.ptr,
		bytes: C.size_t(ZoomCubicTablesBytes(dstShape))}}
	return func(in *C.mlk_copy, nin C.int, out *C.mlk_copy, nout C.int,
		st *C.mlk_status) C.int {
		return C.mlk_zoom_cubic_batch(s.d.dev(), s.s, in, nin, out, nout, dst.ptr,
			C.int(dstShape[0]), C.int(dstShape[1]), C.int(dstShape[2]), src.ptr,
			C.int(srcShape[0]), C.int(srcShape[1]), C.int(srcShape[2]), &sp, ws.ptr,
			C.size_t(ws.bytes), st)
	}, tables, nil
}

// ZoomCubic enqueues kernels.ZoomCubic of src (srcShape) into dst (dstShape), device
// buffers, with ws (ZoomCubicWorkspace bytes) as workspace. The tables are filled into the
// pinned buffer h (ZoomCubicTablesBytes) and copied from it asynchronously: h must stay
// open, and not be refilled for other shapes, until the stream has passed the work.
func (s *Stream) ZoomCubic(dst, src *Buffer, dstShape, srcShape [3]int, ws *Buffer,
	h *HostBuffer) error {
	f, tables, err := s.zoomOp(dst, src, dstShape, srcShape, ws, h)
	if err != nil {
		return err
	}
	err = s.d.do("zoom cubic", func(st *C.mlk_status) C.int {
		return f(&tables[0], 1, nil, 0, st)
	})
	runtime.KeepAlive(h)
	return err
}

// ZoomCubic is kernels.ZoomCubic on the GPU, same arguments and results (bit for bit:
// kernels/cuda/zoom.cu).
func (d *Device) ZoomCubic(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int) error {
	if shapeLen(dstShape) != len(dst) || shapeLen(srcShape) != len(src) ||
		ZoomCubicWorkspace(dstShape, srcShape) == 0 {
		return fmt.Errorf("gpu: zoom cubic: %d and %d values for shapes %v and %v", len(dst),
			len(src), dstShape, srcShape)
	}
	b := d.newBatch()
	defer b.release()
	hIn, in, err := b.input(4 * len(src))
	if err != nil {
		return err
	}
	copy(hIn.Float32s(), src)
	hOut, out, err := b.output(4 * len(dst))
	if err != nil {
		return err
	}
	ws, err := b.device(ZoomCubicWorkspace(dstShape, srcShape))
	if err != nil {
		return err
	}
	hTab, err := d.pool.Host(ZoomCubicTablesBytes(dstShape))
	if err != nil {
		return err
	}
	b.hosts = append(b.hosts, hTab)
	f, tables, err := d.stream.zoomOp(out, in, dstShape, srcShape, ws, hTab)
	if err != nil {
		return err
	}
	b.in = append(b.in, tables...)
	if err := b.run("zoom cubic", f); err != nil {
		return err
	}
	copy(dst, hOut.Float32s())
	return nil
}
