package nifti

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadAbdomen reads the shared abdomen CT (int32, gzip) into float32.
func BenchmarkReadAbdomen(b *testing.B) {
	benchRead(b, filepath.Join(sharedCT, "abdomen_ct.nii.gz"), ReadOptions{})
}

// BenchmarkReadAbdomenHeader reads only the header of the same file (what segment needs of
// a query the GPU worker localises).
func BenchmarkReadAbdomenHeader(b *testing.B) {
	benchRead(b, filepath.Join(sharedCT, "abdomen_ct.nii.gz"), ReadOptions{HeaderOnly: true})
}

// BenchmarkReadFile reads the file named by $NIFTI_BENCH_FILE; the comparison script
// build/bench/nifti_compare.py uses it for its synthetic volume.
func BenchmarkReadFile(b *testing.B) {
	p := os.Getenv("NIFTI_BENCH_FILE")
	if p == "" {
		b.Skip("skipping: NIFTI_BENCH_FILE is not set")
	}
	benchRead(b, p, ReadOptions{})
}

func benchRead(b *testing.B, p string, opt ReadOptions) {
	st, err := os.Stat(p)
	if err != nil {
		b.Skipf("skipping: %v", err)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Read(p, opt); err != nil {
			b.Fatal(err)
		}
	}
}
