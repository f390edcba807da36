//go:build cuda

package gpu

import (
	"errors"
	"fmt"
	"sync"

	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// CUDA is the scheduler's GPU over a kernels/gpu Device: its buffers, pinned memory and
// streams. The Device stays the caller's: close it after the Scheduler's Run returned.
type CUDA struct{ D *kgpu.Device }

var _ GPU = CUDA{}

// cudaPinned adapts a pinned host buffer to PinnedMem.
type cudaPinned struct{ h *kgpu.HostBuffer }

func (p cudaPinned) Data() []byte { return p.h.Bytes() }
func (p cudaPinned) Close() error { return p.h.Close() }

// cudaStream adapts a stream to DevStream; it accepts only the memory of CUDA.
type cudaStream struct{ s *kgpu.Stream }

// NewStream creates a non-blocking stream on the device.
func (c CUDA) NewStream() (DevStream, error) {
	s, err := c.D.NewStream()
	if err != nil {
		return nil, err
	}
	return cudaStream{s}, nil
}

// Alloc allocates device memory (a *kgpu.Buffer).
func (c CUDA) Alloc(n int) (DevMem, error) { return c.D.Alloc(n) }

// AllocPinned allocates pinned host memory.
func (c CUDA) AllocPinned(n int) (PinnedMem, error) {
	h, err := c.D.AllocHost(n)
	if err != nil {
		return nil, err
	}
	return cudaPinned{h}, nil
}

func devBuf(m DevMem) (*kgpu.Buffer, error) {
	b, ok := m.(*kgpu.Buffer)
	if !ok {
		return nil, fmt.Errorf("gpu: device memory of type %T is not a kernels/gpu buffer", m)
	}
	return b, nil
}

func (s cudaStream) CopyToDevice(dst DevMem, src PinnedMem, n int) error {
	b, err := devBuf(dst)
	if err != nil {
		return err
	}
	h, ok := src.(cudaPinned)
	if !ok {
		return fmt.Errorf("gpu: pinned memory of type %T is not a kernels/gpu host buffer", src)
	}
	return s.s.CopyToDevice(b, h.h, n)
}

func (s cudaStream) CopyToHost(dst PinnedMem, src DevMem, n int) error {
	b, err := devBuf(src)
	if err != nil {
		return err
	}
	h, ok := dst.(cudaPinned)
	if !ok {
		return fmt.Errorf("gpu: pinned memory of type %T is not a kernels/gpu host buffer", dst)
	}
	return s.s.CopyToHost(h.h, b, n)
}

func (s cudaStream) Sync() error  { return s.s.Sync() }
func (s cudaStream) Close() error { return s.s.Close() }

// kstream returns the kernels/gpu stream behind a DevStream of CUDA.
func kstream(s DevStream) (*kgpu.Stream, error) {
	cs, ok := s.(cudaStream)
	if !ok {
		return nil, fmt.Errorf("gpu: stream of type %T is not a kernels/gpu stream", s)
	}
	return cs.s, nil
}

// TRTMemory implements trt.Memory on a kernels/gpu Device, for trt.Model (engines run on
// host tensors through backend.Model): buffers are *kgpu.Buffer, and copies from and to Go
// slices are staged through the device's pool of pinned buffers, which Synchronize hands
// back after copying the outputs into their slices. Streams must be registered (Register)
// before their handle is passed. It is safe for concurrent use on distinct streams.
type TRTMemory struct {
	d       *kgpu.Device
	mu      sync.Mutex
	streams map[uintptr]*kgpu.Stream
	pending map[uintptr][]staged
}

// staged is a pinned buffer in flight on a stream; dst, if set, receives it at Synchronize.
type staged struct {
	h   *kgpu.HostBuffer
	dst []float32
}

var _ trt.Memory = (*TRTMemory)(nil)

// NewTRTMemory returns the adapter over d, which the caller keeps owning.
func NewTRTMemory(d *kgpu.Device) *TRTMemory {
	return &TRTMemory{d: d, streams: map[uintptr]*kgpu.Stream{},
		pending: map[uintptr][]staged{}}
}

// Register makes s usable by its Handle; the caller keeps owning it.
func (m *TRTMemory) Register(s *kgpu.Stream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.streams[s.Handle()] = s
}

func (m *TRTMemory) stream(h uintptr) (*kgpu.Stream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.streams[h]
	if !ok {
		return nil, fmt.Errorf("gpu: stream %#x was not registered with TRTMemory", h)
	}
	return s, nil
}

// Alloc allocates device memory; the caller (trt.Model) closes it.
func (m *TRTMemory) Alloc(bytes int64) (trt.DeviceBuffer, error) {
	if bytes <= 0 || bytes > int64(^uint(0)>>1) {
		return nil, fmt.Errorf("gpu: allocation of %d bytes", bytes)
	}
	return m.d.Alloc(int(bytes))
}

// CopyToDevice stages src in pinned memory and enqueues its copy into dst.
func (m *TRTMemory) CopyToDevice(dst trt.DeviceBuffer, src []float32, stream uintptr) error {
	return m.copy(dst, src, stream, true)
}

// CopyToHost enqueues the copy of src into pinned memory; dst is filled by Synchronize.
func (m *TRTMemory) CopyToHost(dst []float32, src trt.DeviceBuffer, stream uintptr) error {
	return m.copy(src, dst, stream, false)
}

func (m *TRTMemory) copy(dev trt.DeviceBuffer, host []float32, stream uintptr, in bool) error {
	s, err := m.stream(stream)
	if err != nil {
		return err
	}
	b, ok := dev.(*kgpu.Buffer)
	if !ok {
		return fmt.Errorf("gpu: device buffer of type %T is not a kernels/gpu buffer", dev)
	}
	if len(host) == 0 {
		return nil
	}
	h, err := m.d.Pool().Host(4 * len(host))
	if err != nil {
		return err
	}
	if in {
		copy(h.Float32s(), host)
		err = s.CopyToDevice(b, h, 4*len(host))
	} else {
		err = s.CopyToHost(h, b, 4*len(host))
	}
	if err != nil {
		// Nothing was enqueued: the buffer is free again.
		m.d.Pool().PutHost(h)
		return err
	}
	st := staged{h: h}
	if !in {
		st.dst = host
	}
	m.mu.Lock()
	m.pending[stream] = append(m.pending[stream], st)
	m.mu.Unlock()
	return nil
}

// Synchronize waits for the stream, copies the staged outputs into their slices and gives
// the pinned buffers back to the pool.
func (m *TRTMemory) Synchronize(stream uintptr) error {
	s, err := m.stream(stream)
	if err != nil {
		return err
	}
	err = s.Sync()
	m.mu.Lock()
	list := m.pending[stream]
	delete(m.pending, stream)
	m.mu.Unlock()
	for _, st := range list {
		if err == nil && st.dst != nil {
			copy(st.dst, st.h.Float32s())
		}
		if err == nil {
			m.d.Pool().PutHost(st.h)
		}
		// After a failed sync the copies may still be in flight: the buffers are leaked to
		// the stream rather than reused (the worker process is restarted after such faults).
	}
	return err
}

// workspace is device memory by role, each buffer grown on demand. Growing frees the old
// buffer, which is safe even with work still enqueued on it: cudaFree waits for the device
// (Buffer.Close), at the cost of a stall when a later call needs more room.
type workspace struct {
	dev  *kgpu.Device
	bufs map[string]*kgpu.Buffer
}

// get returns the buffer of role, at least n bytes.
func (w *workspace) get(role string, n int) (*kgpu.Buffer, error) {
	if b := w.bufs[role]; b != nil && b.Len() >= n {
		return b, nil
	}
	if err := w.drop(role); err != nil {
		return nil, err
	}
	b, err := w.dev.Alloc(max(n, 1))
	if err != nil {
		return nil, fmt.Errorf("%s workspace of %d bytes: %w", role, n, err)
	}
	if w.bufs == nil {
		w.bufs = map[string]*kgpu.Buffer{}
	}
	w.bufs[role] = b
	return b, nil
}

// drop frees the buffer of role, if any.
func (w *workspace) drop(role string) error {
	b := w.bufs[role]
	delete(w.bufs, role)
	return b.Close()
}

// close frees every buffer; the workspace can be used again.
func (w *workspace) close() error {
	var errs []error
	for role := range w.bufs {
		errs = append(errs, w.drop(role))
	}
	return errors.Join(errs...)
}
