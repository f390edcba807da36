//go:build cuda

package gpu

/*
#include "runtime.cuh"
*/
import "C"

import "unsafe"

// The accessors below let other native layers (TensorRT, through package trt) use memory
// and streams owned here. They hand out addresses, not ownership: the Buffer or Stream must
// stay open until the work enqueued with its address has completed.

// Ptr returns the device address of b (0 once closed), for binding it to a TensorRT tensor.
func (b *Buffer) Ptr() uintptr {
	if b == nil || b.freed {
		return 0
	}
	return uintptr(b.ptr)
}

// Bytes returns the size of b in bytes (trt.DeviceBuffer's accessor; Len as an int64).
func (b *Buffer) Bytes() int64 { return int64(b.bytes) }

// Handle returns the cudaStream_t of s as an integer (0 once closed), for enqueueing
// TensorRT work on it. The stream belongs to s's device.
func (s *Stream) Handle() uintptr {
	if s == nil || s.s == nil {
		return 0
	}
	return uintptr(unsafe.Pointer(s.s))
}

// Device returns the device s belongs to.
func (s *Stream) Device() *Device { return s.d }

// RuntimeVersion returns the version of the CUDA runtime this binary links (statically),
// as major*1000 + minor*10 (11080 is 11.8). It needs no device.
func RuntimeVersion() (int, error) {
	var v C.int
	err := call("runtime version", func(st *C.mlk_status) C.int {
		return C.mlk_runtime_version(&v, st)
	})
	return int(v), err
}
