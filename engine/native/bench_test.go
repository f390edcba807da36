package native

import (
	"os"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/ort"
	"github.com/medlsam-fast/medlsam-fast/internal/medlamgolden"
)

// BenchmarkFullPatch runs one 64^3 patch through the full-size network with random weights
// of `make models-medlam-full` (not committed), every output, on the native network and on
// ONNX Runtime (all cores on the one patch) in turn; ns/op is the cost per patch. Run with
// -count to interleave the two.
func BenchmarkFullPatch(b *testing.B) {
	const path = "../../models/full/medlam.onnx"
	if _, err := os.Stat(path); err != nil {
		b.Skipf("full-size MedLAM absent (run `make models-medlam-full`): %v", err)
	}
	in := []backend.Tensor{medlamgolden.Patch(1)}
	run := func(b *testing.B, m backend.Model) {
		for b.Loop() {
			if _, err := m.Run(in, medlamgolden.Names); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("native", func(b *testing.B) { run(b, open(b, path)) })
	b.Run("ort", func(b *testing.B) {
		if _, err := ort.FindLibrary(""); err != nil {
			b.Skipf("ONNX Runtime not installed: %v", err)
		}
		m, err := ort.Open(path, ort.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		run(b, m)
	})
}
