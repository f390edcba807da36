//go:build cuda

package gpu

/*
#include "common.cuh"
*/
import "C"

import "runtime"

// nativeOp is a native entry bound to its arguments, as its batch form (mlk_*_batch): with
// no copies it is the per-op entry, which only enqueues; with copies it stages them in,
// enqueues the op, copies out and, when there are copies out, waits for the stream.
type nativeOp func(in *C.mlk_copy, nin C.int, out *C.mlk_copy, nout C.int,
	st *C.mlk_status) C.int

// enqueue runs f without copies on the device's worker: one native call that only enqueues.
func (s *Stream) enqueue(op string, f nativeOp) error {
	err := s.d.do(op, func(st *C.mlk_status) C.int { return f(nil, 0, nil, 0, st) })
	runtime.KeepAlive(s)
	return err
}

// batch gathers the pooled pinned and device buffers of one staged call and its copies, so
// that a slice method makes a single native call for copy-in, kernels, copy-out and the
// wait. It is used by one goroutine; release gives every buffer back to the pool.
type batch struct {
	d       *Device
	hosts   []*HostBuffer
	devs    []*Buffer
	in, out []C.mlk_copy
}

func (d *Device) newBatch() *batch { return &batch{d: d} }

// device returns a pooled device buffer of at least n bytes, released with the batch.
func (b *batch) device(n int) (*Buffer, error) {
	buf, err := b.d.pool.Device(max(n, 1))
	if err != nil {
		return nil, err
	}
	b.devs = append(b.devs, buf)
	return buf, nil
}

func (b *batch) pair(n int) (*HostBuffer, *Buffer, error) {
	h, err := b.d.pool.Host(max(n, 1))
	if err != nil {
		return nil, nil, err
	}
	b.hosts = append(b.hosts, h)
	buf, err := b.device(n)
	if err != nil {
		return nil, nil, err
	}
	return h, buf, nil
}

// input returns a pinned buffer for the caller to fill and the device buffer that the
// batch copies its first n bytes into before the op.
func (b *batch) input(n int) (*HostBuffer, *Buffer, error) {
	h, buf, err := b.pair(n)
	if err == nil && n > 0 {
		b.in = append(b.in, C.mlk_copy{host: h.ptr, dev: buf.ptr, bytes: C.size_t(n)})
	}
	return h, buf, err
}

// output returns the device buffer the op writes and the pinned buffer that receives its
// first n bytes; the pinned buffer may be read once run has returned.
func (b *batch) output(n int) (*HostBuffer, *Buffer, error) {
	h, buf, err := b.pair(n)
	if err == nil && n > 0 {
		b.out = append(b.out, C.mlk_copy{host: h.ptr, dev: buf.ptr, bytes: C.size_t(n)})
	}
	return h, buf, err
}

// inout returns a pinned buffer for the caller to fill and a device buffer that the batch
// copies n bytes into before the op and back into the same pinned buffer after it.
func (b *batch) inout(n int) (*HostBuffer, *Buffer, error) {
	h, buf, err := b.pair(n)
	if err == nil && n > 0 {
		c := C.mlk_copy{host: h.ptr, dev: buf.ptr, bytes: C.size_t(n)}
		b.in = append(b.in, c)
		b.out = append(b.out, c)
	}
	return h, buf, err
}

func copyList(c []C.mlk_copy) (*C.mlk_copy, C.int) {
	if len(c) == 0 {
		return nil, 0
	}
	return &c[0], C.int(len(c))
}

// run makes the one native call of the batch on the device's stream. Every batch of the
// slice methods has copies out, so the call returns after the stream has passed its work.
func (b *batch) run(op string, f nativeOp) error {
	in, nin := copyList(b.in)
	out, nout := copyList(b.out)
	err := b.d.do(op, func(st *C.mlk_status) C.int { return f(in, nin, out, nout, st) })
	runtime.KeepAlive(b)
	return err
}

// release gives the buffers back to the pool. The native batch call has waited for the
// stream (on success, and on failure after enqueuing), so none is in use.
func (b *batch) release() {
	for _, h := range b.hosts {
		b.d.pool.PutHost(h)
	}
	for _, buf := range b.devs {
		b.d.pool.PutDevice(buf)
	}
	b.hosts, b.devs = nil, nil
}
