//go:build cuda

package gpu

/*
#include "runtime.cuh"
*/
import "C"

import "runtime"

// Stream is a CUDA stream of one device, created non-blocking. Work enqueued on it runs in
// order; Sync waits for it. The owner must Close it. Its methods may be called from any
// goroutine: they run on the device's worker.
type Stream struct {
	d *Device
	s C.mlk_stream
}

// NewStream creates a stream on d. The caller must Close it.
func (d *Device) NewStream() (*Stream, error) {
	s := &Stream{d: d}
	err := d.do("stream create", func(st *C.mlk_status) C.int {
		return C.mlk_stream_create(d.dev(), &s.s, st)
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Sync waits until the work enqueued on s has completed.
func (s *Stream) Sync() error {
	err := s.d.do("stream sync", func(st *C.mlk_status) C.int {
		return C.mlk_stream_sync(s.d.dev(), s.s, st)
	})
	runtime.KeepAlive(s)
	return err
}

// Close waits for the stream's work and destroys it. It is idempotent and nil-safe.
func (s *Stream) Close() error {
	if s == nil || s.s == nil {
		return nil
	}
	h := s.s
	s.s = nil
	return s.d.do("stream destroy", func(st *C.mlk_status) C.int {
		if rc := C.mlk_stream_sync(s.d.dev(), h, st); rc != C.MLK_OK {
			return rc
		}
		return C.mlk_stream_destroy(s.d.dev(), h, st)
	})
}

// CopyToDevice enqueues the copy of the first n bytes of src into dst.
func (s *Stream) CopyToDevice(dst *Buffer, src *HostBuffer, n int) error {
	if n > dst.bytes || n > src.bytes || n < 0 {
		return &Error{Op: "copy to device", Code: codeInvalid, Message: "size beyond a buffer"}
	}
	err := s.d.do("copy to device", func(st *C.mlk_status) C.int {
		return C.mlk_memcpy_htod(s.d.dev(), s.s, dst.ptr, src.ptr, C.size_t(n), st)
	})
	runtime.KeepAlive(src)
	return err
}

// CopyToHost enqueues the copy of the first n bytes of src into dst; dst may be read once
// the stream has passed it (Sync or an event).
func (s *Stream) CopyToHost(dst *HostBuffer, src *Buffer, n int) error {
	if n > dst.bytes || n > src.bytes || n < 0 {
		return &Error{Op: "copy to host", Code: codeInvalid, Message: "size beyond a buffer"}
	}
	err := s.d.do("copy to host", func(st *C.mlk_status) C.int {
		return C.mlk_memcpy_dtoh(s.d.dev(), s.s, dst.ptr, src.ptr, C.size_t(n), st)
	})
	runtime.KeepAlive(dst)
	return err
}

// CopyDevice enqueues the copy of n bytes from src at byte srcOff to dst at byte dstOff.
func (s *Stream) CopyDevice(dst *Buffer, dstOff int, src *Buffer, srcOff, n int) error {
	if n < 0 || dstOff < 0 || srcOff < 0 || dstOff+n > dst.bytes || srcOff+n > src.bytes {
		return &Error{Op: "copy device", Code: codeInvalid, Message: "range beyond a buffer"}
	}
	return s.d.do("copy device", func(st *C.mlk_status) C.int {
		return C.mlk_memcpy_dtod(s.d.dev(), s.s, dst.ptr+C.uint64_t(dstOff),
			src.ptr+C.uint64_t(srcOff), C.size_t(n), st)
	})
}

// Fill enqueues setting every byte of dst to value.
func (s *Stream) Fill(dst *Buffer, value byte) error {
	return s.d.do("fill", func(st *C.mlk_status) C.int {
		return C.mlk_memset(s.d.dev(), s.s, dst.ptr, C.int(value), C.size_t(dst.bytes), st)
	})
}

// Event is a CUDA event of one device, for ordering streams and timing. The owner must
// Close it.
type Event struct {
	d *Device
	e C.mlk_event
}

// NewEvent creates an event on d. The caller must Close it.
func (d *Device) NewEvent() (*Event, error) {
	e := &Event{d: d}
	err := d.do("event create", func(st *C.mlk_status) C.int {
		return C.mlk_event_create(d.dev(), &e.e, st)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Record enqueues e on s.
func (e *Event) Record(s *Stream) error {
	return e.d.do("event record", func(st *C.mlk_status) C.int {
		return C.mlk_event_record(e.d.dev(), e.e, s.s, st)
	})
}

// Sync waits for the work before e's last Record.
func (e *Event) Sync() error {
	return e.d.do("event sync", func(st *C.mlk_status) C.int {
		return C.mlk_event_sync(e.d.dev(), e.e, st)
	})
}

// Since returns the milliseconds from start to e, both recorded and completed.
func (e *Event) Since(start *Event) (float32, error) {
	var ms C.float
	err := e.d.do("event elapsed", func(st *C.mlk_status) C.int {
		return C.mlk_event_elapsed(e.d.dev(), start.e, e.e, &ms, st)
	})
	return float32(ms), err
}

// Close destroys the event. It is idempotent and nil-safe.
func (e *Event) Close() error {
	if e == nil || e.e == nil {
		return nil
	}
	h := e.e
	e.e = nil
	return e.d.do("event destroy", func(st *C.mlk_status) C.int {
		return C.mlk_event_destroy(e.d.dev(), h, st)
	})
}
