package gpu

import (
	"errors"
	"fmt"
	"log/slog"
)

// Status codes of the native entries (MLK_ in kernels/cuda/common.cuh).
const (
	codeOK      = 0
	codeInvalid = 1
	codeNoMem   = 2
	codeNoDev   = 3
	codeCUDA    = 4
)

// Sentinel errors that callers act on; errors.Is matches them against *Error.
var (
	// ErrNoCUDA: the binary was built without the `cuda` tag.
	ErrNoCUDA = errors.New("gpu: built without CUDA (build with -tags cuda after make cuda)")
	// ErrNoDevice: no CUDA-capable device, or no usable driver.
	ErrNoDevice = errors.New("gpu: no CUDA device")
	// ErrOutOfMemory: a device or pinned host allocation failed.
	ErrOutOfMemory = errors.New("gpu: out of memory")
	// ErrInvalid: an argument (shape, size, handle) was refused.
	ErrInvalid = errors.New("gpu: invalid argument")
	// ErrClosed: the Device or handle was closed.
	ErrClosed = errors.New("gpu: use of a closed device or handle")
)

// Error is a failure reported by a native entry.
type Error struct {
	Op      string // the Go operation, e.g. "resample trilinear"
	Code    int    // MLK_ status code
	CUDA    int    // the CUDA runtime error code that caused it, 0 if none
	Message string // the native message
}

func (e *Error) Error() string {
	if e.CUDA != 0 {
		return fmt.Sprintf("gpu: %s: %s (code %d, cuda error %d)", e.Op, e.Message, e.Code,
			e.CUDA)
	}
	return fmt.Sprintf("gpu: %s: %s (code %d)", e.Op, e.Message, e.Code)
}

// Is matches the sentinel that corresponds to the code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrOutOfMemory:
		return e.Code == codeNoMem
	case ErrNoDevice:
		return e.Code == codeNoDev
	case ErrInvalid:
		return e.Code == codeInvalid
	}
	return false
}

// SelectOrFallback reports whether the GPU path should be used, logging through logger (or
// slog.Default() when nil) the reason when it falls back to the CPU kernels.
func SelectOrFallback(logger *slog.Logger) bool {
	err := Available()
	if err == nil {
		return true
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger.Info("gpu: using the CPU kernels", "reason", err.Error())
	return false
}
