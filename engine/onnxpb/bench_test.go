package onnxpb

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadFull reads the full-size MedLAM export, models/full/medlam.onnx (about
// 60 MB), when it has been generated (make models).
func BenchmarkReadFull(b *testing.B) {
	p := filepath.Join("..", "..", "models", "full", "medlam.onnx")
	st, err := os.Stat(p)
	if err != nil {
		b.Skipf("skipping: %s is absent (generate it with make models)", p)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadInitializers(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseTiny parses the bundled tiny MedLAM export from memory.
func BenchmarkParseTiny(b *testing.B) {
	data, err := os.ReadFile(tinyModel)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseInitializers(data, tinyModel); err != nil {
			b.Fatal(err)
		}
	}
}
