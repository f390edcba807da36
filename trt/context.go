package trt

import (
	"fmt"
	"maps"
	"slices"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// Context is one TensorRT execution context bound to one CUDA stream. It is not safe for
// concurrent use: give each stream (each worker goroutine) its own. The caller owns the
// stream and every device buffer it binds; they must outlive the work enqueued on them.
//
// One inference is: Prepare (input shapes; chooses the profile and returns the output
// shapes), Bind every input and output, Enqueue, then synchronise the stream.
type Context struct {
	e       *Engine
	h       handle
	stream  uintptr
	profile int                // profile set on the native context; -1 before the first
	shapes  map[string][]int64 // every tensor's shape after the last Prepare
	bound   map[string]bool    // tensors bound since the last Prepare
	closed  bool
}

// NewContext creates an execution context that enqueues on stream (a cudaStream_t from
// kernels/gpu). The caller must Close it before the stream is destroyed.
func (e *Engine) NewContext(stream uintptr) (*Context, error) {
	h, err := e.acquire()
	if err != nil {
		return nil, fmt.Errorf("trt: %s: new context: %w", e.name, err)
	}
	return &Context{e: e, h: h, stream: stream, profile: -1}, nil
}

// Prepare sets the input shapes of the next inference: it chooses the profile for their
// batch, checks them against it, selects it on the native context if it changed, sets the
// shapes and returns every output's resolved shape. Bindings are cleared: Bind every tensor
// again before Enqueue. Shape errors wrap backend.ErrShape.
func (c *Context) Prepare(inputs map[string][]int64) (map[string][]int64, error) {
	if c.closed {
		return nil, ErrClosed
	}
	e := c.e
	batch := int64(1)
	for _, in := range e.inputs {
		s := inputs[in.Name]
		if len(in.Shape) > 0 && in.Shape[0] < 0 && len(s) > 0 {
			batch = s[0]
			break
		}
	}
	p, err := e.ProfileFor(batch)
	if err != nil {
		return nil, err
	}
	if err := e.checkShapes(inputs, p); err != nil {
		return nil, err
	}
	if p != c.profile {
		if err := e.nat.setProfile(c.h, p, c.stream); err != nil {
			c.profile = -1
			return nil, fmt.Errorf("trt: %s: %w", e.name, err)
		}
		c.profile = p
	}
	c.shapes = make(map[string][]int64, len(e.inputs)+len(e.outputs))
	c.bound = map[string]bool{}
	for _, in := range e.inputs {
		s := slices.Clone(inputs[in.Name])
		if err := e.nat.setInputShape(c.h, in.Name, s); err != nil {
			c.shapes = nil
			return nil, fmt.Errorf("trt: %s: input %q shape %v: %w", e.name, in.Name, s, err)
		}
		c.shapes[in.Name] = s
	}
	outs := make(map[string][]int64, len(e.outputs))
	for _, out := range e.outputs {
		s, err := e.nat.tensorShape(c.h, out.Name)
		if err != nil {
			c.shapes = nil
			return nil, fmt.Errorf("trt: %s: output %q: %w", e.name, out.Name, err)
		}
		if backend.Elements(s) < 0 {
			c.shapes = nil
			return nil, fmt.Errorf("%w: trt: %s: output %q has unresolved shape %v after the "+
				"input shapes were set", backend.ErrShape, e.name, out.Name, s)
		}
		c.shapes[out.Name] = s
		outs[out.Name] = slices.Clone(s)
	}
	return outs, nil
}

// Bytes returns the byte size of tensor name under the shapes of the last Prepare.
func (c *Context) Bytes(name string) (int64, error) {
	s, ok := c.shapes[name]
	if !ok {
		return 0, fmt.Errorf("trt: %s: no tensor %q prepared (call Prepare first)", c.e.name, name)
	}
	return backend.Elements(s) * elemSize(c.e.typeOf(name)), nil
}

// Bind sets the device address of tensor name; size is the buffer's capacity in bytes,
// which must hold the tensor at the prepared shape.
func (c *Context) Bind(name string, ptr uintptr, size int64) error {
	if c.closed {
		return ErrClosed
	}
	need, err := c.Bytes(name)
	if err != nil {
		return err
	}
	if ptr == 0 || size < need {
		return fmt.Errorf("%w: trt: %s: tensor %q needs %d bytes at shape %v, buffer %#x holds %d",
			backend.ErrShape, c.e.name, name, need, c.shapes[name], ptr, size)
	}
	if err := c.e.nat.setAddress(c.h, name, ptr); err != nil {
		return fmt.Errorf("trt: %s: bind %q: %w", c.e.name, name, err)
	}
	c.bound[name] = true
	return nil
}

// Enqueue runs the engine on the context's stream, asynchronously. Every tensor must be
// bound since the last Prepare.
func (c *Context) Enqueue() error {
	if c.closed {
		return ErrClosed
	}
	if c.shapes == nil {
		return fmt.Errorf("trt: %s: Enqueue before Prepare", c.e.name)
	}
	for _, name := range slices.Sorted(maps.Keys(c.shapes)) {
		if !c.bound[name] {
			return fmt.Errorf("trt: %s: tensor %q is not bound", c.e.name, name)
		}
	}
	if err := c.e.nat.enqueue(c.h, c.stream); err != nil {
		return fmt.Errorf("trt: %s: %w", c.e.name, err)
	}
	return nil
}

// Close destroys the native context; work already enqueued must have completed (synchronise
// the stream first). Close is idempotent and safe on a nil Context.
func (c *Context) Close() error {
	if c == nil || c.closed {
		return nil
	}
	c.closed = true
	c.e.releaseContext(c.h)
	return nil
}

// typeOf returns the data type of tensor name.
func (e *Engine) typeOf(name string) backend.DataType {
	for _, t := range append(slices.Clone(e.inputs), e.outputs...) {
		if t.Name == name {
			return t.Type
		}
	}
	return backend.Float32
}
