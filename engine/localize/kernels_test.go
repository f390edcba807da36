package localize

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// recKernels runs the CPU kernels and counts the calls, or fails them with err.
type recKernels struct {
	mu    sync.Mutex
	calls map[string]int
	err   error
}

func (r *recKernels) count(op string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[op]++
	return r.err
}

func (r *recKernels) ResampleTrilinear(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int, ratio [3]float64) error {
	if err := r.count("trilinear"); err != nil {
		return err
	}
	return CPUKernels{}.ResampleTrilinear(dst, dstShape, src, srcShape, ratio)
}

func (r *recKernels) ResampleNearest(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int, ratio [3]float64) error {
	if err := r.count("nearest"); err != nil {
		return err
	}
	return CPUKernels{}.ResampleNearest(dst, dstShape, src, srcShape, ratio)
}

func (r *recKernels) ZoomCubic(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int) error {
	if err := r.count("zoom"); err != nil {
		return err
	}
	return CPUKernels{}.ZoomCubic(dst, dstShape, src, srcShape)
}

func (r *recKernels) NormalizeHU(dst, src []float32) error {
	if err := r.count("hu"); err != nil {
		return err
	}
	return CPUKernels{}.NormalizeHU(dst, src)
}

func (r *recKernels) NewSimilaritySearch(scales []kernels.SimilarityScale,
	patch int) (Searcher, error) {
	if err := r.count("new search"); err != nil {
		return nil, err
	}
	s, err := CPUKernels{}.NewSimilaritySearch(scales, patch)
	if err != nil {
		return nil, err
	}
	return recSearch{s, r}, nil
}

type recSearch struct {
	Searcher
	r *recKernels
}

func (s recSearch) Search(f, k [][]float32, out []kernels.SimilarityMatch) error {
	if err := s.r.count("search"); err != nil {
		return err
	}
	return s.Searcher.Search(f, k, out)
}

func (s recSearch) Close() error {
	s.r.count("close search")
	return s.Searcher.Close()
}

// TestPrepareWithKernels checks that PrepareWith runs the given kernels and gives exactly
// Prepare's grid (the CPU kernels behind the recorder), and passes their errors on.
func TestPrepareWithKernels(t *testing.T) {
	v, err := volumeRPI(37, 29, 23) // 1.5 mm, raw HU: resampled and normalised
	if err != nil {
		t.Fatal(err)
	}
	lab, err := volumeRPI(37, 29, 23)
	if err != nil {
		t.Fatal(err)
	}
	for i := range lab.Data {
		lab.Data[i] = float32(i % 3)
	}
	tests := []struct {
		name string
		kind Kind
		res  Resampling
		want map[string]int
	}{
		{"image", Image, Linear, map[string]int{"trilinear": 1, "hu": 1}},
		{"labels", Labels, Linear, map[string]int{"nearest": 1}},
		{"image reference", Image, Reference, map[string]int{"zoom": 1, "hu": 1}},
		{"labels reference", Labels, Reference, nil}, // one-hot labels: the CPU's kernel
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := v
			if tc.kind == Labels {
				src = lab
			}
			want, err := PrepareWith(Config{Resampling: tc.res}, src, "q", tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recKernels{}
			got, err := PrepareWith(Config{Kernels: rec, Resampling: tc.res}, src, "q",
				tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rec.calls, tc.want) {
				t.Errorf("kernel calls %v, want %v", rec.calls, tc.want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("grid through the kernels differs from Prepare's (shape %v vs %v)",
					got.Vol.Shape, want.Vol.Shape)
			}
			if tc.want == nil {
				return
			}
			bad := &recKernels{err: errors.New("device lost")}
			if _, err := PrepareWith(Config{Kernels: bad, Resampling: tc.res}, src, "q.nii.gz",
				tc.kind); err == nil ||
				!strings.Contains(err.Error(), "device lost") ||
				!strings.Contains(err.Error(), "q.nii.gz") {
				t.Errorf("failing kernel: error %v, want the kernel's naming the file", err)
			}
		})
	}
}

// TestRefineWithKernels runs the refinement with Config.Kernels: same points as with the
// default kernels, one search per network batch, closed once.
func TestRefineWithKernels(t *testing.T) {
	net := fakeNet(t)
	ts := buildSet(t, net, WPL, 4, 0)
	q := scene{dims: [3]int{80, 80, 80}, d: [3]int{4, -4, 8}}.image(t)
	initial := func() *Points {
		res := &Points{}
		for _, o := range ts.Organs {
			for _, p := range o.TemplatePoints[0] {
				res.Initial = append(res.Initial, [3]int{p[0] + Pad + 4, p[1] + Pad,
					p[2] + Pad + 8})
			}
		}
		return res
	}
	ctx := context.Background()
	want := initial()
	cpu := Config{BatchSize: 4, Logger: quiet.Logger}
	if err := refine(ctx, hostSteps(net, ts, q, cpu), q, cpu, want); err != nil {
		t.Fatal(err)
	}
	rec := &recKernels{}
	got := initial()
	cfg := Config{BatchSize: 4, Logger: quiet.Logger, Kernels: rec}
	if err := refine(ctx, hostSteps(net, ts, q, cfg), q, cfg, got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Final, want.Final) {
		t.Errorf("final points %v, want %v", got.Final, want.Final)
	}
	batches := (len(want.Initial) + 3) / 4
	wantCalls := map[string]int{"new search": 1, "search": batches, "close search": 1}
	if !reflect.DeepEqual(rec.calls, wantCalls) {
		t.Errorf("kernel calls %v, want %v", rec.calls, wantCalls)
	}
	bad := &recKernels{err: errors.New("device lost")}
	cfg.Kernels = bad
	if err := refine(ctx, hostSteps(net, ts, q, cfg), q, cfg, initial()); err == nil ||
		!strings.Contains(err.Error(), "device lost") {
		t.Errorf("failing kernels: error %v", err)
	}
}
