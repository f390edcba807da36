package ort

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// The tiny MedLAM model and torch's outputs on a fixed input, written by models/medlam.py.
var (
	medlamTiny   = filepath.Join("..", "..", "testdata", "models", "medlam_tiny.onnx")
	medlamGolden = filepath.Join("..", "..", "testdata", "models", "medlam_tiny_golden.json")
)

type medlamGoldenFile struct {
	ModelSHA256 string `json:"model_sha256"`
	Batch       int    `json:"batch"`
	Tolerance   struct {
		Rel float64 `json:"rel"`
		Abs float64 `json:"abs"`
	} `json:"tolerance"`
	Outputs map[string]struct {
		Shape  []int64     `json:"shape"`
		Sum    []float64   `json:"sum"`
		AbsSum []float64   `json:"abs_sum"`
		SqSum  []float64   `json:"sq_sum"`
		Values [][]float64 `json:"values"` // position only: every value
		Centre [][]float64 `json:"centre"` // features: channels at the centre voxel
		Row0   [][]float64 `json:"row0"`   // features: [b,0,0,0,:8]
	} `json:"outputs"`
}

// medlamPatch is the golden input, as models/medlam.py golden_patch defines it:
// float32(0.5 + 0.3 sin(0.1i + 0.2j + 0.3k + 0.5b) + 0.2 cos(0.013ij - 0.021k(b+1))),
// evaluated in float64, i, j, k along axes 2, 3, 4.
func medlamPatch(batch int) backend.Tensor {
	const e = 64
	data := make([]float32, batch*e*e*e)
	for b := range batch {
		for i := range e {
			for j := range e {
				for k := range e {
					fi, fj, fk, fb := float64(i), float64(j), float64(k), float64(b)
					v := 0.5 + 0.3*math.Sin(0.1*fi+0.2*fj+0.3*fk+0.5*fb) +
						0.2*math.Cos(0.013*fi*fj-0.021*fk*(fb+1))
					data[((b*e+i)*e+j)*e+k] = float32(v)
				}
			}
		}
	}
	return backend.Tensor{Name: "patch", Shape: []int64{int64(batch), 1, e, e, e}, Data: data}
}

func openMedlamTiny(tb testing.TB, opt Options) *Model {
	tb.Helper()
	if _, err := os.Stat(medlamTiny); err != nil {
		tb.Skipf("tiny MedLAM model absent (models/medlam.py --tiny writes it): %v", err)
	}
	needLibrary(tb)
	m, err := Open(medlamTiny, opt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// TestMedlamTinyGolden runs the tiny MedLAM model on the golden input and compares ONNX
// Runtime's outputs with torch's, summarised in the golden file.
func TestMedlamTinyGolden(t *testing.T) {
	m := openMedlamTiny(t, Options{})
	raw, err := os.ReadFile(medlamGolden)
	if err != nil {
		t.Skipf("golden file absent: %v", err)
	}
	var g medlamGoldenFile
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("%s: %v", medlamGolden, err)
	}
	if g.ModelSHA256 != m.Manifest().SHA256 {
		t.Fatalf("%s is for model %.12s, the model is %.12s", medlamGolden, g.ModelSHA256,
			m.Manifest().SHA256)
	}
	if g.Batch < 1 || g.Batch > 8 || g.Tolerance.Rel <= 0 {
		t.Fatalf("%s: batch %d, tolerance %v out of range", medlamGolden, g.Batch, g.Tolerance)
	}
	rel, abs := g.Tolerance.Rel, g.Tolerance.Abs
	names := []string{"position", "feature0", "feature1", "feature2"}
	outs, err := m.Run([]backend.Tensor{medlamPatch(g.Batch)}, names)
	if err != nil {
		t.Fatal(err)
	}
	near := func(what string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.7g, torch %.7g (tolerance %.3g)", what, got, want, tol)
		}
	}
	for i, name := range names {
		want, ok := g.Outputs[name]
		if !ok {
			t.Fatalf("%s has no output %q", medlamGolden, name)
		}
		o := outs[i]
		if fmt.Sprint(o.Shape) != fmt.Sprint(want.Shape) {
			t.Fatalf("%s shape %v, golden %v", name, o.Shape, want.Shape)
		}
		per := len(o.Data) / g.Batch
		for b := range g.Batch {
			s := o.Data[b*per : (b+1)*per]
			var sum, asum, sq float64
			for _, v := range s {
				sum += float64(v)
				asum += math.Abs(float64(v))
				sq += float64(v) * float64(v)
			}
			// Sums are compared relative to the sum of magnitudes, which bounds the
			// accumulated rounding of either side.
			near(fmt.Sprintf("%s[%d] sum", name, b), sum, want.Sum[b], rel*want.AbsSum[b]+abs)
			near(fmt.Sprintf("%s[%d] abs_sum", name, b), asum, want.AbsSum[b],
				rel*want.AbsSum[b]+abs)
			near(fmt.Sprintf("%s[%d] sq_sum", name, b), sq, want.SqSum[b], rel*want.SqSum[b]+abs)
			if name == "position" {
				for k, w := range want.Values[b] {
					near(fmt.Sprintf("position[%d,%d]", b, k), float64(s[k]), w, rel*math.Abs(w)+abs)
				}
				continue
			}
			ch, e := int(o.Shape[1]), int(o.Shape[2])
			vox := e * e * e
			c := e / 2
			centre := (c*e+c)*e + c
			for k := 0; k < ch && k < len(want.Centre[b]); k++ {
				w := want.Centre[b][k]
				near(fmt.Sprintf("%s[%d,%d,centre]", name, b, k), float64(s[k*vox+centre]), w,
					rel*math.Abs(w)+abs)
			}
			for k, w := range want.Row0[b] {
				near(fmt.Sprintf("%s[%d,0,0,0,%d]", name, b, k), float64(s[k]), w,
					rel*math.Abs(w)+abs)
			}
		}
	}
}

// BenchmarkMedlamTiny runs the tiny MedLAM model once per iteration, asking for every
// output, at several batch sizes, with the default threading and with BatchInvariant;
// ns/op divided by the batch is the cost per patch.
func BenchmarkMedlamTiny(b *testing.B) {
	names := []string{"position", "feature0", "feature1", "feature2"}
	for _, opt := range []Options{{}, {BatchInvariant: true}} {
		m := openMedlamTiny(b, opt)
		for _, n := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("invariant%v/batch%d", opt.BatchInvariant, n), func(b *testing.B) {
				in := []backend.Tensor{medlamPatch(n)}
				for b.Loop() {
					if _, err := m.Run(in, names); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestMedlamTinyBatchInvariance checks how far a patch's outputs alone differ from its
// outputs as the second sample of a batch of three: bit for bit equal with BatchInvariant or
// one thread; within 1e-5 (relative to the output's largest value) with the default threads.
func TestMedlamTinyBatchInvariance(t *testing.T) {
	tests := []struct {
		name string
		opt  Options
		tol  float64
	}{
		{"default", Options{}, 1e-5},
		{"one thread", Options{IntraOpThreads: 1}, 0},
		{"batch invariant", Options{IntraOpThreads: 2, BatchInvariant: true}, 0},
	}
	names := []string{"position", "feature0", "feature1", "feature2"}
	three := medlamPatch(3)
	per := len(three.Data) / 3
	one := backend.Tensor{Name: "patch", Shape: []int64{1, 1, 64, 64, 64},
		Data: three.Data[per : 2*per]}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := openMedlamTiny(t, tc.opt)
			all, err := m.Run([]backend.Tensor{three}, names)
			if err != nil {
				t.Fatal(err)
			}
			alone, err := m.Run([]backend.Tensor{one}, names)
			if err != nil {
				t.Fatal(err)
			}
			for i, name := range names {
				n := len(alone[i].Data)
				got, want := alone[i].Data, all[i].Data[n:2*n]
				worst, scale := 0.0, 0.0
				for k := range got {
					worst = math.Max(worst, math.Abs(float64(got[k]-want[k])))
					scale = math.Max(scale, math.Abs(float64(want[k])))
				}
				if worst > tc.tol*scale {
					t.Errorf("%s: batch 1 and batch 3 differ by up to %g (largest value %g)",
						name, worst, scale)
				}
			}
		})
	}
}
