package backend

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// FakeFunc computes a Fake model's outputs. in holds every input by name, already checked
// against the Fake's inputs; batch is their dynamic dimension 0 (1 when no input has one).
// It returns output data by name, in C order, for at least the outputs Run was asked for.
type FakeFunc func(in map[string]Tensor, batch int64) (map[string][]float32, error)

// Fake is a Model whose outputs a Go function computes, for testing the stages above the
// backends without a native library. It checks inputs and output names the way the real
// backends do (errors wrap ErrShape where a shape breaks the contract) and records every
// call's batch size.
//
// Run is safe for concurrent use when the FakeFunc is; the counters are guarded.
type Fake struct {
	in, out []TensorInfo
	fn      FakeFunc

	mu      sync.Mutex
	batches []int64
	closes  int
}

var _ Model = (*Fake)(nil)

// NewFake returns a Fake with the given tensors; -1 marks a dynamic dimension. Outputs may
// be dynamic in dimension 0 only, which Run sets to the batch.
func NewFake(inputs, outputs []TensorInfo, fn FakeFunc) *Fake {
	return &Fake{in: slices.Clone(inputs), out: slices.Clone(outputs), fn: fn}
}

// Inputs returns the inputs given to NewFake.
func (f *Fake) Inputs() []TensorInfo { return f.in }

// Outputs returns the outputs given to NewFake.
func (f *Fake) Outputs() []TensorInfo { return f.out }

// Calls returns how many times Run reached the FakeFunc.
func (f *Fake) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.batches)
}

// Batches returns the batch size of each call that reached the FakeFunc, in call order.
func (f *Fake) Batches() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches)
}

// Closes returns how many times Close was called.
func (f *Fake) Closes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closes
}

// errFakeClosed is returned by Run after Close.
var errFakeClosed = errors.New("backend: fake model is closed")

// Run checks inputs and names, calls the FakeFunc and returns the requested outputs in the
// order of names, each checked against its declared shape.
func (f *Fake) Run(inputs []Tensor, names []string) ([]Tensor, error) {
	f.mu.Lock()
	closed := f.closes > 0
	f.mu.Unlock()
	if closed {
		return nil, errFakeClosed
	}
	byName, batch, err := f.checkInputs(inputs)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, errors.New("backend: fake: no outputs requested")
	}
	outs := make([]Tensor, len(names))
	for i, name := range names {
		j := slices.IndexFunc(f.out, func(t TensorInfo) bool { return t.Name == name })
		if j < 0 || slices.Contains(names[:i], name) {
			return nil, fmt.Errorf("backend: fake: output %q unknown or requested twice", name)
		}
		shape := slices.Clone(f.out[j].Shape)
		for d := range shape {
			if shape[d] < 0 {
				if d > 0 {
					return nil, fmt.Errorf("backend: fake: output %q is dynamic in "+
						"dimension %d; only dimension 0 may be", name, d)
				}
				shape[d] = batch
			}
		}
		outs[i] = Tensor{Name: name, Shape: shape}
	}

	f.mu.Lock()
	f.batches = append(f.batches, batch)
	f.mu.Unlock()
	data, err := f.fn(byName, batch)
	if err != nil {
		return nil, fmt.Errorf("backend: fake: %w", err)
	}
	for i := range outs {
		d, ok := data[outs[i].Name]
		if !ok {
			return nil, fmt.Errorf("backend: fake: function returned no output %q", outs[i].Name)
		}
		if int64(len(d)) != Elements(outs[i].Shape) {
			return nil, fmt.Errorf("%w: fake: function returned %d values for output %q "+
				"of shape %v", ErrShape, len(d), outs[i].Name, outs[i].Shape)
		}
		outs[i].Data = d
	}
	return outs, nil
}

func (f *Fake) checkInputs(inputs []Tensor) (map[string]Tensor, int64, error) {
	if len(inputs) != len(f.in) {
		return nil, 0, fmt.Errorf("%w: fake: %d inputs, the model takes %d",
			ErrShape, len(inputs), len(f.in))
	}
	byName := make(map[string]Tensor, len(inputs))
	batch := int64(-1)
	for _, in := range inputs {
		j := slices.IndexFunc(f.in, func(t TensorInfo) bool { return t.Name == in.Name })
		if _, dup := byName[in.Name]; j < 0 || dup {
			return nil, 0, fmt.Errorf("backend: fake: input %q unknown or given twice", in.Name)
		}
		want := f.in[j].Shape
		bad := len(in.Shape) != len(want)
		for d := 0; !bad && d < len(want); d++ {
			bad = in.Shape[d] < 1 || (want[d] >= 0 && in.Shape[d] != want[d])
		}
		if bad {
			return nil, 0, fmt.Errorf("%w: fake: input %q has shape %v, the model wants %v",
				ErrShape, in.Name, in.Shape, want)
		}
		if !holds(in.Shape, len(in.Data)) {
			return nil, 0, fmt.Errorf("%w: fake: input %q has shape %v but %d values",
				ErrShape, in.Name, in.Shape, len(in.Data))
		}
		if len(want) > 0 && want[0] < 0 {
			if batch >= 0 && in.Shape[0] != batch {
				return nil, 0, fmt.Errorf("%w: fake: input %q has batch %d, another has %d",
					ErrShape, in.Name, in.Shape[0], batch)
			}
			batch = in.Shape[0]
		}
		byName[in.Name] = in
	}
	if batch < 0 {
		batch = 1
	}
	return byName, batch, nil
}

// holds reports whether shape has exactly n elements, without overflowing.
func holds(shape []int64, n int) bool {
	p := int64(1)
	for _, d := range shape {
		if d < 1 || p > int64(n)/d {
			return false
		}
		p *= d
	}
	return p == int64(n)
}

// Close marks the Fake closed; later Runs fail. It is idempotent and counts its calls.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
	return nil
}
