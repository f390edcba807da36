package trt

import (
	"errors"
	"fmt"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// ErrNotBuilt is returned by every call that needs TensorRT in a binary built without the
// `tensorrt` build tag. It wraps backend.ErrUnavailable.
var ErrNotBuilt = fmt.Errorf("trt: built without TensorRT (build the shim with `cmake -S . -B "+
	"build/out/cuda -DTENSORRT_ROOT=<prefix>` and the binary with -tags tensorrt): %w",
	backend.ErrUnavailable)

// ErrEngineMismatch reports an engine built for another GPU, another TensorRT version or
// from another ONNX file than the one expected; its message says how to rebuild.
var ErrEngineMismatch = errors.New("trt: engine does not match this machine or model")

// ErrOutOfMemory reports a native allocation failure (device or host). Callers react by
// retrying with a smaller batch.
var ErrOutOfMemory = errors.New("trt: out of memory")

// ErrInvalid reports an argument the shim refused (null handle, index or rank out of range).
var ErrInvalid = errors.New("trt: invalid argument")

// ErrClosed is returned by calls on a closed Engine, Context or Model.
var ErrClosed = errors.New("trt: use after Close")

// Code is a status code of the shim (shim.h).
type Code int32

// Status codes of the shim; keep in step with the MT_* enum in shim.h.
const (
	CodeOK        Code = 0
	CodeTensorRT  Code = 1 // TensorRT returned false or null
	CodeException Code = 2 // a C++ exception was caught in the shim
	CodeNoMemory  Code = 3
	CodeArgument  Code = 4
)

func (c Code) String() string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeTensorRT:
		return "tensorrt error"
	case CodeException:
		return "c++ exception"
	case CodeNoMemory:
		return "out of memory"
	case CodeArgument:
		return "invalid argument"
	}
	return fmt.Sprintf("code %d", int32(c))
}

// Error is a failed native call: the shim operation, its status code and TensorRT's message.
// errors.Is matches ErrOutOfMemory and ErrInvalid by code.
type Error struct {
	Op   string
	Code Code
	Msg  string
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("trt: %s: %s", e.Op, e.Code)
	}
	return fmt.Sprintf("trt: %s: %s: %s", e.Op, e.Code, e.Msg)
}

// Unwrap returns the sentinel a caller acts on, if the code has one.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeNoMemory:
		return ErrOutOfMemory
	case CodeArgument:
		return ErrInvalid
	}
	return nil
}

// statusError is the one place a native status becomes a Go error: nil for CodeOK, else an
// *Error. The cgo layer and the fake both go through it.
func statusError(op string, code int32, msg string) error {
	if Code(code) == CodeOK {
		return nil
	}
	return &Error{Op: op, Code: Code(code), Msg: msg}
}
