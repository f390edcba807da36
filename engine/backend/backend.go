package backend

import (
	"errors"
	"fmt"
)

// DataType is a tensor element type.
type DataType int

// Tensor element types the model contracts use.
const (
	Float32 DataType = iota + 1
	Float16
	Int64
	Bool
)

func (d DataType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float16:
		return "float16"
	case Int64:
		return "int64"
	case Bool:
		return "bool"
	}
	return fmt.Sprintf("DataType(%d)", int(d))
}

// TensorInfo describes one named model input or output. A dimension of -1 is dynamic (the
// batch dimension, in every contract of this project).
type TensorInfo struct {
	Name  string
	Shape []int64
	Type  DataType
}

// Tensor is a named float32 tensor in host memory, C order. The caller owns Data.
type Tensor struct {
	Name  string
	Shape []int64
	Data  []float32
}

// Elements returns the product of Shape, or -1 when a dimension is negative.
func Elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		n *= d
	}
	return n
}

// Model is one loaded network. Run is safe for concurrent use only where the implementation
// says so; Close releases native resources, is idempotent and must be called by whoever
// loaded the model.
type Model interface {
	// Inputs and Outputs describe the model's named tensors.
	Inputs() []TensorInfo
	Outputs() []TensorInfo
	// Run evaluates the model on the given inputs (all of the model's inputs, by name) and
	// returns the requested outputs, in the order of names, with their full shapes.
	Run(inputs []Tensor, names []string) ([]Tensor, error)
	Close() error
}

// BatchLimited is implemented by models that take at most MaxBatch items per call (a
// TensorRT engine, bounded by its optimisation profiles); callers split larger batches.
type BatchLimited interface {
	MaxBatch() int64
}

// CapBatch returns batch, lowered to m's largest batch when m is BatchLimited.
func CapBatch(m Model, batch int) int {
	if l, ok := m.(BatchLimited); ok {
		if most := l.MaxBatch(); most >= 1 && int64(batch) > most {
			return int(most)
		}
	}
	return batch
}

// ErrShape reports a tensor whose shape does not match the model's contract.
var ErrShape = errors.New("backend: shape mismatch")

// ErrUnavailable reports a backend that is not built in or whose native library is missing.
var ErrUnavailable = errors.New("backend: unavailable")
