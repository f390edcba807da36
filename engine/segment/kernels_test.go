package segment

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// recKernels runs the CPU kernels, recording the calls (and the planes posted per call),
// or fails the op named fail.
type recKernels struct {
	mu     sync.Mutex
	calls  map[string]int
	planes [][]int
	fail   string
}

func (r *recKernels) count(op string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[op]++
	if op == r.fail {
		return errors.New("device lost in " + op)
	}
	return nil
}

func (r *recKernels) SAMWindow(dst []uint8, src []float32) error {
	if err := r.count("window"); err != nil {
		return err
	}
	return CPUKernels{}.SAMWindow(dst, src)
}

func (r *recKernels) SAMPreprocess(dst []float32, win []uint8, shape [3]int,
	ks []int) error {
	if err := r.count("preprocess"); err != nil {
		return err
	}
	return CPUKernels{}.SAMPreprocess(dst, win, shape, ks)
}

func (r *recKernels) SAMMaskPostSlices(vol []int16, shape [3]int, lowRes int,
	sl []MaskSlice) error {
	if err := r.count("post"); err != nil {
		return err
	}
	var zs []int
	for _, s := range sl {
		zs = append(zs, s.Z)
	}
	r.planes = append(r.planes, zs)
	return CPUKernels{}.SAMMaskPostSlices(vol, shape, lowRes, sl)
}

// TestSegmentKernels runs Segment through Config.Kernels: the label map and report counts
// equal the default kernels', with one window, one preprocessing and one mask post-
// processing call per encoder batch; a failing kernel fails Segment with its error.
func TestSegmentKernels(t *testing.T) {
	v, err := volume.New([3]int{40, 30, 20}, [3]float64{1, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range v.Data {
		v.Data[i] = float32(i%300) - 100
	}
	organs := []Organ{
		{Label: 1, Box: eval.Box{Min: [3]int{2, 2, 2}, Max: [3]int{10, 10, 8}}},
		{Label: 2, Box: eval.Box{Min: [3]int{20, 5, 5}, Max: [3]int{30, 15, 12}}},
	}
	// Slices 2..12: batches of 4 are 2-5, 6-9, 10-12.
	enc, dec := fakeModels(false)
	want, err := Segment(context.Background(), Models{Encoder: enc, Decoder: dec}, v, "q",
		organs, Config{BatchSize: 4, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recKernels{}
	enc, dec = fakeModels(false)
	got, err := Segment(context.Background(), Models{Encoder: enc, Decoder: dec}, v, "q",
		organs, Config{BatchSize: 4, Logger: quiet, Kernels: rec})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Labels.Data, want.Labels.Data) {
		t.Error("label maps differ between the default kernels and Config.Kernels")
	}
	if !reflect.DeepEqual(got.Report.Organs, want.Report.Organs) {
		t.Errorf("organ reports differ: %+v vs %+v", got.Report.Organs, want.Report.Organs)
	}
	wantCalls := map[string]int{"window": 1, "preprocess": 3, "post": 3}
	if !reflect.DeepEqual(rec.calls, wantCalls) {
		t.Errorf("kernel calls %v, want %v", rec.calls, wantCalls)
	}
	wantPlanes := [][]int{{2, 3, 4, 5}, {6, 7, 8, 9}, {10, 11, 12}}
	if !reflect.DeepEqual(rec.planes, wantPlanes) {
		t.Errorf("planes posted per call %v, want %v", rec.planes, wantPlanes)
	}
	for _, op := range []string{"window", "preprocess", "post"} {
		enc, dec = fakeModels(false)
		_, err := Segment(context.Background(), Models{Encoder: enc, Decoder: dec}, v,
			"q.nii.gz", organs, Config{BatchSize: 4, Logger: quiet,
				Kernels: &recKernels{fail: op}})
		if err == nil || !strings.Contains(err.Error(), "device lost in "+op) ||
			!strings.Contains(err.Error(), "q.nii.gz") {
			t.Errorf("failing %s: error %v", op, err)
		}
	}
}

// TestCPUMaskPostSlicesRefuses checks the argument checks of the batched CPU mask post.
func TestCPUMaskPostSlicesRefuses(t *testing.T) {
	shape := [3]int{4, 3, 2}
	logits := make([]float32, 4)
	tests := []struct {
		name   string
		vol    int
		shape  [3]int
		slices []MaskSlice
		want   string
	}{
		{"short volume", 23, shape, nil, "23 labels for shape"},
		{"zero shape", 0, [3]int{0, 3, 2}, nil, "0 labels"},
		{"plane out", 24, shape, []MaskSlice{{Z: 2, Logits: logits, Labels: []int16{1}}},
			"slices[0].Z = 2 outside [0, 2)"},
		{"negative plane", 24, shape, []MaskSlice{{Z: -1, Logits: logits,
			Labels: []int16{1}}}, "slices[0].Z = -1"},
		{"repeated plane", 24, shape, []MaskSlice{{Z: 1, Logits: logits, Labels: []int16{1}},
			{Z: 1, Logits: logits, Labels: []int16{1}}}, "slices[1].Z = 1"},
		{"logits short", 24, shape, []MaskSlice{{Z: 0, Logits: logits[:3],
			Labels: []int16{1}}}, "3 logits for 1 masks"},
	}
	for _, tc := range tests {
		err := CPUKernels{}.SAMMaskPostSlices(make([]int16, tc.vol), tc.shape, 2, tc.slices)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	// A valid call writes the planes it names only: a mask of high logits claims plane 1.
	vol := make([]int16, 24)
	high := []float32{9, 9, 9, 9}
	if err := (CPUKernels{}).SAMMaskPostSlices(vol, shape, 2,
		[]MaskSlice{{Z: 1, Logits: high, Labels: []int16{5}}}); err != nil {
		t.Fatal(err)
	}
	for i, l := range vol {
		if want := int16(5 * (i / 12)); l != want {
			t.Fatalf("voxel %d = %d, want %d", i, l, want)
		}
	}
}
