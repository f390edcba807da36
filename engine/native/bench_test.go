package native

import (
	"os"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/internal/medlamgolden"
)

// BenchmarkFullPatch runs one 64^3 patch through the full-size network with random weights
// of `make models-medlam-full` (not committed), every output; ns/op is the cost per patch.
func BenchmarkFullPatch(b *testing.B) {
	const path = "../../models/full/medlam.onnx"
	if _, err := os.Stat(path); err != nil {
		b.Skipf("full-size MedLAM absent (run `make models-medlam-full`): %v", err)
	}
	m := open(b, path)
	in := []backend.Tensor{medlamgolden.Patch(1)}
	for b.Loop() {
		if _, err := m.Run(in, medlamgolden.Names); err != nil {
			b.Fatal(err)
		}
	}
}
