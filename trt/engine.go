package trt

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// Options configures Open.
type Options struct {
	// Machine is the GPU this process runs on (engine/gpu fills it from NVML). Its TensorRT
	// field may be left zero: Open then takes the version of the loaded library.
	Machine Machine
	// ONNX, when set, is the ONNX export the engine must have been built from (its
	// manifest's sha256 is compared with the engine manifest's onnx_sha256).
	ONNX string
}

// Profile is one optimisation profile: the min, opt and max shape of each input.
type Profile struct {
	Index int
	Min   map[string][]int64
	Opt   map[string][]int64
	Max   map[string][]int64
}

// BatchRange returns the profile's min, opt and max of dimension 0 over the inputs whose
// dimension 0 is dynamic (the batch); ok is false when no input has a dynamic batch.
func (p Profile) BatchRange(inputs []backend.TensorInfo) (lo, opt, hi int64, ok bool) {
	lo, hi = 1, -1
	for _, in := range inputs {
		if len(in.Shape) == 0 || in.Shape[0] >= 0 {
			continue
		}
		mn, op, mx := p.Min[in.Name][0], p.Opt[in.Name][0], p.Max[in.Name][0]
		if !ok {
			lo, opt, hi, ok = mn, op, mx, true
			continue
		}
		lo, hi = max(lo, mn), min(hi, mx)
	}
	// Batched inputs normally share one range; if not, the usable range is the intersection
	// and the first input's optimum, clamped into it.
	return lo, min(max(opt, lo), hi), hi, ok
}

// Engine is a deserialised TensorRT engine with its manifest. It owns its runtime and
// engine objects; Close releases them once no Context is left. Its methods are safe for
// concurrent use; NewContext gives each stream its own Context.
type Engine struct {
	nat      native
	name     string // plan base name, for errors
	manifest *EngineManifest
	inputs   []backend.TensorInfo
	outputs  []backend.TensorInfo
	profiles []Profile

	mu       sync.Mutex
	rt, eng  handle
	contexts int  // open Contexts
	closed   bool // Close called; native objects go when contexts reaches 0
}

// Open reads the engine plan at planPath with its manifest (planPath + ".json") and
// deserialises it. It refuses, before deserialising, an engine whose manifest names
// another GPU or TensorRT version than opt.Machine or another ONNX file than opt.ONNX, or
// whose plan does not match the manifest's digest; after, an engine whose tensors differ
// from the manifest. The caller must Close the Engine. Without the `tensorrt` build tag,
// Open returns ErrNotBuilt.
func Open(planPath string, opt Options) (*Engine, error) {
	nat, err := defaultNative()
	if err != nil {
		return nil, err
	}
	return openWith(nat, planPath, opt)
}

func openWith(nat native, planPath string, opt Options) (*Engine, error) {
	man, err := LoadEngineManifest(planPath)
	if err != nil {
		return nil, err
	}
	mach := opt.Machine
	if mach.GPUName == "" || mach.ComputeCapability == "" {
		return nil, fmt.Errorf("trt: open %s: Options.Machine must name the GPU and its "+
			"compute capability", planPath)
	}
	if mach.TensorRT.IsZero() {
		mach.TensorRT = nat.libraryVersion()
	}
	if err := man.CheckMachine(mach); err != nil {
		return nil, err
	}
	if opt.ONNX != "" {
		if err := man.CheckONNX(opt.ONNX); err != nil {
			return nil, err
		}
	}
	plan, err := man.readPlan(planPath)
	if err != nil {
		return nil, err
	}

	e := &Engine{nat: nat, name: filepath.Base(planPath), manifest: man}
	if e.rt, err = nat.newRuntime(); err != nil {
		return nil, fmt.Errorf("trt: open %s: %w", planPath, err)
	}
	if e.eng, err = nat.deserialize(e.rt, plan); err != nil {
		nat.destroyRuntime(e.rt)
		return nil, fmt.Errorf("trt: open %s: %w; %s", planPath, err, man.rebuildHint())
	}
	if err := e.describe(); err != nil {
		e.release()
		return nil, fmt.Errorf("trt: open %s: %w", planPath, err)
	}
	return e, nil
}

// describe reads the I/O tensors and profiles and checks them against the manifest.
func (e *Engine) describe() error {
	ios, err := e.nat.ioTensors(e.eng)
	if err != nil {
		return err
	}
	for _, t := range ios {
		dt, err := dataType(t.name, t.dtype)
		if err != nil {
			return err
		}
		info := backend.TensorInfo{Name: t.name, Shape: slices.Clone(t.shape), Type: dt}
		if t.input {
			e.inputs = append(e.inputs, info)
		} else {
			e.outputs = append(e.outputs, info)
		}
	}
	if err := e.manifest.Check(e.name, tensorList{e.inputs, e.outputs}); err != nil {
		return fmt.Errorf("engine tensors differ from the manifest: %w", err)
	}
	n := e.nat.numProfiles(e.eng)
	if n < 1 {
		return errNoProfiles
	}
	for p := range n {
		prof := Profile{Index: p, Min: map[string][]int64{}, Opt: map[string][]int64{},
			Max: map[string][]int64{}}
		for _, in := range e.inputs {
			for sel, dst := range []map[string][]int64{prof.Min, prof.Opt, prof.Max} {
				s, err := e.nat.profileShape(e.eng, in.Name, p, selector(sel))
				if err != nil {
					return err
				}
				if len(s) != len(in.Shape) {
					return fmt.Errorf("profile %d gives input %q rank %d, the tensor has %d",
						p, in.Name, len(s), len(in.Shape))
				}
				dst[in.Name] = s
			}
		}
		e.profiles = append(e.profiles, prof)
	}
	return nil
}

// tensorList adapts tensor lists to backend.Model for Manifest.Check; it runs nothing.
type tensorList struct{ in, out []backend.TensorInfo }

func (t tensorList) Inputs() []backend.TensorInfo  { return t.in }
func (t tensorList) Outputs() []backend.TensorInfo { return t.out }
func (t tensorList) Run([]backend.Tensor, []string) ([]backend.Tensor, error) {
	return nil, fmt.Errorf("trt: tensor list cannot run")
}
func (t tensorList) Close() error { return nil }

// Manifest returns the engine's manifest. The caller must not modify it.
func (e *Engine) Manifest() *EngineManifest { return e.manifest }

// Inputs and Outputs describe the engine's tensors; -1 marks a dynamic dimension.
func (e *Engine) Inputs() []backend.TensorInfo  { return e.inputs }
func (e *Engine) Outputs() []backend.TensorInfo { return e.outputs }

// Profiles returns the engine's optimisation profiles, in engine order.
func (e *Engine) Profiles() []Profile { return e.profiles }

// DeviceMemory returns the scratch memory one Context needs, in bytes, or -1 if unknown.
func (e *Engine) DeviceMemory() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.eng == 0 {
		return -1
	}
	return e.nat.deviceMemory(e.eng)
}

// MaxBatch returns the largest batch any profile accepts (1 for an engine without a
// dynamic batch). Callers split larger batches.
func (e *Engine) MaxBatch() int64 {
	best := int64(1)
	for _, p := range e.profiles {
		if _, _, hi, ok := p.BatchRange(e.inputs); ok {
			best = max(best, hi)
		}
	}
	return best
}

// ProfileFor chooses the profile for a batch: among the profiles whose batch range holds
// batch, the one with the smallest maximum (its tactics were tuned nearest to the batch),
// then the one whose optimum is nearest. The error wraps backend.ErrShape and lists the
// ranges.
func (e *Engine) ProfileFor(batch int64) (int, error) {
	best, bestHi, bestDist := -1, int64(0), int64(0)
	var ranges []string
	for _, p := range e.profiles {
		lo, opt, hi, ok := p.BatchRange(e.inputs)
		if !ok {
			return p.Index, nil // no dynamic batch: any profile fits
		}
		ranges = append(ranges, fmt.Sprintf("%d..%d", lo, hi))
		if batch < lo || batch > hi {
			continue
		}
		dist := max(opt-batch, batch-opt)
		if best < 0 || hi < bestHi || (hi == bestHi && dist < bestDist) {
			best, bestHi, bestDist = p.Index, hi, dist
		}
	}
	if best < 0 {
		return -1, fmt.Errorf("%w: trt: %s: batch %d is outside every profile (%s); split the "+
			"batch or rebuild the engine with a wider profile", backend.ErrShape, e.name, batch,
			strings.Join(ranges, ", "))
	}
	return best, nil
}

// checkShapes checks a full set of input shapes against profile p: every input named once,
// ranks and static dimensions as the engine has them, dynamic ones within the profile, one
// batch across inputs. Errors wrap backend.ErrShape.
func (e *Engine) checkShapes(shapes map[string][]int64, p int) error {
	if len(shapes) != len(e.inputs) {
		return fmt.Errorf("%w: trt: %s: %d input shapes, the engine has %d inputs",
			backend.ErrShape, e.name, len(shapes), len(e.inputs))
	}
	prof := e.profiles[p]
	for _, in := range e.inputs {
		s, ok := shapes[in.Name]
		if !ok {
			return fmt.Errorf("%w: trt: %s: no shape for input %q", backend.ErrShape, e.name,
				in.Name)
		}
		if len(s) != len(in.Shape) {
			return fmt.Errorf("%w: trt: %s: input %q has rank %d, the engine wants %v",
				backend.ErrShape, e.name, in.Name, len(s), in.Shape)
		}
		mn, mx := prof.Min[in.Name], prof.Max[in.Name]
		for d, want := range in.Shape {
			if (want >= 0 && s[d] != want) || (want < 0 && (s[d] < mn[d] || s[d] > mx[d])) {
				return fmt.Errorf("%w: trt: %s: input %q has shape %v; the engine wants %v "+
					"with profile %d allowing %v to %v", backend.ErrShape, e.name, in.Name, s,
					in.Shape, p, mn, mx)
			}
		}
	}
	return nil
}

// acquire registers a new Context; it fails after Close.
func (e *Engine) acquire() (handle, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0, ErrClosed
	}
	c, err := e.nat.newContext(e.eng)
	if err != nil {
		return 0, err
	}
	e.contexts++
	return c, nil
}

// releaseContext destroys a Context's native object and, if the Engine was closed and this
// was its last Context, the engine.
func (e *Engine) releaseContext(c handle) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nat.destroyContext(c)
	e.contexts--
	if e.closed && e.contexts == 0 {
		e.releaseLocked()
	}
}

// Close marks the Engine closed: NewContext fails from now on, and the native engine and
// runtime are destroyed as soon as no Context is open (now, if none is). Close is
// idempotent and safe on a nil Engine.
func (e *Engine) Close() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if e.contexts == 0 {
		e.releaseLocked()
	}
	return nil
}

func (e *Engine) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.releaseLocked()
}

// releaseLocked destroys the engine before the runtime that deserialised it, as TensorRT
// requires.
func (e *Engine) releaseLocked() {
	if e.eng != 0 {
		e.nat.destroyEngine(e.eng)
		e.eng = 0
	}
	if e.rt != 0 {
		e.nat.destroyRuntime(e.rt)
		e.rt = 0
	}
}
