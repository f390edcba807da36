package trt

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// handle is an opaque native object (runtime, engine or execution context): a C pointer held
// as an integer, never a Go pointer.
type handle uintptr

// ioTensor is one engine I/O tensor as the shim reports it.
type ioTensor struct {
	name  string
	input bool
	dtype int32   // nvinfer1::DataType
	shape []int64 // -1 marks a dynamic dimension
}

// selector picks the minimum, optimum or maximum shape of a profile (OptProfileSelector).
type selector int32

const (
	selMin selector = 0
	selOpt selector = 1
	selMax selector = 2
)

// native is everything package trt needs from TensorRT: the shim of shim.h, one method per
// extern "C" function. cgo.go implements it under the `tensorrt` tag; the tests use a fake.
// Errors come from statusError. Methods on distinct contexts may run concurrently; methods on
// one context may not.
type native interface {
	headerVersion() Version
	libraryVersion() Version

	newRuntime() (handle, error)
	destroyRuntime(rt handle)
	deserialize(rt handle, plan []byte) (handle, error)
	destroyEngine(e handle)
	ioTensors(e handle) ([]ioTensor, error)
	numProfiles(e handle) int
	profileShape(e handle, input string, profile int, sel selector) ([]int64, error)
	deviceMemory(e handle) int64

	newContext(e handle) (handle, error)
	destroyContext(c handle)
	setProfile(c handle, profile int, stream uintptr) error
	setInputShape(c handle, name string, shape []int64) error
	tensorShape(c handle, name string) ([]int64, error)
	setAddress(c handle, name string, ptr uintptr) error
	enqueue(c handle, stream uintptr) error
}

// TensorRT data types (nvinfer1::DataType) the contracts use.
const (
	trtFloat = 0
	trtHalf  = 1
	trtBool  = 4
	trtInt64 = 8
)

// dataType maps a TensorRT data type to the backend's; other types are refused, naming the
// tensor, since no model contract of this project uses them.
func dataType(name string, t int32) (backend.DataType, error) {
	switch t {
	case trtFloat:
		return backend.Float32, nil
	case trtHalf:
		return backend.Float16, nil
	case trtBool:
		return backend.Bool, nil
	case trtInt64:
		return backend.Int64, nil
	}
	return 0, fmt.Errorf("trt: tensor %q has TensorRT data type %d, which no model contract uses",
		name, t)
}

// elemSize is the byte size of one element of t.
func elemSize(t backend.DataType) int64 {
	switch t {
	case backend.Float16:
		return 2
	case backend.Bool:
		return 1
	case backend.Int64:
		return 8
	}
	return 4
}

// Version is a TensorRT version, major.minor.patch.
type Version struct {
	Major, Minor, Patch int
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// IsZero reports whether v is unset.
func (v Version) IsZero() bool { return v == Version{} }

// ParseVersion reads "10.13.0" or "10.13.0.35" (a build number is ignored).
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 3 || len(parts) > 4 {
		return Version{}, fmt.Errorf("trt: version %q is not major.minor.patch", s)
	}
	var n [3]int
	for i := range n {
		v, err := strconv.Atoi(parts[i])
		if err != nil || v < 0 {
			return Version{}, fmt.Errorf("trt: version %q is not major.minor.patch", s)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}
