//go:build cuda

package gpu

import (
	"math/rand/v2"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
)

// TestDeviceLocaliserPrepare: the 3 mm grid prepared on the device (reorientation, trilinear
// or cubic-spline resampling, HU normalisation) equals localize.PrepareWith's on the CPU bit
// for bit, and the device Steps read it where the host Steps do. It needs no TensorRT.
func TestDeviceLocaliserPrepare(t *testing.T) {
	d := openTestDevice(t)
	s, err := d.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name    string
		shape   [3]int
		spacing [3]float64
		affine  func(a *volume.Affine)
	}{
		{"rpi odd spacing", [3]int{97, 83, 41}, [3]float64{0.77, 0.9, 2.5}, func(a *volume.Affine) {
			a[0][0], a[1][1] = -0.77, -0.9 // RPI under RAS+ world axes
		}},
		{"las at 3 mm", [3]int{60, 50, 40}, [3]float64{3, 3, 3}, func(a *volume.Affine) {
			a[0][0] = -3
		}},
		{"permuted axes", [3]int{31, 70, 66}, [3]float64{2, 1.25, 1.5}, func(a *volume.Affine) {
			*a = volume.Affine{{0, 0, -1.5, 0}, {0, 1.25, 0, 0}, {2, 0, 0, 0}, {0, 0, 0, 1}}
		}},
	} {
		for _, res := range []localize.Resampling{localize.Linear, localize.Reference} {
			t.Run(tc.name+" "+string(res), func(t *testing.T) {
				prepareOnDevice(t, d, s, tc.name, tc.shape, tc.spacing, tc.affine, res)
			})
		}
	}
}

// prepareOnDevice checks DeviceLocaliser.Prepare and deviceSteps.Values against the CPU for
// one volume and resampling.
func prepareOnDevice(t *testing.T, d *kgpu.Device, s *kgpu.Stream, name string, shape [3]int,
	spacing [3]float64, affine func(a *volume.Affine), res localize.Resampling) {
	v, err := volume.New(shape, spacing)
	if err != nil {
		t.Fatal(err)
	}
	affine(&v.Affine)
	r := rand.New(rand.NewPCG(11, 12))
	for i := range v.Data {
		v.Data[i] = float32(r.IntN(2600)) - 1024
	}
	want, err := localize.PrepareWith(localize.Config{Resampling: res}, v, name,
		localize.Image)
	if err != nil {
		t.Fatal(err)
	}
	vol := uploadFloats(t, d, s, v.Data)
	l := &DeviceLocaliser{Dev: d, Set: &localize.TemplateSet{Resampling: res},
		ws: workspace{dev: d}}
	defer l.Close()
	geom := &volume.Volume{Shape: v.Shape, Spacing: v.Spacing, Affine: v.Affine}
	plan, grid, err := l.Prepare(s, vol, geom, name)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Grid.Vol.Shape != want.Vol.Shape || plan.Grid.Vol.Affine != want.Vol.Affine {
		t.Fatalf("grid %v %v, want %v %v", plan.Grid.Vol.Shape, plan.Grid.Vol.Affine,
			want.Vol.Shape, want.Vol.Affine)
	}
	got := downloadFloats(t, d, s, grid, len(want.Vol.Data))
	for i := range got {
		if got[i] != want.Vol.Data[i] {
			t.Fatalf("voxel %d: %v on the device, %v on the CPU", i, got[i],
				want.Vol.Data[i])
		}
	}
	dims := plan.Grid.Dims()
	var pts [][3]int
	for range 500 {
		pts = append(pts, [3]int{r.IntN(dims[0] + 2*localize.Pad),
			r.IntN(dims[1] + 2*localize.Pad), r.IntN(dims[2] + 2*localize.Pad)})
	}
	dev := &deviceSteps{l: l, s: s, grid: grid, dims: dims}
	host := &localize.HostSteps{Query: want}
	gv, err := dev.Values(pts)
	if err != nil {
		t.Fatal(err)
	}
	hv, err := host.Values(pts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range pts {
		if gv[i] != hv[i] {
			t.Fatalf("point %v: device %v, host %v", pts[i], gv[i], hv[i])
		}
	}
}

func uploadFloats(t *testing.T, d *kgpu.Device, s *kgpu.Stream, data []float32) *kgpu.Buffer {
	t.Helper()
	b, err := d.Alloc(4 * len(data))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	h, err := d.AllocHost(4 * len(data))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	copy(h.Float32s(), data)
	if err := s.CopyToDevice(b, h, 4*len(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	return b
}

func downloadFloats(t *testing.T, d *kgpu.Device, s *kgpu.Stream, b *kgpu.Buffer,
	n int) []float32 {
	t.Helper()
	h, err := d.AllocHost(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := s.CopyToHost(h, b, 4*n); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), h.Float32s()[:n]...)
}

// TestDeviceStepsSearch: the refinement's search on the device (template kernels uploaded
// once, each batch reading its points' kernels through views) gives the CPU search's
// offsets for every point, in batches that start past the first point. No TensorRT: the
// features are uploaded as an engine would leave them.
func TestDeviceStepsSearch(t *testing.T) {
	d := openTestDevice(t)
	s, err := d.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(21, 22))
	const points = 7
	ts := &localize.TemplateSet{Channels: [3]int{5, 3, 4}, Edges: [3]int{2, 4, 8}}
	for sc := range 3 {
		k := ts.Edges[sc]
		ts.Kernels[sc] = make([]float32, points*ts.Channels[sc]*k*k*k)
		for i := range ts.Kernels[sc] {
			ts.Kernels[sc][i] = r.Float32()*2 - 1
		}
	}
	search, err := d.NewSimilaritySearch(ts.Scales(), localize.Patch)
	if err != nil {
		t.Fatal(err)
	}
	l := &DeviceLocaliser{Dev: d, Set: ts, search: search, ws: workspace{dev: d}}
	defer l.Close()
	if err := l.uploadKernels(); err != nil {
		t.Fatal(err)
	}
	cpu, err := localize.CPUKernels{}.NewSimilaritySearch(ts.Scales(), localize.Patch)
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.AllocHost(16 * points)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	steps := &deviceSteps{l: l, s: s}
	for _, batch := range [][2]int{{0, 3}, {3, 4}, {6, 1}} {
		first, n := batch[0], batch[1]
		feats := make([][]float32, 3)
		kern := make([][]float32, 3)
		bufs := make([]*kgpu.Buffer, 3)
		for sc := range 3 {
			size, k, c := 8*ts.Edges[sc], ts.Edges[sc], ts.Channels[sc]
			feats[sc] = make([]float32, n*c*size*size*size)
			for i := range feats[sc] {
				feats[sc][i] = r.Float32()*2 - 1
			}
			kern[sc] = ts.Kernels[sc][first*c*k*k*k : (first+n)*c*k*k*k]
			bufs[sc] = uploadFloats(t, d, s, feats[sc])
		}
		got, err := steps.search(bufs, first, n, h)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]kernels.SimilarityMatch, n)
		if err := cpu.Search(feats, kern, want); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if got[i] != want[i].Offset {
				t.Errorf("point %d: device offset %v, CPU %v", first+i, got[i], want[i].Offset)
			}
		}
	}
}
