//go:build cuda

package gpu

import (
	"math/rand/v2"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// The benchmarks time device-resident work: b.N launches on one stream, then one Sync.
// b.SetBytes counts the bytes each launch must read and write once, so MB/s is comparable
// with BenchmarkCopy's (which reads and writes each byte: 2 x size), the bandwidth
// reference of build/gpu-check.sh.

// benchVolume is a CT of 512 x 512 x 300 voxels, the size method.md's timings use.
var benchVolume = [3]int{512, 512, 300}

func benchStream(b *testing.B) (*Device, *Stream) {
	d := openDevice(b)
	s, err := d.NewStream()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return d, s
}

func benchAlloc(b *testing.B, d *Device, bytes int) *Buffer {
	buf, err := d.Alloc(bytes)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = buf.Close() })
	return buf
}

// benchLoop times b.N calls of launch and the final Sync.
func benchLoop(b *testing.B, s *Stream, launch func() error) {
	if err := launch(); err != nil { // warm-up, outside the timing
		b.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := launch(); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkCopy(b *testing.B) {
	d, s := benchStream(b)
	n := 4 * shapeLen(benchVolume)
	src, dst := benchAlloc(b, d, n), benchAlloc(b, d, n)
	b.SetBytes(int64(2 * n))
	benchLoop(b, s, func() error { return s.CopyDevice(dst, 0, src, 0, n) })
}

func benchResample(b *testing.B, nearest bool) {
	d, s := benchStream(b)
	// Slight upsampling: every input voxel is read, so the bytes are input plus output.
	r := [3]float64{0.9, 0.9, 0.9}
	out, err := kernels.ResampleShape(benchVolume, r)
	if err != nil {
		b.Fatal(err)
	}
	src := upload(b, d, s, randomCT(rand.New(rand.NewPCG(1, 2)), shapeLen(benchVolume)))
	dst := benchAlloc(b, d, 4*shapeLen(out))
	b.SetBytes(int64(4 * (shapeLen(benchVolume) + shapeLen(out))))
	benchLoop(b, s, func() error { return s.Resample(dst, out, src, benchVolume, r, nearest) })
}

func BenchmarkResampleTrilinear(b *testing.B) { benchResample(b, false) }

func BenchmarkResampleNearest(b *testing.B) { benchResample(b, true) }

func BenchmarkNormalizeHU(b *testing.B) {
	d, s := benchStream(b)
	n := shapeLen(benchVolume)
	src := upload(b, d, s, randomCT(rand.New(rand.NewPCG(3, 4)), n))
	dst := benchAlloc(b, d, 4*n)
	b.SetBytes(int64(8 * n))
	benchLoop(b, s, func() error { return s.NormalizeHU(dst, src, n) })
}

func BenchmarkSAMWindow(b *testing.B) {
	d, s := benchStream(b)
	n := shapeLen(benchVolume)
	src := upload(b, d, s, randomCT(rand.New(rand.NewPCG(5, 6)), n))
	dst := benchAlloc(b, d, n)
	scratch := benchAlloc(b, d, 8)
	// The min/max pass reads the volume, the window pass reads it again and writes bytes.
	b.SetBytes(int64(9 * n))
	benchLoop(b, s, func() error { return s.SAMWindow(dst, src, n, false, scratch) })
}

// BenchmarkSimilarity is the search of 16 points at the MedLAM scales with 96 channels
// (one organ set's refinement); it reports TFLOP/s of the correlations.
func BenchmarkSimilarity(b *testing.B) {
	d, s := benchStream(b)
	const points = 16
	scales := kernels.MedLAMScales(96)
	rng := rand.New(rand.NewPCG(7, 8))
	var fb, kb []*Buffer
	for _, sc := range scales {
		s3, k3 := sc.Size*sc.Size*sc.Size, sc.Kernel*sc.Kernel*sc.Kernel
		f := make([]float32, points*sc.Channels*s3)
		for i := range f {
			f[i] = float32(rng.NormFloat64())
		}
		k := make([]float32, points*sc.Channels*k3)
		for i := range k {
			k[i] = float32(rng.NormFloat64())
		}
		fb = append(fb, upload(b, d, s, f))
		kb = append(kb, upload(b, d, s, k))
	}
	g, err := d.NewSimilaritySearch(scales, kernels.MedLAMPatch)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = g.Close() })
	out := benchAlloc(b, d, 8*points)
	benchLoop(b, s, func() error { return g.SearchDevice(s, fb, kb, points, out) })
	b.ReportMetric(g.FLOPs(points)*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
}
