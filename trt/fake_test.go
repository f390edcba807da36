package trt

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// fakeNative implements native in memory. Its one engine doubles input x [B,4] into output
// y [B,4] and sums it into s [B], reading and writing fakeMemory through the bound
// addresses. Every call is logged, so tests can check the order of native calls.
type fakeNative struct {
	mu       sync.Mutex
	mem      *fakeMemory
	version  Version
	tensors  []ioTensor
	profiles [][3][]int64 // per profile: min, opt, max shape of x
	calls    []string
	next     handle
	live     map[handle]string // live handles and their kind
	// failures maps a method name to the error code it returns, once.
	failures map[string]Code

	ctxs map[handle]*fakeCtx
}

type fakeCtx struct {
	profile int
	shape   []int64
	addr    map[string]uintptr
}

func newFakeNative() *fakeNative {
	return &fakeNative{
		mem:     newFakeMemory(),
		version: Version{10, 13, 0},
		tensors: []ioTensor{
			{name: "x", input: true, dtype: trtFloat, shape: []int64{-1, 4}},
			{name: "y", dtype: trtFloat, shape: []int64{-1, 4}},
			{name: "s", dtype: trtFloat, shape: []int64{-1}},
		},
		profiles: [][3][]int64{
			{{1, 4}, {8, 4}, {32, 4}},
			{{1, 4}, {2, 4}, {4, 4}},
		},
		live:     map[handle]string{},
		failures: map[string]Code{},
		ctxs:     map[handle]*fakeCtx{},
	}
}

func (f *fakeNative) log(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// fail returns the injected error for method, once.
func (f *fakeNative) fail(method string) error {
	code, ok := f.failures[method]
	if !ok {
		return nil
	}
	delete(f.failures, method)
	return statusError(method, int32(code), "injected "+method+" failure")
}

func (f *fakeNative) newHandle(kind string) handle {
	f.next++
	f.live[f.next] = kind
	return f.next
}

func (f *fakeNative) headerVersion() Version  { return f.version }
func (f *fakeNative) libraryVersion() Version { return f.version }

func (f *fakeNative) newRuntime() (handle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("newRuntime"); err != nil {
		return 0, err
	}
	h := f.newHandle("runtime")
	f.log("newRuntime %d", h)
	return h, nil
}

func (f *fakeNative) destroyRuntime(rt handle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("destroyRuntime %d", rt)
	delete(f.live, rt)
}

func (f *fakeNative) deserialize(rt handle, plan []byte) (handle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("deserialize"); err != nil {
		return 0, err
	}
	if f.live[rt] != "runtime" {
		return 0, errors.New("fake: deserialize on a dead runtime")
	}
	h := f.newHandle("engine")
	f.log("deserialize %d", h)
	return h, nil
}

func (f *fakeNative) destroyEngine(e handle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("destroyEngine %d", e)
	delete(f.live, e)
}

func (f *fakeNative) ioTensors(e handle) ([]ioTensor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tensors), f.fail("ioTensors")
}

func (f *fakeNative) numProfiles(e handle) int { return len(f.profiles) }

func (f *fakeNative) profileShape(e handle, in string, p int, sel selector) ([]int64, error) {
	if in != "x" || p < 0 || p >= len(f.profiles) {
		return nil, statusError("profileShape", int32(CodeArgument), "bad input or profile")
	}
	return slices.Clone(f.profiles[p][sel]), nil
}

func (f *fakeNative) deviceMemory(e handle) int64 { return 1 << 20 }

func (f *fakeNative) newContext(e handle) (handle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("newContext"); err != nil {
		return 0, err
	}
	if f.live[e] != "engine" {
		return 0, errors.New("fake: context on a dead engine")
	}
	h := f.newHandle("context")
	f.ctxs[h] = &fakeCtx{profile: 0, addr: map[string]uintptr{}}
	f.log("newContext %d", h)
	return h, nil
}

func (f *fakeNative) destroyContext(c handle) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("destroyContext %d", c)
	delete(f.live, c)
	delete(f.ctxs, c)
}

func (f *fakeNative) setProfile(c handle, p int, stream uintptr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("setProfile %d", p)
	f.ctxs[c].profile = p
	return f.fail("setProfile")
}

func (f *fakeNative) setInputShape(c handle, name string, shape []int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("setInputShape"); err != nil {
		return err
	}
	ctx := f.ctxs[c]
	mn, mx := f.profiles[ctx.profile][selMin], f.profiles[ctx.profile][selMax]
	if shape[0] < mn[0] || shape[0] > mx[0] {
		// What TensorRT does when Go's checks are wrong: refuse, with a message.
		return statusError("setInputShape", int32(CodeTensorRT), "shape outside profile")
	}
	ctx.shape = slices.Clone(shape)
	return nil
}

func (f *fakeNative) tensorShape(c handle, name string) ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.ctxs[c].shape[0]
	switch name {
	case "y":
		return []int64{b, 4}, nil
	case "s":
		return []int64{b}, nil
	}
	return nil, statusError("tensorShape", int32(CodeArgument), "unknown tensor")
}

func (f *fakeNative) setAddress(c handle, name string, ptr uintptr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctxs[c].addr[name] = ptr
	return nil
}

func (f *fakeNative) enqueue(c handle, stream uintptr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("enqueue"); err != nil {
		return err
	}
	ctx := f.ctxs[c]
	f.log("enqueue profile %d batch %d", ctx.profile, ctx.shape[0])
	x := f.mem.view(ctx.addr["x"])
	y, s := f.mem.view(ctx.addr["y"]), f.mem.view(ctx.addr["s"])
	n := int(ctx.shape[0])
	clear(s[:n])
	for i := range n * 4 {
		y[i] = 2 * x[i]
		s[i/4] += x[i]
	}
	return nil
}

// fakeMemory is device memory in host slices, addressed by fake pointers.
type fakeMemory struct {
	mu     sync.Mutex
	next   uintptr
	bufs   map[uintptr][]float32
	allocs int
	frees  int
	syncs  int
}

func newFakeMemory() *fakeMemory {
	return &fakeMemory{next: 0x1000, bufs: map[uintptr][]float32{}}
}

type fakeBuffer struct {
	m     *fakeMemory
	ptr   uintptr
	bytes int64
}

func (b *fakeBuffer) Ptr() uintptr { return b.ptr }
func (b *fakeBuffer) Bytes() int64 { return b.bytes }
func (b *fakeBuffer) Close() error {
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	if _, ok := b.m.bufs[b.ptr]; !ok {
		return errors.New("fake: double free")
	}
	delete(b.m.bufs, b.ptr)
	b.m.frees++
	return nil
}

func (m *fakeMemory) Alloc(bytes int64) (DeviceBuffer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.next
	m.next += uintptr(bytes) + 256
	m.bufs[p] = make([]float32, (bytes+3)/4)
	m.allocs++
	return &fakeBuffer{m: m, ptr: p, bytes: bytes}, nil
}

func (m *fakeMemory) view(p uintptr) []float32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bufs[p]
}

func (m *fakeMemory) CopyToDevice(dst DeviceBuffer, src []float32, stream uintptr) error {
	d := m.view(dst.Ptr())
	if len(src) > len(d) {
		return errors.New("fake: copy overflows the buffer")
	}
	copy(d, src)
	clear(d[len(src):])
	return nil
}

func (m *fakeMemory) CopyToHost(dst []float32, src DeviceBuffer, stream uintptr) error {
	s := m.view(src.Ptr())
	if len(dst) > len(s) {
		return errors.New("fake: copy reads past the buffer")
	}
	copy(dst, s)
	return nil
}

func (m *fakeMemory) Synchronize(stream uintptr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncs++
	return nil
}
