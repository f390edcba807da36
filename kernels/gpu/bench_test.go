//go:build cuda

package gpu

import (
	"encoding/binary"
	"math"
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

// benchSAMSlices is a batch of 8 slices of a 512 x 512 CT, an encoder batch.
const benchSAMSlices = 8

func benchSAMPreprocess(b *testing.B, half bool) {
	d, s := benchStream(b)
	shape := [3]int{512, 512, benchSAMSlices}
	win := make([]byte, shapeLen(shape))
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range win {
		win[i] = uint8(rng.IntN(256))
	}
	in := uploadBytes(b, d, s, win)
	size := map[bool]int{false: 4, true: 2}[half]
	dst := benchAlloc(b, d, benchSAMSlices*3*samPlane*size)
	ws := benchAlloc(b, d, SAMPreprocessWorkspace(shape[0], shape[1]))
	slices := make([]int, benchSAMSlices)
	for i := range slices {
		slices[i] = i
	}
	// The slices are read once (the taps reread them from cache) and the encoder input is
	// written once.
	b.SetBytes(int64(len(win) + len(slices)*3*samPlane*size))
	benchLoop(b, s, func() error { return s.SAMPreprocess(dst, half, in, shape, slices, ws) })
}

func BenchmarkSAMPreprocessF32(b *testing.B) { benchSAMPreprocess(b, false) }

func BenchmarkSAMPreprocessF16(b *testing.B) { benchSAMPreprocess(b, true) }

// BenchmarkSAMMaskPost scatters 4 masks on each of 64 slices of 512 x 512 into a volume.
func BenchmarkSAMMaskPost(b *testing.B) {
	d, s := benchStream(b)
	const slices, masks, lowRes = 64, 4, 256
	shape := [3]int{512, 512, slices}
	rng := rand.New(rand.NewPCG(11, 12))
	logits := make([]float32, slices*masks*lowRes*lowRes)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 4)
	}
	meta := make([]byte, 4*(2*slices+1)+2*slices*masks)
	for k := 0; k <= slices; k++ {
		binary.LittleEndian.PutUint32(meta[4*k:], uint32(k*masks))
	}
	for k := range slices {
		binary.LittleEndian.PutUint32(meta[4*(slices+1+k):], uint32(k))
	}
	for m := range slices * masks {
		binary.LittleEndian.PutUint16(meta[4*(2*slices+1)+2*m:], uint16(m%masks+1))
	}
	mb := uploadBytes(b, d, s, meta)
	view := func(off, n int) *Buffer {
		v, err := mb.View(off, n)
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	a := MaskPostArgs{Volume: benchAlloc(b, d, 2*shapeLen(shape)), Shape: shape,
		Logits: upload(b, d, s, logits), LowRes: lowRes, Masks: slices * masks,
		Starts: view(0, 4*(slices+1)), Z: view(4*(slices+1), 4*slices),
		Labels: view(4*(2*slices+1), 2*slices*masks), Slices: slices,
		Prob: benchAlloc(b, d, 4*len(logits))}
	// Logits read, probabilities written and read back once, labels written.
	b.SetBytes(int64(12*len(logits) + 2*shapeLen(shape)))
	benchLoop(b, s, func() error { return s.SAMMaskPost(a) })
}

// BenchmarkStagedSAMPreprocess is the host-to-host batch path (one native call: slices in,
// preprocessing, encoder input out, wait); its MB/s counts host bytes moved over the bus,
// so it is bounded by PCIe, not by device memory.
func BenchmarkStagedSAMPreprocess(b *testing.B) {
	d := openDevice(b)
	shape := [3]int{512, 512, benchSAMSlices}
	win := make([]byte, shapeLen(shape))
	rng := rand.New(rand.NewPCG(13, 14))
	for i := range win {
		win[i] = uint8(rng.IntN(256))
	}
	slices := make([]int, benchSAMSlices)
	for i := range slices {
		slices[i] = i
	}
	dst := make([]float32, benchSAMSlices*3*samPlane)
	b.SetBytes(int64(len(win) + 4*len(dst)))
	for b.Loop() {
		if err := d.SAMPreprocess(dst, win, shape, slices); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReorient permutes and flips the benchmark CT (RPI to LAS-like: i and j flipped,
// axes kept): every voxel read and written once.
func BenchmarkReorient(b *testing.B) {
	d, s := benchStream(b)
	n := shapeLen(benchVolume)
	src := upload(b, d, s, randomCT(rand.New(rand.NewPCG(11, 12)), n))
	dst := benchAlloc(b, d, 4*n)
	b.SetBytes(int64(8 * n))
	benchLoop(b, s, func() error {
		return s.Reorient(dst, src, benchVolume, [3]int{0, 1, 2}, [3]bool{true, true, false})
	})
}

// BenchmarkCropPatches cuts 96 MedLAM crops (64^3, the engine's largest batch) from a 3 mm
// grid of the benchmark CT's extent, some across its faces: the crops are written once and
// (about) read once.
func BenchmarkCropPatches(b *testing.B) {
	d, s := benchStream(b)
	dims := [3]int{100, 131, 131} // (z, y, x) of 300 x 0.77 x 512 at 3 mm
	grid := upload(b, d, s, randomCT(rand.New(rand.NewPCG(13, 14)), shapeLen(dims)))
	const n, edge = 96, 64
	rng := rand.New(rand.NewPCG(15, 16))
	flat := make([]float32, 3*n)
	for i := range flat {
		flat[i] = math.Float32frombits(uint32(int32(32 + rng.IntN(dims[i%3]+64))))
	}
	centres := upload(b, d, s, flat)
	dst := benchAlloc(b, d, 4*n*edge*edge*edge)
	b.SetBytes(int64(2 * 4 * n * edge * edge * edge))
	benchLoop(b, s, func() error {
		return s.CropPatches(dst, grid, dims, centres, n, 2*32, edge)
	})
}

// BenchmarkGatherRows gathers 64 SAM image embeddings (4 MiB each, the decoder's largest
// batch) from an encoder batch of 32: every byte read and written once.
func BenchmarkGatherRows(b *testing.B) {
	d, s := benchStream(b)
	const row, rows, n = 4 * 256 * 64 * 64, 32, 64
	src := benchAlloc(b, d, row*rows)
	flat := make([]float32, n)
	for i := range flat {
		flat[i] = math.Float32frombits(uint32(int32(i * 7 % rows)))
	}
	idx := upload(b, d, s, flat)
	dst := benchAlloc(b, d, row*n)
	b.SetBytes(int64(2 * row * n))
	benchLoop(b, s, func() error { return s.GatherRows(dst, src, row, idx, n) })
}

// BenchmarkZoomCubic is the reference resampling of the benchmark CT at 0.77 x 0.77 x 2.5 mm
// to 3 mm. The bytes count its volumes in and out once each; the three passes move more
// (two intermediates, float64 coefficients), so its GB/s is a floor on what it moves.
func BenchmarkZoomCubic(b *testing.B) {
	d, s := benchStream(b)
	f := [3]float64{0.77 / 3, 0.77 / 3, 2.5 / 3}
	out, err := kernels.ZoomShape(benchVolume, f)
	if err != nil {
		b.Fatal(err)
	}
	src := upload(b, d, s, randomCT(rand.New(rand.NewPCG(17, 18)), shapeLen(benchVolume)))
	dst := benchAlloc(b, d, 4*shapeLen(out))
	ws := benchAlloc(b, d, ZoomCubicWorkspace(out, benchVolume))
	h, err := d.AllocHost(ZoomCubicTablesBytes(out))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Close() })
	b.SetBytes(int64(4 * (shapeLen(benchVolume) + shapeLen(out))))
	benchLoop(b, s, func() error { return s.ZoomCubic(dst, src, out, benchVolume, ws, h) })
}
