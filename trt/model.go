package trt

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// Memory is the device-memory service a Model needs: kernels/gpu provides it on a real GPU,
// the tests a fake. Copies are enqueued on stream; Synchronize waits for all of them.
type Memory interface {
	Alloc(bytes int64) (DeviceBuffer, error)
	CopyToDevice(dst DeviceBuffer, src []float32, stream uintptr) error
	CopyToHost(dst []float32, src DeviceBuffer, stream uintptr) error
	Synchronize(stream uintptr) error
}

// DeviceBuffer is device memory owned by whoever allocated it.
type DeviceBuffer interface {
	Ptr() uintptr
	Bytes() int64
	Close() error
}

// Model runs an Engine on host tensors: it implements backend.Model with one Context and
// one stream, copying inputs to device buffers it keeps between calls (grown as batches
// grow) and outputs back. It is the simple path for the stages written against
// backend.Model; the GPU pipeline binds its own device buffers through Context instead.
//
// Run is safe for concurrent use (calls are serialised on the one stream). Close frees the
// buffers and the Context, not the Engine or the stream, which the caller owns.
type Model struct {
	e      *Engine
	mem    Memory
	stream uintptr

	mu   sync.Mutex
	ctx  *Context
	bufs map[string]DeviceBuffer
}

var _ backend.Model = (*Model)(nil)

// NewModel returns a Model over e that allocates through mem and runs on stream. Only
// float32 tensors can pass through Run (backend.Tensor is float32): an engine with other
// I/O types is refused.
func NewModel(e *Engine, mem Memory, stream uintptr) (*Model, error) {
	for _, t := range append(slices.Clone(e.inputs), e.outputs...) {
		if t.Type != backend.Float32 {
			return nil, fmt.Errorf("trt: %s: tensor %q is %s; Model handles float32 tensors "+
				"only", e.name, t.Name, t.Type)
		}
	}
	ctx, err := e.NewContext(stream)
	if err != nil {
		return nil, err
	}
	return &Model{e: e, mem: mem, stream: stream, ctx: ctx, bufs: map[string]DeviceBuffer{}}, nil
}

// Inputs and Outputs describe the engine's tensors.
func (m *Model) Inputs() []backend.TensorInfo  { return m.e.inputs }
func (m *Model) Outputs() []backend.TensorInfo { return m.e.outputs }

// MaxBatch is the largest batch the engine's profiles take (backend.BatchLimited).
func (m *Model) MaxBatch() int64 { return m.e.MaxBatch() }

// Run copies the inputs to the device, runs the engine and returns the named outputs.
func (m *Model) Run(inputs []backend.Tensor, names []string) ([]backend.Tensor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil {
		return nil, ErrClosed
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("trt: %s: no outputs requested", m.e.name)
	}
	shapes := make(map[string][]int64, len(inputs))
	for _, in := range inputs {
		if _, dup := shapes[in.Name]; dup {
			return nil, fmt.Errorf("trt: %s: input %q given twice", m.e.name, in.Name)
		}
		if n := backend.Elements(in.Shape); n < 0 || n != int64(len(in.Data)) {
			return nil, fmt.Errorf("%w: trt: %s: input %q has shape %v but %d values",
				backend.ErrShape, m.e.name, in.Name, in.Shape, len(in.Data))
		}
		shapes[in.Name] = in.Shape
	}
	outShapes, err := m.ctx.Prepare(shapes)
	if err != nil {
		return nil, err
	}
	outs := make([]backend.Tensor, len(names))
	for i, name := range names {
		s, ok := outShapes[name]
		if !ok || slices.Contains(names[:i], name) {
			return nil, fmt.Errorf("trt: %s: output %q unknown or requested twice", m.e.name, name)
		}
		outs[i] = backend.Tensor{Name: name, Shape: s}
	}

	// Bind every tensor to a buffer large enough for this call, growing buffers as needed.
	for _, t := range append(slices.Clone(m.e.inputs), m.e.outputs...) {
		buf, err := m.buffer(t.Name)
		if err != nil {
			return nil, err
		}
		if err := m.ctx.Bind(t.Name, buf.Ptr(), buf.Bytes()); err != nil {
			return nil, err
		}
	}

	// Copy inputs in, run, copy outputs out, all on the one stream, then wait.
	for _, in := range inputs {
		if err := m.mem.CopyToDevice(m.bufs[in.Name], in.Data, m.stream); err != nil {
			return nil, m.syncAfter(fmt.Errorf("trt: %s: copy input %q: %w", m.e.name, in.Name,
				err))
		}
	}
	if err := m.ctx.Enqueue(); err != nil {
		return nil, m.syncAfter(err)
	}
	for i := range outs {
		outs[i].Data = make([]float32, backend.Elements(outs[i].Shape))
		if err := m.mem.CopyToHost(outs[i].Data, m.bufs[outs[i].Name], m.stream); err != nil {
			return nil, m.syncAfter(fmt.Errorf("trt: %s: copy output %q: %w", m.e.name,
				outs[i].Name, err))
		}
	}
	if err := m.mem.Synchronize(m.stream); err != nil {
		return nil, fmt.Errorf("trt: %s: synchronize: %w", m.e.name, err)
	}
	return outs, nil
}

// syncAfter waits for work already enqueued before an error is returned, so that no copy
// into a caller's slice is still in flight when Run returns.
func (m *Model) syncAfter(err error) error {
	if serr := m.mem.Synchronize(m.stream); serr != nil {
		return errors.Join(err, fmt.Errorf("trt: %s: synchronize: %w", m.e.name, serr))
	}
	return err
}

// buffer returns the device buffer of tensor name, reallocated if too small for the
// prepared shape.
func (m *Model) buffer(name string) (DeviceBuffer, error) {
	need, err := m.ctx.Bytes(name)
	if err != nil {
		return nil, err
	}
	if b := m.bufs[name]; b != nil && b.Bytes() >= need {
		return b, nil
	}
	if b := m.bufs[name]; b != nil {
		// The stream is idle here: every Run ends synchronised.
		if err := b.Close(); err != nil {
			return nil, fmt.Errorf("trt: %s: free buffer %q: %w", m.e.name, name, err)
		}
		delete(m.bufs, name)
	}
	b, err := m.mem.Alloc(need)
	if err != nil {
		return nil, fmt.Errorf("trt: %s: allocate %d bytes for %q: %w", m.e.name, need, name, err)
	}
	m.bufs[name] = b
	return b, nil
}

// Close frees the device buffers and the Context. It is idempotent and safe on a nil Model.
func (m *Model) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil {
		return nil
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(m.bufs)) {
		errs = append(errs, m.bufs[name].Close())
	}
	m.bufs = nil
	errs = append(errs, m.ctx.Close())
	m.ctx = nil
	return errors.Join(errs...)
}
