// Package trt runs prebuilt TensorRT engines (plan files) from Go: the GPU inference backend
// of medlsam-fast, implementing backend.Model.
//
// The native side is a small C++ shim over TensorRT's named-tensor API (shim.h, shim.cpp;
// TensorRT 10.x and 11.x), built by CMake into libmedlsam_trt.a and linked only under the
// `tensorrt` build tag (cgo.go). Without the tag the package still compiles, and every entry
// point that needs TensorRT returns ErrNotBuilt, which wraps backend.ErrUnavailable.
// TensorRT cannot be installed on the development machines, but `make trt-shim-check
// TENSORRT_INCLUDE=DIR` compiles the shim against a release's headers with every warning of
// the shim an error (deprecations included). On 2026-12-04 it passed against the headers of
// TensorRT 10.16.0 (NVIDIA/TensorRT) and of 11.2.1 (NvInferRuntime.h, NvInferImpl.h and
// NvInferVersion.h of 11.2.1, the rest of the include chain from 10.16 and 11.0); the shim
// links only createInferRuntime_INTERNAL and getInferLib{Major,Minor,Patch}Version.
//
// Every decision that can be made in Go is made here, in files that build without the tag
// and talk to the shim through the small native interface (native.go), so that they are
// unit-tested against a fake of it: reading and checking an engine's manifest (the engine
// must have been built for this GPU, this TensorRT version and from the expected ONNX file,
// or Open refuses it and says how to rebuild), choosing the optimisation profile from the
// batch size, checking shapes against the profiles, translating native statuses into Go
// errors, and the lifetime of native objects.
//
// Ownership: an Engine owns its TensorRT runtime and engine; a Context (one per CUDA stream)
// borrows its Engine, which stays alive until its last Context is closed even after
// Engine.Close. Device memory is never owned by this package: callers bind device pointers
// (kernels/gpu buffers) with Context.Bind, or hand a Memory to NewModel. TensorRT log records
// go to log/slog through one callback (log.go).
package trt
