//go:build cuda

package gpu

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// DeviceLocaliser runs MedLAM's localisation of a query (method.md sections 1 and 4) on one
// GPU, on a volume already on the device: reorientation to LAS, trilinear resampling to
// 3 mm and the HU normalisation (kernels/gpu), then localize.LocateWith with device Steps:
// the crops are cut on the device into the TensorRT engine's input, the features stay on
// the device for the similarity search against template kernels uploaded once, and only
// the coarse positions (3 floats a crop), the crop-centre air checks (one float a
// candidate) and the matches (8 bytes a point) come back. The arithmetic between the steps
// is localize's, shared with the CPU path, so both localise the same way.
//
// A DeviceLocaliser serves one template set. Its workspace is used by one query at a time
// (the scheduler's compute turns); it keeps one TensorRT context per stream. Close frees the
// workspace, the contexts, the template kernels and the search, not the engines or device.
type DeviceLocaliser struct {
	Dev *kgpu.Device
	// Full is the MedLAM engine (patch -> position, feature0..2); Encoder the encoder-only
	// variant for the coarse step, or nil to run Full there.
	Full, Encoder *trt.Engine
	Set           *localize.TemplateSet
	// Config gives the seed, the coarse crops and the batch (patches per engine call,
	// capped by the engines' profiles; 0 for the profile's optimum within about 1 GiB of
	// workspace); Kernels and
	// Resampling are not used: queries are resampled on the device as the template set
	// records (Set.Resampling).
	Config localize.Config
	// MaxBatch, when positive, caps the batch however it was chosen: a localisation
	// worker's batch, which the supervisor halves after an out-of-memory fault.
	MaxBatch int

	search *kgpu.SimilaritySearch
	kern   [3]*kgpu.Buffer // template kernels per scale, [point][C][k^3]
	ctx    map[*trt.Engine]map[uintptr]*trt.Context
	ws     workspace
}

// NewDeviceLocaliser checks the engines against the MedLAM contract (localize's tensor
// names, float32 tensors, the template set's model) and uploads the template set's kernels.
// The caller must Close it.
func NewDeviceLocaliser(dev *kgpu.Device, full, enc *trt.Engine, ts *localize.TemplateSet,
	cfg localize.Config) (*DeviceLocaliser, error) {
	if err := ts.Validate(); err != nil {
		return nil, err
	}
	if err := checkMedLAM(full, true); err != nil {
		return nil, err
	}
	if enc != nil {
		if err := checkMedLAM(enc, false); err != nil {
			return nil, err
		}
	}
	if m := full.Manifest().ONNXSHA256; m != ts.ModelSHA256 {
		return nil, fmt.Errorf("gpu: engine %s was built from ONNX %s, the template set "+
			"records model %s: %w", full.Manifest().File, short(m), short(ts.ModelSHA256),
			localize.ErrOtherModel)
	}
	search, err := dev.NewSimilaritySearch(ts.Scales(), localize.Patch)
	if err != nil {
		return nil, err
	}
	l := &DeviceLocaliser{Dev: dev, Full: full, Encoder: enc, Set: ts, Config: cfg,
		search: search, ctx: map[*trt.Engine]map[uintptr]*trt.Context{},
		ws: workspace{dev: dev}}
	if err := l.uploadKernels(); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

func short(s string) string { return s[:min(12, len(s))] }

// checkMedLAM checks that e takes localize.InputPatch and gives localize.OutputPosition
// (and the feature maps when full), all float32.
func checkMedLAM(e *trt.Engine, full bool) error {
	want := map[string]bool{localize.InputPatch: true, localize.OutputPosition: false}
	if full {
		for _, f := range localize.OutputFeatures {
			want[f] = false
		}
	}
	for name, input := range want {
		list := e.Outputs()
		if input {
			list = e.Inputs()
		}
		i := slices.IndexFunc(list, func(t backend.TensorInfo) bool { return t.Name == name })
		if i < 0 {
			return fmt.Errorf("gpu: engine %s has no tensor %q (the MedLAM contract of "+
				"engine/localize)", e.Manifest().File, name)
		}
		if list[i].Type != backend.Float32 {
			return fmt.Errorf("gpu: tensor %q of %s is %s, want float32", name,
				e.Manifest().File, list[i].Type)
		}
	}
	for _, t := range e.Outputs() {
		if t.Type != backend.Float32 {
			return fmt.Errorf("gpu: output %q of %s is %s, want float32", t.Name,
				e.Manifest().File, t.Type)
		}
	}
	return nil
}

// uploadKernels copies the template kernels to the device once, through pinned memory on a
// stream of its own.
func (l *DeviceLocaliser) uploadKernels() error {
	s, err := l.Dev.NewStream()
	if err != nil {
		return err
	}
	defer s.Close()
	pool := l.Dev.Pool()
	var hosts []*kgpu.HostBuffer
	defer func() {
		// Only once no copy can read them (an early return may leave copies in flight).
		if s.Sync() == nil {
			for _, h := range hosts {
				pool.PutHost(h)
			}
		}
	}()
	for i, k := range l.Set.Kernels {
		n := 4 * len(k)
		h, err := pool.Host(n)
		if err != nil {
			return err
		}
		hosts = append(hosts, h)
		copy(h.Float32s(), k)
		if l.kern[i], err = l.Dev.Alloc(n); err != nil {
			return err
		}
		if err := s.CopyToDevice(l.kern[i], h, n); err != nil {
			return err
		}
	}
	return s.Sync() // before the pinned buffers go back to the pool
}

// buf returns the workspace buffer of role, at least n bytes.
func (l *DeviceLocaliser) buf(role string, n int) (*kgpu.Buffer, error) {
	return l.ws.get(role, n)
}

// context returns e's context on stream s, creating it.
func (l *DeviceLocaliser) context(e *trt.Engine, s *kgpu.Stream) (*trt.Context, error) {
	m := l.ctx[e]
	if m == nil {
		m = map[uintptr]*trt.Context{}
		l.ctx[e] = m
	}
	if c := m[s.Handle()]; c != nil {
		return c, nil
	}
	c, err := e.NewContext(s.Handle())
	if err != nil {
		return nil, err
	}
	m[s.Handle()] = c
	return c, nil
}

// Prepare brings the query volume vol (float32 on the device, geometry geom, i fastest) to
// the prepared 3 mm grid on the device, as localize.PrepareWith does on the CPU with the
// template set's resampling (the kernels equal the CPU ones: kernels/gpu's tests). It
// returns the grid's plan, whose Grid carries the geometry for localize, and the device
// buffer of its voxels (workspace, valid until the next Prepare).
func (l *DeviceLocaliser) Prepare(s *kgpu.Stream, vol *kgpu.Buffer, geom *volume.Volume,
	source string) (*localize.GridPlan, *kgpu.Buffer, error) {
	plan, err := localize.PlanGrid(geom, source, l.Set.Resampling, localize.Image)
	if err != nil {
		return nil, nil, err
	}
	reo := plan.Reorientation
	n := geom.Shape[0] * geom.Shape[1] * geom.Shape[2]
	las, err := l.buf("las", 4*n)
	if err != nil {
		return nil, nil, err
	}
	if err := s.Reorient(las, vol, geom.Shape, reo.Perm, reo.Flip); err != nil {
		return nil, nil, err
	}
	grid := las
	shape := plan.Grid.Vol.Shape
	n3 := shape[0] * shape[1] * shape[2]
	if plan.Resample {
		if grid, err = l.buf("grid", 4*n3); err != nil {
			return nil, nil, err
		}
		if err := l.resample(s, grid, shape, las, reo.DstShape, plan); err != nil {
			return nil, nil, err
		}
	}
	lo, _, ok, err := s.MinMax(grid, n3) // waits for the stream
	if err != nil {
		return nil, nil, err
	}
	if ok && lo < kernels.HUThreshold { // kernels.LooksLikeHU
		if err := s.NormalizeHU(grid, grid, n3); err != nil {
			return nil, nil, err
		}
	}
	return plan, grid, nil
}

// resample enqueues the LAS volume's resampling to the 3 mm grid: trilinear (Linear) or the
// cubic spline zoom (Reference), whose tables go through a pinned buffer given back once
// the stream has drained (Prepare's MinMax waits for it right after).
func (l *DeviceLocaliser) resample(s *kgpu.Stream, grid *kgpu.Buffer, shape [3]int,
	las *kgpu.Buffer, lasShape [3]int, plan *localize.GridPlan) error {
	if plan.Grid.Resampling() != localize.Reference {
		return s.Resample(grid, shape, las, lasShape, plan.Ratio, false)
	}
	ws, err := l.buf("zoom", kgpu.ZoomCubicWorkspace(shape, lasShape))
	if err != nil {
		return err
	}
	pool := l.Dev.Pool()
	h, err := pool.Host(kgpu.ZoomCubicTablesBytes(shape))
	if err != nil {
		return err
	}
	err = s.ZoomCubic(grid, las, shape, lasShape, ws, h)
	if serr := s.Sync(); serr == nil {
		pool.PutHost(h)
		// The workspace (float64 coefficients of a whole pass: about 8 bytes a voxel of
		// the query) is not kept: SAM's encoder batch was sized without it.
		serr = l.ws.drop("zoom")
		if err == nil {
			err = serr
		}
	} else if err == nil {
		err = serr
	}
	return err
}

// Localise prepares the query on the device and localises every organ of the template set
// in it: the boxes on the query file's grid and the points of every stage.
func (l *DeviceLocaliser) Localise(ctx context.Context, s *kgpu.Stream, vol *kgpu.Buffer,
	geom *volume.Volume, source string) (*localize.Result, *localize.Points, error) {
	plan, grid, err := l.Prepare(s, vol, geom, source)
	if err != nil {
		return nil, nil, err
	}
	steps := &deviceSteps{l: l, s: s, grid: grid, dims: plan.Grid.Dims()}
	pts, err := localize.LocateWith(ctx, steps, l.Set, plan.Grid, l.Config)
	if err != nil {
		return nil, nil, err
	}
	res, err := localize.Boxes(l.Set, plan.Grid, pts, l.Config.Seed)
	return res, pts, err
}

// Close frees what the localiser allocated; the streams must have drained. It is nil-safe.
func (l *DeviceLocaliser) Close() error {
	if l == nil {
		return nil
	}
	errs := []error{l.search.Close()}
	for i, b := range l.kern {
		errs = append(errs, b.Close())
		l.kern[i] = nil
	}
	errs = append(errs, l.ws.close())
	for e, m := range l.ctx {
		for _, c := range m {
			errs = append(errs, c.Close())
		}
		delete(l.ctx, e)
	}
	return errors.Join(errs...)
}

// deviceSteps are localize.Steps on a prepared grid in device memory (dims z, y, x).
type deviceSteps struct {
	l    *DeviceLocaliser
	s    *kgpu.Stream
	grid *kgpu.Buffer
	dims [3]int
}

var _ localize.Steps = (*deviceSteps)(nil)

func (d *deviceSteps) ModelSHA256() string { return d.l.Full.Manifest().ONNXSHA256 }

// Values reads the grid at the points in one native call.
func (d *deviceSteps) Values(points [][3]int) ([]float32, error) {
	return d.s.Gather(d.grid, d.dims, points, localize.Pad)
}

// defaultBatchBytes bounds the input and output workspace of the MedLAM engines' default
// batch; it stays allocated between queries, beside SAM's.
const defaultBatchBytes = 1 << 30

// batch is the number of patches per engine call: Config.BatchSize, or by default the
// optimum of the engine's first profile (32 in build/engines' recipes) as far as its
// patches and outputs fit in defaultBatchBytes (the full-size network's feature maps take
// about 115 MB a patch, so about 8 patches), capped by the engine's largest batch.
func (d *deviceSteps) batch(e *trt.Engine) int {
	b := int64(d.l.Config.BatchSize)
	if b <= 0 {
		b = localize.DefaultBatchSize
		if ps := e.Profiles(); len(ps) > 0 {
			if _, opt, _, ok := ps[0].BatchRange(e.Inputs()); ok && opt > 0 {
				b = opt
			}
		}
		per := int64(4 * (localize.Patch*localize.Patch*localize.Patch + 3))
		if e == d.l.Full {
			ts := d.l.Set
			for s := range 3 {
				m := int64(8 * ts.Edges[s])
				per += 4 * int64(ts.Channels[s]) * m * m * m
			}
		}
		b = min(b, max(1, defaultBatchBytes/per))
	}
	if c := int64(d.l.MaxBatch); c > 0 {
		b = min(b, c)
	}
	return int(max(1, min(b, e.MaxBatch())))
}

// run cuts the crops centred on centres into the engine's input, runs e on them with every
// output bound to a workspace buffer, and returns the context, whose outputs are prepared,
// with the output buffers by name.
func (d *deviceSteps) run(e *trt.Engine, centres [][3]int,
	pinned *kgpu.HostBuffer) (map[string]*kgpu.Buffer, error) {
	n := len(centres)
	c, err := d.l.context(e, d.s)
	if err != nil {
		return nil, err
	}
	v := pinned.Int32s()
	for i, p := range centres {
		v[3*i], v[3*i+1], v[3*i+2] = int32(p[0]), int32(p[1]), int32(p[2])
	}
	cb, err := d.l.buf("centres", 12*n)
	if err != nil {
		return nil, err
	}
	if err := d.s.CopyToDevice(cb, pinned, 12*n); err != nil {
		return nil, err
	}
	const vox = localize.Patch * localize.Patch * localize.Patch
	patches, err := d.l.buf("patches", 4*n*vox)
	if err != nil {
		return nil, err
	}
	if err := d.s.CropPatches(patches, d.grid, d.dims, cb, n, 2*localize.Pad,
		localize.Patch); err != nil {
		return nil, err
	}
	shapes, err := c.Prepare(map[string][]int64{
		localize.InputPatch: {int64(n), 1, localize.Patch, localize.Patch, localize.Patch}})
	if err != nil {
		return nil, err
	}
	if err := d.checkShapes(e, shapes, n); err != nil {
		return nil, err
	}
	if err := c.Bind(localize.InputPatch, patches.Ptr(), patches.Bytes()); err != nil {
		return nil, err
	}
	outs := map[string]*kgpu.Buffer{}
	for _, t := range e.Outputs() {
		size, err := c.Bytes(t.Name)
		if err != nil {
			return nil, err
		}
		b, err := d.l.buf("output "+t.Name, int(size))
		if err != nil {
			return nil, err
		}
		if err := c.Bind(t.Name, b.Ptr(), b.Bytes()); err != nil {
			return nil, err
		}
		outs[t.Name] = b
	}
	return outs, c.Enqueue()
}

// checkShapes checks the engine's output shapes for a batch of n against what the steps
// read: positions [n,3] and, from the full engine, feature maps [n,C,8k,8k,8k] of the
// template set's channels C and kernel edges k (the CPU path's checks).
func (d *deviceSteps) checkShapes(e *trt.Engine, shapes map[string][]int64, n int) error {
	want := map[string][]int64{localize.OutputPosition: {int64(n), 3}}
	if e == d.l.Full {
		ts := d.l.Set
		for s, name := range localize.OutputFeatures {
			m := int64(8 * ts.Edges[s])
			want[name] = []int64{int64(n), int64(ts.Channels[s]), m, m, m}
		}
	}
	for name, w := range want {
		if got := shapes[name]; !slices.Equal(got, w) {
			return fmt.Errorf("%w: gpu: engine %s gives %q of shape %v, the steps read %v "+
				"(is the template set from this model?)", backend.ErrShape,
				e.Manifest().File, name, got, w)
		}
	}
	return nil
}

// batches calls f on the centres in batches for engine e, with a pinned buffer large enough
// for one batch's centres and results (16 bytes a patch); f must leave the stream drained
// (it reads results), after which the buffer is reused.
func (d *deviceSteps) batches(ctx context.Context, e *trt.Engine, centres [][3]int,
	f func(first int, batch [][3]int, pinned *kgpu.HostBuffer) error) error {
	bs := d.batch(e)
	pool := d.l.Dev.Pool()
	h, err := pool.Host(16 * bs)
	if err != nil {
		return err
	}
	defer func() {
		if d.s.Sync() == nil { // give the buffer back only once no copy can touch it
			pool.PutHost(h)
		}
	}()
	for first := 0; first < len(centres); first += bs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f(first, centres[first:min(first+bs, len(centres))], h); err != nil {
			return fmt.Errorf("localize on the device: patches %d-%d: %w", first,
				min(first+bs, len(centres))-1, err)
		}
	}
	return nil
}

// Positions runs the encoder (the full engine when there is none) on the crops and copies
// the positions back.
func (d *deviceSteps) Positions(ctx context.Context, centres [][3]int) ([][3]float32, error) {
	e := d.l.Encoder
	if e == nil {
		e = d.l.Full
	}
	out := make([][3]float32, 0, len(centres))
	err := d.batches(ctx, e, centres, func(_ int, batch [][3]int, h *kgpu.HostBuffer) error {
		outs, err := d.run(e, batch, h)
		if err != nil {
			return err
		}
		// The centres in h were consumed by the copy enqueued before the engine, so the
		// positions may land in the same pinned buffer.
		if err := d.s.CopyToHost(h, outs[localize.OutputPosition], 12*len(batch)); err != nil {
			return err
		}
		if err := d.s.Sync(); err != nil {
			return err
		}
		f := h.Float32s()
		for i := range batch {
			out = append(out, [3]float32(f[3*i:3*i+3]))
		}
		return nil
	})
	return out, err
}

// Offsets runs the full engine on the crops and the similarity search on its features
// against each point's template kernels, and copies the matches back.
func (d *deviceSteps) Offsets(ctx context.Context, centres [][3]int) ([][3]int, error) {
	out := make([][3]int, 0, len(centres))
	err := d.batches(ctx, d.l.Full, centres, func(first int, batch [][3]int,
		h *kgpu.HostBuffer) error {
		outs, err := d.run(d.l.Full, batch, h)
		if err != nil {
			return err
		}
		feats := make([]*kgpu.Buffer, 3)
		for s := range 3 {
			feats[s] = outs[localize.OutputFeatures[s]]
		}
		off, err := d.search(feats, first, len(batch), h)
		out = append(out, off...)
		return err
	})
	return out, err
}

// search runs the similarity search of points first..first+n-1, whose feature maps (scale
// s: [n][C][S^3]) are on the device, against their template kernels, and returns their
// offsets, copied back through h (8 bytes a point); the stream is drained on return.
func (d *deviceSteps) search(feats []*kgpu.Buffer, first, n int,
	h *kgpu.HostBuffer) ([][3]int, error) {
	ts := d.l.Set
	kern := make([]*kgpu.Buffer, 3)
	for s := range 3 {
		k := ts.Edges[s]
		kv := 4 * ts.Channels[s] * k * k * k // bytes of one point's kernel
		var err error
		if kern[s], err = d.l.kern[s].View(first*kv, n*kv); err != nil {
			return nil, err
		}
	}
	res, err := d.l.buf("matches", 8*n)
	if err != nil {
		return nil, err
	}
	if err := d.l.search.SearchDevice(d.s, feats, kern, n, res); err != nil {
		return nil, err
	}
	if err := d.s.CopyToHost(h, res, 8*n); err != nil {
		return nil, err
	}
	if err := d.s.Sync(); err != nil {
		return nil, err
	}
	m := make([]kernels.SimilarityMatch, n)
	if err := d.l.search.Decode(h.Bytes(), m); err != nil {
		return nil, err
	}
	off := make([][3]int, n)
	for i, x := range m {
		off[i] = x.Offset
	}
	return off, nil
}
