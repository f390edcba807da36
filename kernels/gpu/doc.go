// Package gpu runs the kernels of package kernels on an NVIDIA GPU: the CUDA twins in
// kernels/cuda, compiled by CMake into build/out/cuda/libmedlsam_kernels.a and linked here
// through cgo under the build tag `cuda` (make cuda). Without the tag the package still
// builds: Available reports that CUDA was not built in, and every operation returns an error
// that wraps ErrNoCUDA, so callers fall back to the CPU kernels.
//
// # Architecture
//
// A Device is one GPU and one long-lived worker goroutine, locked to its OS thread, that
// makes every native call for that GPU; callers hand it work through a channel. Each native
// entry sets its device and takes an explicit stream (never the legacy default stream), and
// one cgo call covers a whole batch (a volume, a chunk of points), never a slice or a point.
//
// Device memory (Buffer) and pinned host memory (HostBuffer) are allocated in C and held by
// Go as handles; Go reads and writes pinned memory through unsafe.Slice views, and C never
// keeps a Go pointer. Every handle has an explicit, idempotent, nil-safe Close. The slice
// methods of Device (ResampleTrilinear, NormalizeHU, ...) have the signatures of their CPU
// counterparts in package kernels: they stage the data through pooled pinned buffers.
//
// # Batches
//
// Every op has two native forms: the per-op entry, which only enqueues on a stream and works
// on device buffers (the Stream methods, also what the tests drive), and its batch form
// (mlk_*_batch), which in the same native call copies the inputs in from pinned memory,
// runs the op, copies the outputs out and waits. The slice methods of Device use the batch
// form: one cgo call per batch of slices, masks or points, whatever its size.
//
// # Errors
//
// Native failures become *Error values (operation, code, message); errors.Is matches
// ErrOutOfMemory, ErrNoDevice and ErrInvalid against them.
//
// # Testing
//
// The tests compare every kernel with its CPU reference and skip, saying why, where no
// device is present (cudaGetDeviceCount returns error 100). make cuda-test-bins builds the
// test binaries with the CUDA runtime linked statically, also one built with
// GOEXPERIMENT=cgocheck2; build/gpu-check.sh runs them on a GPU machine.
package gpu
