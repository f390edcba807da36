package ort

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	onnxruntime "github.com/yalue/onnxruntime_go"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// ErrClosed is returned by Run on a model that has been closed.
var ErrClosed = errors.New("ort: model is closed")

// Options configures Open. The zero value is ready to use.
type Options struct {
	// LibraryPath is the ONNX Runtime shared library to load. Empty means: search as
	// FindLibrary does. It matters only to the first Open of the process, which loads the
	// library; a later Open naming a different file is an error.
	LibraryPath string
	// IntraOpThreads is the number of threads one Run uses inside an operator; 0 means
	// runtime.NumCPU().
	IntraOpThreads int
	// BatchInvariant makes each sample's outputs independent of the batch it runs in, bit
	// for bit. Without it, ONNX Runtime's threaded kernels split one sample's work across
	// threads when the batch is smaller than the thread count, in another summation order
	// than when each thread takes whole samples (on the tiny MedLAM: up to 1e-5 apart between
	// batch 1 and batch 2 on 2 threads). With it, the session runs one thread per call and
	// Run spreads the batch over IntraOpThreads goroutines, each running whole samples; the
	// price is that a batch of one uses one core. A model whose inputs have no dynamic batch
	// (such as the public SAM decoder) has nothing to be invariant to and keeps its threads.
	BatchInvariant bool
}

// Model is an ONNX model loaded in ONNX Runtime on the CPU. It implements backend.Model.
//
// Run is safe for concurrent use: ONNX Runtime sessions allow concurrent runs, and each call
// binds its own tensors. Results are deterministic run to run; across batch sizes they are
// bit for bit equal only with Options.BatchInvariant or one thread (see there). Close waits
// for runs in flight, then frees the session; whoever called Open must call Close.
type Model struct {
	path     string
	name     string // base name of path, for errors
	manifest *backend.Manifest
	inputs   []backend.TensorInfo
	outputs  []backend.TensorInfo
	batched  bool // some input has a dynamic dimension 0, which sets the batch
	workers  int  // BatchInvariant: goroutines a batch is spread over; 0 when off
	// runSized: some output's size is known only once the model has run (see
	// checkDynamic), so ONNX Runtime allocates the outputs and Run copies them out.
	runSized bool

	mu      sync.RWMutex // guards session against Close during Run
	session *onnxruntime.DynamicAdvancedSession
}

var _ backend.Model = (*Model)(nil)

// Open loads the ONNX model at path and its manifest (path + ".json"). It refuses the model
// when the manifest is missing, does not match the file's digest, or describes other
// tensors than the file has, and it returns an error wrapping backend.ErrUnavailable when
// the ONNX Runtime library cannot be found or loaded.
func Open(path string, opt Options) (*Model, error) {
	name := filepath.Base(path)
	man, err := backend.LoadManifest(path)
	if err != nil {
		return nil, fmt.Errorf("ort: open %s: %w", path, err)
	}
	if err := initEnvironment(opt.LibraryPath); err != nil {
		return nil, err
	}
	m := &Model{path: path, name: name, manifest: man}
	if err := m.readTensorInfo(); err != nil {
		return nil, err
	}
	if err := man.Check(name, m); err != nil {
		return nil, fmt.Errorf("ort: %s does not match its manifest %s: %w",
			path, backend.ManifestPath(path), err)
	}
	m.checkDynamic()

	threads := opt.IntraOpThreads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	if opt.BatchInvariant && m.batched {
		m.workers, threads = threads, 1
	}
	so, err := onnxruntime.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: %s: session options: %w", path, err)
	}
	defer so.Destroy() // the session keeps its own copy
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		return nil, fmt.Errorf("ort: %s: intra-op threads %d: %w", path, threads, err)
	}
	m.session, err = onnxruntime.NewDynamicAdvancedSession(path,
		tensorNames(m.inputs), tensorNames(m.outputs), so)
	if err != nil {
		return nil, fmt.Errorf("ort: %s: creating session: %w", path, err)
	}
	slog.Debug("ort model loaded", "path", path, "model", man.Model,
		"intra_op_threads", threads, "batch_workers", m.workers, "library", env.lib)
	return m, nil
}

// readTensorInfo fills m.inputs and m.outputs from the ONNX file itself. It loads the file
// in a throw-away session with graph optimisation off, which only parses it.
func (m *Model) readTensorInfo() error {
	so, err := onnxruntime.NewSessionOptions()
	if err != nil {
		return fmt.Errorf("ort: %s: session options: %w", m.path, err)
	}
	defer so.Destroy()
	err = so.SetGraphOptimizationLevel(onnxruntime.GraphOptimizationLevelDisableAll)
	if err != nil {
		return fmt.Errorf("ort: %s: session options: %w", m.path, err)
	}
	ins, outs, err := onnxruntime.GetInputOutputInfoWithOptions(m.path, so)
	if err != nil {
		return fmt.Errorf("ort: %s: reading inputs and outputs: %w", m.path, err)
	}
	if m.inputs, err = convertInfo(m.path, "input", ins); err != nil {
		return err
	}
	m.outputs, err = convertInfo(m.path, "output", outs)
	return err
}

func convertInfo(path, kind string, infos []onnxruntime.InputOutputInfo) (
	[]backend.TensorInfo, error) {
	out := make([]backend.TensorInfo, 0, len(infos))
	for _, in := range infos {
		if in.OrtValueType != onnxruntime.ONNXTypeTensor {
			return nil, fmt.Errorf("ort: %s: %s %q is a %s, not a tensor",
				path, kind, in.Name, in.OrtValueType)
		}
		var dt backend.DataType
		switch in.DataType {
		case onnxruntime.TensorElementDataTypeFloat:
			dt = backend.Float32
		case onnxruntime.TensorElementDataTypeFloat16:
			dt = backend.Float16
		case onnxruntime.TensorElementDataTypeInt64:
			dt = backend.Int64
		case onnxruntime.TensorElementDataTypeBool:
			dt = backend.Bool
		default:
			return nil, fmt.Errorf("ort: %s: %s %q has element type %s, "+
				"which no model contract uses", path, kind, in.Name, in.DataType)
		}
		out = append(out, backend.TensorInfo{
			Name:  in.Name,
			Shape: slices.Clone([]int64(in.Dimensions)),
			Type:  dt,
		})
	}
	return out, nil
}

// checkDynamic notes which inputs set the batch and whether Run can size every output before
// running. An output with a dynamic dimension other than the batch, or with a dynamic batch
// that no input sets, gets its size from the run itself (in the public SAM decoder, the masks
// follow the value of orig_im_size): such a model runs with outputs that ONNX Runtime
// allocates (runAllocated) instead of the zero-copy path.
func (m *Model) checkDynamic() {
	for _, in := range m.inputs {
		if dynamicBatch(in.Shape) {
			m.batched = true
		}
	}
	for _, out := range m.outputs {
		for d, n := range out.Shape {
			if n < 0 && (d > 0 || !m.batched) {
				m.runSized = true
			}
		}
	}
	if m.runSized {
		slog.Debug("ort model outputs sized at run time", "path", m.path)
	}
}

// dynamicBatch reports whether dimension 0 of shape is dynamic, that is, the batch.
func dynamicBatch(shape []int64) bool { return len(shape) > 0 && shape[0] < 0 }

func tensorNames(ts []backend.TensorInfo) []string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	return names
}

// Path returns the model file's path as given to Open.
func (m *Model) Path() string { return m.path }

// Manifest returns the model's manifest. The caller must not modify it.
func (m *Model) Manifest() *backend.Manifest { return m.manifest }

// Inputs describes the model's inputs as the ONNX file declares them; -1 is dynamic. The
// caller must not modify the result.
func (m *Model) Inputs() []backend.TensorInfo { return m.inputs }

// Outputs describes the model's outputs as the ONNX file declares them; -1 is dynamic. The
// caller must not modify the result.
func (m *Model) Outputs() []backend.TensorInfo { return m.outputs }

// Run evaluates the model. inputs must hold every model input exactly once, by name, each a
// float32 tensor whose static dimensions equal the model's, whose dynamic ones are at least
// 1, and, where dimension 0 is dynamic, with the same batch for all. names lists the outputs
// wanted, each once; they come back in that order, in new slices that the caller owns. A
// shape that breaks the contract is an error wrapping backend.ErrShape naming the tensor.
//
// Run neither copies nor keeps the input slices: ONNX Runtime reads them in place during the
// call, so the caller must not write to them until Run returns. Outputs are written in place
// too, into slices Run allocates from the declared shapes, except for a model whose output
// sizes are known only once it has run (a dynamic dimension other than the batch, or a
// dynamic batch no input sets, as the public SAM decoder's masks): ONNX Runtime allocates
// those, and Run returns them with the shapes they came back with, after checking them
// against the declared ones. Run is safe for concurrent use.
func (m *Model) Run(inputs []backend.Tensor, names []string) ([]backend.Tensor, error) {
	batch, err := m.checkInputs(inputs)
	if err != nil {
		return nil, err
	}
	if m.runSized {
		return m.runAllocated(inputs, names, batch)
	}
	outs, err := m.allocOutputs(names, batch)
	if err != nil {
		return nil, err
	}

	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.session == nil {
		return nil, fmt.Errorf("%w: %s", ErrClosed, m.name)
	}
	if m.workers > 1 && batch > 1 && m.splittable(outs) {
		err = m.runSplit(inputs, outs, batch)
	} else {
		err = m.run(inputs, outs)
	}
	if err != nil {
		return nil, err
	}
	return outs, nil
}

// splittable reports whether every requested output carries the batch in dimension 0, so
// that the batch can be cut into independent runs.
func (m *Model) splittable(outs []backend.Tensor) bool {
	for _, o := range outs {
		j := slices.IndexFunc(m.outputs, func(t backend.TensorInfo) bool { return t.Name == o.Name })
		if !dynamicBatch(m.outputs[j].Shape) {
			return false
		}
	}
	return m.batched
}

// runSplit cuts the batch into up to m.workers contiguous parts and runs them concurrently,
// each on views of the caller's inputs and of outs, so nothing is copied. The caller holds
// m.mu for reading.
func (m *Model) runSplit(inputs, outs []backend.Tensor, batch int64) error {
	workers := min(int64(m.workers), batch)
	part := (batch + workers - 1) / workers
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		lo, hi := w*part, min(batch, (w+1)*part)
		if lo >= hi {
			break
		}
		ins := make([]backend.Tensor, len(inputs))
		for i, in := range inputs {
			j := slices.IndexFunc(m.inputs, func(t backend.TensorInfo) bool {
				return t.Name == in.Name
			})
			ins[i] = in
			if dynamicBatch(m.inputs[j].Shape) {
				ins[i] = batchView(in, lo, hi)
			}
		}
		parts := make([]backend.Tensor, len(outs))
		for i, o := range outs {
			parts[i] = batchView(o, lo, hi)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = m.run(ins, parts)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// batchView returns samples [lo, hi) of t, sharing its data.
func batchView(t backend.Tensor, lo, hi int64) backend.Tensor {
	per := int64(len(t.Data)) / t.Shape[0]
	shape := slices.Clone(t.Shape)
	shape[0] = hi - lo
	return backend.Tensor{Name: t.Name, Shape: shape, Data: t.Data[lo*per : hi*per]}
}

// run binds the inputs and the preallocated outputs and runs the session once. The caller
// holds m.mu for reading.
func (m *Model) run(inputs, outs []backend.Tensor) error {
	// Teardown order matters: the binding and the native tensors refer to the Go slices, so
	// they are released (deferred later, run first) before the slices are unpinned.
	var pins runtime.Pinner
	defer pins.Unpin()
	var values []onnxruntime.Value
	defer func() {
		for _, v := range values {
			v.Destroy()
		}
	}()
	binding, err := m.session.CreateIoBinding()
	if err != nil {
		return fmt.Errorf("ort: %s: creating I/O binding: %w", m.name, err)
	}
	defer binding.Destroy()

	// wrap pins t's data and makes a native tensor over it without copying.
	wrap := func(t backend.Tensor) (onnxruntime.Value, error) {
		pins.Pin(&t.Data[0])
		v, err := onnxruntime.NewTensor(onnxruntime.Shape(t.Shape), t.Data)
		if err != nil {
			return nil, fmt.Errorf("ort: %s: tensor %q: %w", m.name, t.Name, err)
		}
		values = append(values, v)
		return v, nil
	}
	for _, in := range inputs {
		v, err := wrap(in)
		if err != nil {
			return err
		}
		if err := binding.BindInput(in.Name, v); err != nil {
			return fmt.Errorf("ort: %s: binding input %q: %w", m.name, in.Name, err)
		}
	}
	for _, out := range outs {
		v, err := wrap(out)
		if err != nil {
			return err
		}
		if err := binding.BindOutput(out.Name, v); err != nil {
			return fmt.Errorf("ort: %s: binding output %q: %w", m.name, out.Name, err)
		}
	}
	if err := m.session.RunWithBinding(binding); err != nil {
		return fmt.Errorf("ort: %s: run: %w", m.name, err)
	}
	return nil
}

// checkInputs validates inputs against the model's inputs and returns the batch size (1 for
// a model without a dynamic batch).
func (m *Model) checkInputs(inputs []backend.Tensor) (int64, error) {
	if len(inputs) != len(m.inputs) {
		return 0, fmt.Errorf("ort: %s: got %d inputs, the model takes %d (%v): %w",
			m.name, len(inputs), len(m.inputs), tensorNames(m.inputs), backend.ErrShape)
	}
	batch, batchFrom := int64(-1), ""
	for i, in := range inputs {
		j := slices.IndexFunc(m.inputs, func(t backend.TensorInfo) bool { return t.Name == in.Name })
		if j < 0 {
			return 0, fmt.Errorf("ort: %s: no input named %q (inputs: %v)",
				m.name, in.Name, tensorNames(m.inputs))
		}
		if k := slices.IndexFunc(inputs[:i], func(t backend.Tensor) bool {
			return t.Name == in.Name
		}); k >= 0 {
			return 0, fmt.Errorf("ort: %s: input %q given twice", m.name, in.Name)
		}
		want := m.inputs[j]
		if want.Type != backend.Float32 {
			return 0, fmt.Errorf("ort: %s: input %q is %s; Run passes float32 only",
				m.name, in.Name, want.Type)
		}
		if err := checkShape(in, want.Shape); err != nil {
			return 0, fmt.Errorf("ort: %s: %w", m.name, err)
		}
		if !dynamicBatch(want.Shape) {
			continue
		}
		if batch >= 0 && in.Shape[0] != batch {
			return 0, fmt.Errorf("ort: %s: input %q has batch %d but input %q has %d: %w",
				m.name, in.Name, in.Shape[0], batchFrom, batch, backend.ErrShape)
		}
		batch, batchFrom = in.Shape[0], in.Name
	}
	if batch < 0 {
		batch = 1
	}
	return batch, nil
}

// checkShape checks one input tensor's shape against the model's (-1 dynamic) and its data
// length against its shape.
func checkShape(t backend.Tensor, want []int64) error {
	if len(t.Shape) != len(want) {
		return fmt.Errorf("input %q has shape %v, the model wants %v: %w",
			t.Name, t.Shape, want, backend.ErrShape)
	}
	n := int64(1)
	for d, got := range t.Shape {
		if got < 1 || (want[d] >= 0 && got != want[d]) {
			return fmt.Errorf("input %q has shape %v, the model wants %v: %w",
				t.Name, t.Shape, want, backend.ErrShape)
		}
		// Stop before the product can overflow: it must end up equal to len(t.Data).
		if n > int64(len(t.Data))/got {
			n = -1
			break
		}
		n *= got
	}
	if n != int64(len(t.Data)) {
		return fmt.Errorf("input %q has shape %v but %d values: %w",
			t.Name, t.Shape, len(t.Data), backend.ErrShape)
	}
	return nil
}

// outputInfo returns the declared tensor of each requested output name, refusing an empty
// request, unknown or repeated names and outputs that are not float32.
func (m *Model) outputInfo(names []string) ([]backend.TensorInfo, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("ort: %s: no outputs requested (outputs: %v)",
			m.name, tensorNames(m.outputs))
	}
	infos := make([]backend.TensorInfo, len(names))
	for i, name := range names {
		j := slices.IndexFunc(m.outputs, func(t backend.TensorInfo) bool { return t.Name == name })
		if j < 0 {
			return nil, fmt.Errorf("ort: %s: no output named %q (outputs: %v)",
				m.name, name, tensorNames(m.outputs))
		}
		if slices.Contains(names[:i], name) {
			return nil, fmt.Errorf("ort: %s: output %q requested twice", m.name, name)
		}
		if m.outputs[j].Type != backend.Float32 {
			return nil, fmt.Errorf("ort: %s: output %q is %s; Run returns float32 only",
				m.name, name, m.outputs[j].Type)
		}
		infos[i] = m.outputs[j]
	}
	return infos, nil
}

// allocOutputs returns one tensor per requested output name, its dynamic batch set to
// batch and its data allocated.
func (m *Model) allocOutputs(names []string, batch int64) ([]backend.Tensor, error) {
	infos, err := m.outputInfo(names)
	if err != nil {
		return nil, err
	}
	outs := make([]backend.Tensor, len(names))
	for i, info := range infos {
		shape := slices.Clone(info.Shape)
		n := int64(1)
		for d := range shape {
			if shape[d] < 0 {
				shape[d] = batch // checkDynamic leaves -1 in dimension 0 only, set by inputs
			}
			if shape[d] > 0 && n > math.MaxInt/shape[d] {
				return nil, fmt.Errorf("ort: %s: output %q of shape %v is too large",
					m.name, info.Name, shape)
			}
			n *= shape[d]
		}
		if n == 0 {
			return nil, fmt.Errorf("ort: %s: output %q has shape %v with no values",
				m.name, info.Name, shape)
		}
		outs[i] = backend.Tensor{Name: info.Name, Shape: shape, Data: make([]float32, n)}
	}
	return outs, nil
}

// runAllocated runs a model whose output sizes come from the run itself (Model.runSized).
// The inputs are wrapped without copying, as in run; every output is left to ONNX Runtime to
// allocate, and the requested ones are checked against their declared shapes (static
// dimensions, and a dynamic batch that the inputs set) and returned in the order of names.
// A batch is never split across workers here: the run's outputs are not known in advance.
//
// WARNING: onnxruntime_go copies each allocated output into a Go slice and wraps that slice
// in a native tensor without pinning it (the flaw style.md notes); every such tensor is
// destroyed before this function returns, so no native object keeps Go memory afterwards.
func (m *Model) runAllocated(inputs []backend.Tensor, names []string, batch int64) (
	[]backend.Tensor, error) {
	infos, err := m.outputInfo(names)
	if err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.session == nil {
		return nil, fmt.Errorf("%w: %s", ErrClosed, m.name)
	}

	// Teardown order as in run: native values first (deferred later, run first), then unpin.
	var pins runtime.Pinner
	defer pins.Unpin()
	// TODO(#4): the session computes every output, also those not requested (the public SAM
	// decoder's masks, [1,4,H,W] at orig_im_size; their cost is not measured); a session per
	// requested set of outputs would skip them.
	ins := make([]onnxruntime.Value, len(m.inputs))
	outs := make([]onnxruntime.Value, len(m.outputs)) // nil: ONNX Runtime allocates
	defer func() {
		for _, v := range slices.Concat(ins, outs) {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for _, in := range inputs {
		j := slices.IndexFunc(m.inputs, func(t backend.TensorInfo) bool { return t.Name == in.Name })
		pins.Pin(&in.Data[0])
		v, err := onnxruntime.NewTensor(onnxruntime.Shape(in.Shape), in.Data)
		if err != nil {
			return nil, fmt.Errorf("ort: %s: tensor %q: %w", m.name, in.Name, err)
		}
		ins[j] = v
	}
	if err := m.session.Run(ins, outs); err != nil {
		return nil, fmt.Errorf("ort: %s: run: %w", m.name, err)
	}

	res := make([]backend.Tensor, len(infos))
	for i, info := range infos {
		j := slices.IndexFunc(m.outputs, func(t backend.TensorInfo) bool {
			return t.Name == info.Name
		})
		t, ok := outs[j].(*onnxruntime.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("ort: %s: output %q came back as %T, not float32",
				m.name, info.Name, outs[j])
		}
		shape := []int64(t.GetShape())
		if err := m.checkOutputShape(info, shape, batch); err != nil {
			return nil, err
		}
		data := t.GetData()
		if int64(len(data)) != backend.Elements(shape) {
			return nil, fmt.Errorf("ort: %s: output %q of shape %v has %d values: %w",
				m.name, info.Name, shape, len(data), backend.ErrShape)
		}
		// The slice is Go memory that onnxruntime_go allocated for this tensor alone; once
		// the deferred Destroy releases the native tensor, the caller owns it outright.
		res[i] = backend.Tensor{Name: info.Name, Shape: slices.Clone(shape), Data: data}
	}
	return res, nil
}

// checkOutputShape checks a shape an output came back with against its declaration: same
// rank, the static dimensions equal, and a dynamic batch equal to the inputs' when an input
// sets it.
func (m *Model) checkOutputShape(info backend.TensorInfo, got []int64, batch int64) error {
	bad := len(got) != len(info.Shape)
	for d := 0; !bad && d < len(got); d++ {
		want := info.Shape[d]
		switch {
		case got[d] < 0:
			bad = true
		case want >= 0:
			bad = got[d] != want
		case d == 0 && m.batched:
			bad = got[d] != batch
		}
	}
	if bad {
		return fmt.Errorf("ort: %s: output %q came back with shape %v; declared %v, batch %d: %w",
			m.name, info.Name, got, info.Shape, batch, backend.ErrShape)
	}
	return nil
}

// Close frees the native session. It waits for runs in flight, is idempotent and accepts a
// nil Model. The process-wide ONNX Runtime environment stays loaded.
func (m *Model) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.session == nil {
		return nil
	}
	err := m.session.Destroy()
	m.session = nil
	if err != nil {
		return fmt.Errorf("ort: closing %s: %w", m.name, err)
	}
	return nil
}
