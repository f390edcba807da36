//go:build cuda

package gpu

/*
#include "runtime.cuh"
*/
import "C"

import (
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"unsafe"
)

// Buffer is device memory allocated in C: a handle, never dereferenced by Go. Its owner
// must Close it (or Put it back into the Pool it came from); it may be used on any stream of
// its device, and the caller orders its uses with streams and events.
type Buffer struct {
	d     *Device
	ptr   C.uint64_t
	bytes int
	freed bool
	view  bool // a View: Close does not free
}

// Alloc allocates bytes of device memory. The caller must Close the Buffer.
func (d *Device) Alloc(bytes int) (*Buffer, error) {
	if bytes <= 0 {
		return nil, &Error{Op: "device alloc", Code: codeInvalid,
			Message: "size must be positive"}
	}
	b := &Buffer{d: d, bytes: bytes}
	err := d.do("device alloc", func(st *C.mlk_status) C.int {
		return C.mlk_device_malloc(d.dev(), C.size_t(bytes), &b.ptr, st)
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Len returns the size in bytes.
func (b *Buffer) Len() int { return b.bytes }

// View returns a handle on bytes [off, off+n) of b, which b keeps owning: closing the view
// does nothing, and it must not be used after b is closed.
func (b *Buffer) View(off, n int) (*Buffer, error) {
	if off < 0 || n <= 0 || off+n > b.bytes {
		return nil, &Error{Op: "buffer view", Code: codeInvalid, Message: fmt.Sprintf(
			"range [%d, %d) outside a buffer of %d bytes", off, off+n, b.bytes)}
	}
	return &Buffer{d: b.d, ptr: b.ptr + C.uint64_t(off), bytes: n, view: true}, nil
}

// Close frees the memory after the work already enqueued on every stream of the device
// (cudaFree synchronises). It is idempotent and nil-safe.
func (b *Buffer) Close() error {
	if b == nil || b.freed || b.view {
		return nil
	}
	b.freed = true
	ptr := b.ptr
	err := b.d.do("device free", func(st *C.mlk_status) C.int {
		return C.mlk_device_free(b.d.dev(), ptr, st)
	})
	runtime.KeepAlive(b)
	return err
}

// HostBuffer is pinned (page-locked) host memory allocated in C, the only host memory the
// copies take. Go reads and writes it through Bytes, Float32s and Uint8s; those views are
// valid until Close. The owner must Close it.
type HostBuffer struct {
	d     *Device
	ptr   unsafe.Pointer
	bytes int
}

// AllocHost allocates bytes of pinned host memory. The caller must Close it.
func (d *Device) AllocHost(bytes int) (*HostBuffer, error) {
	if bytes <= 0 {
		return nil, &Error{Op: "host alloc", Code: codeInvalid,
			Message: "size must be positive"}
	}
	h := &HostBuffer{d: d, bytes: bytes}
	err := d.do("host alloc", func(st *C.mlk_status) C.int {
		return C.mlk_host_alloc(d.dev(), C.size_t(bytes), &h.ptr, st)
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Len returns the size in bytes.
func (h *HostBuffer) Len() int { return h.bytes }

// Bytes views the whole buffer.
func (h *HostBuffer) Bytes() []byte { return unsafe.Slice((*byte)(h.ptr), h.bytes) }

// Float32s views the buffer as float32 values (Len/4 of them).
func (h *HostBuffer) Float32s() []float32 { return unsafe.Slice((*float32)(h.ptr), h.bytes/4) }

// Close frees the pinned memory; the caller must have synchronised the streams that copy
// from or to it. It is idempotent and nil-safe.
func (h *HostBuffer) Close() error {
	if h == nil || h.ptr == nil {
		return nil
	}
	p := h.ptr
	h.ptr = nil
	err := h.d.do("host free", func(st *C.mlk_status) C.int {
		return C.mlk_host_free(h.d.dev(), p, st)
	})
	runtime.KeepAlive(h)
	return err
}

// Pool hands out device and pinned host buffers by power-of-two size classes (at least
// 4 KiB) and keeps the ones put back for reuse. It is safe for concurrent use. Close frees
// what it holds; buffers handed out stay the caller's to Put back or Close.
type Pool struct {
	d      *Device
	mu     sync.Mutex
	dev    map[int][]*Buffer
	host   map[int][]*HostBuffer
	closed bool
}

// NewPool returns an empty pool of d's memory.
func (d *Device) NewPool() *Pool {
	return &Pool{d: d, dev: map[int][]*Buffer{}, host: map[int][]*HostBuffer{}}
}

func sizeClass(n int) int {
	if n <= 4096 {
		return 4096
	}
	return 1 << bits.Len(uint(n-1))
}

// Device returns a device buffer of at least n bytes.
func (p *Pool) Device(n int) (*Buffer, error) {
	c := sizeClass(n)
	p.mu.Lock()
	if l := p.dev[c]; len(l) > 0 {
		b := l[len(l)-1]
		p.dev[c] = l[:len(l)-1]
		p.mu.Unlock()
		return b, nil
	}
	p.mu.Unlock()
	return p.d.Alloc(c)
}

// Host returns a pinned host buffer of at least n bytes.
func (p *Pool) Host(n int) (*HostBuffer, error) {
	c := sizeClass(n)
	p.mu.Lock()
	if l := p.host[c]; len(l) > 0 {
		h := l[len(l)-1]
		p.host[c] = l[:len(l)-1]
		p.mu.Unlock()
		return h, nil
	}
	p.mu.Unlock()
	return p.d.AllocHost(c)
}

// PutDevice gives b back; the work that uses it must have been enqueued already (later
// users are ordered after it only on the same stream). nil is ignored.
func (p *Pool) PutDevice(b *Buffer) {
	if b == nil || b.view {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || sizeClass(b.bytes) != b.bytes {
		_ = b.Close()
		return
	}
	p.dev[b.bytes] = append(p.dev[b.bytes], b)
}

// PutHost gives h back; the copies that use it must have completed. nil is ignored.
func (p *Pool) PutHost(h *HostBuffer) {
	if h == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || sizeClass(h.bytes) != h.bytes {
		_ = h.Close()
		return
	}
	p.host[h.bytes] = append(p.host[h.bytes], h)
}

// Close frees every buffer the pool holds. It is idempotent and nil-safe.
func (p *Pool) Close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var first error
	for c, l := range p.dev {
		for _, b := range l {
			if err := b.Close(); err != nil && first == nil {
				first = err
			}
		}
		delete(p.dev, c)
	}
	for c, l := range p.host {
		for _, h := range l {
			if err := h.Close(); err != nil && first == nil {
				first = err
			}
		}
		delete(p.host, c)
	}
	return first
}

// Uint16s views the buffer as uint16 values (Len/2 of them).
func (h *HostBuffer) Uint16s() []uint16 { return unsafe.Slice((*uint16)(h.ptr), h.bytes/2) }

// Int16s views the buffer as int16 values (Len/2 of them).
func (h *HostBuffer) Int16s() []int16 { return unsafe.Slice((*int16)(h.ptr), h.bytes/2) }

// Int32s views the buffer as int32 values (Len/4 of them).
func (h *HostBuffer) Int32s() []int32 { return unsafe.Slice((*int32)(h.ptr), h.bytes/4) }
