//go:build tensorrt

package trt

// This file is the only one that calls the shim. It is compiled only with the `tensorrt`
// tag, after CMake built libmedlsam_trt.a into build/out/cuda (TENSORRT_ROOT set); TensorRT's
// and CUDA's library directories come from the environment (CGO_LDFLAGS=-L$TENSORRT_ROOT/lib
// ...), never from absolute paths here. It cannot be compiled on machines without TensorRT
// (the project's CI): it was written against the TensorRT 10.x and 11.x headers by reading
// them, and is kept to plain conversions so that the logic it feeds is the tested Go code.

/*
#cgo CFLAGS: -I${SRCDIR}
#cgo LDFLAGS: -L${SRCDIR}/../build/out/cuda -lmedlsam_trt -lnvinfer -lcudart_static
#cgo LDFLAGS: -lstdc++ -ldl -lrt -lpthread
#include <stdint.h>
#include <stdlib.h>
#include "shim.h"

extern void medlsamTrtLog(int32_t severity, char* msg);

static void mt_install_go_logger(void) { mt_set_logger((mt_log_fn)medlsamTrtLog); }

// Conversions between handles (integers on the Go side) and pointers, done in C so that Go
// never turns an integer into an unsafe.Pointer.
static void* mt_ptr(uintptr_t p) { return (void*)p; }
static mt_runtime* mt_rt(uintptr_t p) { return (mt_runtime*)p; }
static mt_engine* mt_eng(uintptr_t p) { return (mt_engine*)p; }
static mt_context* mt_ctx(uintptr_t p) { return (mt_context*)p; }
*/
import "C"

import (
	"bytes"
	"sync"
	"unsafe"
)

// Built reports whether this binary was built with TensorRT (the `tensorrt` build tag).
func Built() bool { return true }

var installLogger sync.Once

// defaultNative returns the shim, installing the slog bridge on first use.
func defaultNative() (native, error) {
	installLogger.Do(func() { C.mt_install_go_logger() })
	return cgoNative{}, nil
}

// HeaderVersion returns the TensorRT version the shim was compiled against.
func HeaderVersion() (Version, error) { return cgoNative{}.headerVersion(), nil }

// LibraryVersion returns the version of the TensorRT library loaded in this process.
func LibraryVersion() (Version, error) { return cgoNative{}.libraryVersion(), nil }

// cgoNative implements native with the shim. It holds no state.
type cgoNative struct{}

// errLen is the size of the message buffer each call hands the shim.
const errLen = 1024

// call runs one shim function with a Go-owned message buffer (the shim writes it during the
// call and keeps nothing) and turns its status into an error.
func call(op string, f func(err *C.char, n C.size_t) C.int32_t) error {
	var buf [errLen]byte
	code := f((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	msg := buf[:]
	if i := bytes.IndexByte(msg, 0); i >= 0 {
		msg = msg[:i]
	}
	return statusError(op, int32(code), string(msg))
}

func (cgoNative) headerVersion() Version {
	var a, b, c C.int32_t
	C.mt_header_version(&a, &b, &c)
	return Version{int(a), int(b), int(c)}
}

func (cgoNative) libraryVersion() Version {
	var a, b, c C.int32_t
	C.mt_library_version(&a, &b, &c)
	return Version{int(a), int(b), int(c)}
}

func (cgoNative) newRuntime() (handle, error) {
	var rt *C.mt_runtime
	err := call("create runtime", func(e *C.char, n C.size_t) C.int32_t {
		return C.mt_runtime_create(&rt, e, n)
	})
	return handle(uintptr(unsafe.Pointer(rt))), err
}

func (cgoNative) destroyRuntime(rt handle) { C.mt_runtime_destroy(C.mt_rt(C.uintptr_t(rt))) }

func (cgoNative) deserialize(rt handle, plan []byte) (handle, error) {
	if len(plan) == 0 {
		return 0, statusError("deserialize", int32(CodeArgument), "empty plan")
	}
	var eng *C.mt_engine
	err := call("deserialize", func(e *C.char, n C.size_t) C.int32_t {
		return C.mt_engine_deserialize(C.mt_rt(C.uintptr_t(rt)), unsafe.Pointer(&plan[0]),
			C.size_t(len(plan)), &eng, e, n)
	})
	return handle(uintptr(unsafe.Pointer(eng))), err
}

func (cgoNative) destroyEngine(e handle) { C.mt_engine_destroy(C.mt_eng(C.uintptr_t(e))) }

func dimsSlice(nd C.int32_t, dims *[8]C.int64_t) []int64 {
	s := make([]int64, int(nd))
	for i := range s {
		s[i] = int64(dims[i])
	}
	return s
}

func (cgoNative) ioTensors(e handle) ([]ioTensor, error) {
	eng := C.mt_eng(C.uintptr_t(e))
	n := int(C.mt_engine_num_io(eng))
	if n < 0 {
		return nil, statusError("I/O tensors", int32(CodeArgument), "null engine")
	}
	out := make([]ioTensor, 0, n)
	for i := range n {
		var (
			name              *C.char
			mode, dtype, ndim C.int32_t
			dims              [8]C.int64_t
		)
		err := call("I/O tensor", func(m *C.char, l C.size_t) C.int32_t {
			return C.mt_engine_io(eng, C.int32_t(i), &name, &mode, &dtype, &ndim, &dims[0], m, l)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, ioTensor{name: C.GoString(name), input: mode == 1,
			dtype: int32(dtype), shape: dimsSlice(ndim, &dims)})
	}
	return out, nil
}

func (cgoNative) numProfiles(e handle) int {
	return int(C.mt_engine_num_profiles(C.mt_eng(C.uintptr_t(e))))
}

func (cgoNative) profileShape(e handle, input string, p int, sel selector) ([]int64, error) {
	cname := C.CString(input)
	defer C.free(unsafe.Pointer(cname))
	var (
		ndim C.int32_t
		dims [8]C.int64_t
	)
	err := call("profile shape", func(m *C.char, l C.size_t) C.int32_t {
		return C.mt_engine_profile_shape(C.mt_eng(C.uintptr_t(e)), cname, C.int32_t(p),
			C.int32_t(sel), &ndim, &dims[0], m, l)
	})
	if err != nil {
		return nil, err
	}
	return dimsSlice(ndim, &dims), nil
}

func (cgoNative) deviceMemory(e handle) int64 {
	return int64(C.mt_engine_device_memory(C.mt_eng(C.uintptr_t(e))))
}

func (cgoNative) newContext(e handle) (handle, error) {
	var ctx *C.mt_context
	err := call("create context", func(m *C.char, l C.size_t) C.int32_t {
		return C.mt_context_create(C.mt_eng(C.uintptr_t(e)), &ctx, m, l)
	})
	return handle(uintptr(unsafe.Pointer(ctx))), err
}

func (cgoNative) destroyContext(c handle) { C.mt_context_destroy(C.mt_ctx(C.uintptr_t(c))) }

func (cgoNative) setProfile(c handle, p int, stream uintptr) error {
	return call("set profile", func(m *C.char, l C.size_t) C.int32_t {
		return C.mt_context_set_profile(C.mt_ctx(C.uintptr_t(c)), C.int32_t(p),
			C.mt_ptr(C.uintptr_t(stream)), m, l)
	})
}

func (cgoNative) setInputShape(c handle, name string, shape []int64) error {
	if len(shape) > 8 {
		return statusError("set input shape", int32(CodeArgument), "rank above 8")
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var dims [8]C.int64_t
	for i, d := range shape {
		dims[i] = C.int64_t(d)
	}
	return call("set input shape", func(m *C.char, l C.size_t) C.int32_t {
		return C.mt_context_set_input_shape(C.mt_ctx(C.uintptr_t(c)), cname,
			C.int32_t(len(shape)), &dims[0], m, l)
	})
}

func (cgoNative) tensorShape(c handle, name string) ([]int64, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var (
		ndim C.int32_t
		dims [8]C.int64_t
	)
	err := call("tensor shape", func(m *C.char, l C.size_t) C.int32_t {
		return C.mt_context_tensor_shape(C.mt_ctx(C.uintptr_t(c)), cname, &ndim, &dims[0], m, l)
	})
	if err != nil {
		return nil, err
	}
	return dimsSlice(ndim, &dims), nil
}

func (cgoNative) setAddress(c handle, name string, ptr uintptr) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	return call("set tensor address", func(m *C.char, l C.size_t) C.int32_t {
		return C.mt_context_set_address(C.mt_ctx(C.uintptr_t(c)), cname,
			C.mt_ptr(C.uintptr_t(ptr)), m, l)
	})
}

func (cgoNative) enqueue(c handle, stream uintptr) error {
	return call("enqueueV3", func(m *C.char, l C.size_t) C.int32_t {
		return C.mt_context_enqueue(C.mt_ctx(C.uintptr_t(c)), C.mt_ptr(C.uintptr_t(stream)), m, l)
	})
}
