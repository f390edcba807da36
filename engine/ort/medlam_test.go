package ort

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/internal/medlamgolden"
)

// The tiny MedLAM model and torch's outputs on a fixed input, written by models/medlam.py.
var (
	medlamTiny   = filepath.Join("..", "..", "testdata", "models", "medlam_tiny.onnx")
	medlamGolden = filepath.Join("..", "..", "testdata", "models", "medlam_tiny_golden.json")
)

// medlamPatch is the golden input (internal/medlamgolden).
func medlamPatch(batch int) backend.Tensor { return medlamgolden.Patch(batch) }

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
	g, err := medlamgolden.Load(medlamGolden, m.Manifest().SHA256)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("golden file absent: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	outs, err := m.Run([]backend.Tensor{medlamPatch(g.Batch)}, medlamgolden.Names)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range g.Compare(outs) {
		t.Error(line)
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
