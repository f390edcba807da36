//go:build cuda

package gpu

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// openDevice opens GPU 0 for a test, or skips it with the reason when no GPU is usable.
func openDevice(tb testing.TB) *Device {
	tb.Helper()
	if err := Available(); err != nil {
		tb.Skipf("no usable GPU: %v", err)
	}
	d, err := Open(0)
	if err != nil {
		tb.Fatalf("Open(0): %v", err)
	}
	tb.Cleanup(func() {
		if err := d.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return d
}

// testStream returns a stream of d that is closed when the test ends.
func testStream(tb testing.TB, d *Device) *Stream {
	tb.Helper()
	s, err := d.NewStream()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// testAlloc returns n bytes of device memory on d, released when the test ends.
func testAlloc(tb testing.TB, d *Device, n int) *Buffer {
	tb.Helper()
	b, err := d.Alloc(n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// guardBytes of sentinel surround every output in the guarded tests.
const guardBytes = 4096

const sentinel = 0xA7

// guarded is an output buffer with a sentinel-filled guard band on each side.
type guarded struct {
	all, out *Buffer
	n        int // bytes of out
}

func newGuarded(t *testing.T, d *Device, s *Stream, n int) *guarded {
	t.Helper()
	all, err := d.Alloc(n + 2*guardBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = all.Close() })
	if err := s.Fill(all, sentinel); err != nil {
		t.Fatal(err)
	}
	out, err := all.View(guardBytes, n)
	if err != nil {
		t.Fatal(err)
	}
	return &guarded{all: all, out: out, n: n}
}

// read copies the whole buffer back, fails the test if a guard byte changed, and returns
// the output bytes.
func (g *guarded) read(t *testing.T, d *Device, s *Stream) []byte {
	t.Helper()
	h, err := d.AllocHost(g.all.bytes)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := s.CopyToHost(h, g.all, g.all.bytes); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	b := h.Bytes()
	for i, v := range b {
		if (i < guardBytes || i >= guardBytes+g.n) && v != sentinel {
			t.Fatalf("guard byte %d (output is [%d, %d)) overwritten: %#x", i, guardBytes,
				guardBytes+g.n, v)
		}
	}
	return append([]byte(nil), b[guardBytes:guardBytes+g.n]...)
}

// upload copies data into a new device buffer.
func upload(t testing.TB, d *Device, s *Stream, data []float32) *Buffer {
	t.Helper()
	b, err := d.Alloc(4 * max(len(data), 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	h, err := d.AllocHost(4 * max(len(data), 1))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	copy(h.Float32s(), data)
	if err := s.CopyToDevice(b, h, 4*len(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil { // h is freed on return
		t.Fatal(err)
	}
	return b
}

func asFloats(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 |
			uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
	}
	return out
}

// randomCT returns n HU-like values: integers and fractions in [-1100, 1600], never all
// zero.
func randomCT(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		x := rng.Float32()*2700 - 1100
		if rng.IntN(2) == 0 {
			x = float32(math.Round(float64(x)))
		}
		v[i] = x
	}
	return v
}

func TestStatusCodesMatchNative(t *testing.T) {
	goCodes := []int{codeOK, codeInvalid, codeNoMem, codeNoDev, codeCUDA}
	for i, c := range nativeCodes() {
		if goCodes[i] != c {
			t.Errorf("code %d: Go %d, native %d", i, goCodes[i], c)
		}
	}
}

// TestAvailable runs everywhere: without a GPU the reason must be ErrNoDevice (the
// runtime's error 100), and the fallback must be chosen.
func TestAvailable(t *testing.T) {
	err := Available()
	if err != nil {
		if !errors.Is(err, ErrNoDevice) {
			t.Fatalf("Available() = %v; want nil or an error wrapping ErrNoDevice", err)
		}
		if SelectOrFallback(nil) {
			t.Fatal("SelectOrFallback chose the GPU while Available fails")
		}
		if d, err := Open(0); d != nil || err == nil {
			t.Fatalf("Open(0) without a device = %v, %v", d, err)
		}
		t.Skipf("no usable GPU (the rest of the GPU tests skip too): %v", err)
	}
	d := openDevice(t)
	info := d.Info()
	t.Logf("device %d: %s, sm_%d%d, %d SMs, %.1f GiB, runtime %d, driver %d", info.Ordinal,
		info.Name, info.Major, info.Minor, info.Multiprocessors,
		float64(info.TotalMemory)/(1<<30), info.RuntimeVersion, info.DriverVersion)
	if info.Name == "" || info.Multiprocessors <= 0 {
		t.Errorf("implausible device info %+v", info)
	}
}

func TestResample(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	tests := []struct {
		name string
		in   [3]int
		r    [3]float64
	}{
		{"odd down", [3]int{37, 29, 13}, [3]float64{1.7, 2.3, 1.3}},
		{"odd up", [3]int{11, 9, 7}, [3]float64{0.37, 0.5, 0.81}},
		{"mixed", [3]int{130, 3, 17}, [3]float64{3.0 / 0.68, 0.9, 1}},
		{"single voxel axis", [3]int{1, 23, 5}, [3]float64{2, 1.5, 0.25}},
		{"ct-like", [3]int{257, 131, 61}, [3]float64{3 / 0.77, 3 / 0.77, 3 / 2.5}},
	}
	rng := rand.New(rand.NewPCG(5, 7))
	for _, tc := range tests {
		for _, nearest := range []bool{false, true} {
			name := tc.name + map[bool]string{false: "/trilinear", true: "/nearest"}[nearest]
			t.Run(name, func(t *testing.T) {
				outShape, err := kernels.ResampleShape(tc.in, tc.r)
				if err != nil {
					t.Fatal(err)
				}
				src := randomCT(rng, shapeLen(tc.in))
				want := make([]float32, shapeLen(outShape))
				ref := kernels.ResampleTrilinear
				if nearest {
					ref = kernels.ResampleNearest
				}
				if err := ref(want, outShape, src, tc.in, tc.r); err != nil {
					t.Fatal(err)
				}
				in := upload(t, d, s, src)
				g := newGuarded(t, d, s, 4*len(want))
				if err := s.Resample(g.out, outShape, in, tc.in, tc.r, nearest); err != nil {
					t.Fatal(err)
				}
				got := asFloats(g.read(t, d, s))
				// Tolerance: nearest copies values (exact); trilinear follows the Go
				// reference operation by operation (exact), with 2 ulp allowed for a Go
				// build that fuses multiply-adds (GOAMD64=v3).
				for i := range want {
					diff := math.Abs(float64(got[i] - want[i]))
					if (nearest && got[i] != want[i]) ||
						diff > 2.5e-7*math.Max(1, math.Abs(float64(want[i]))) {
						t.Fatalf("voxel %d: got %v, want %v", i, got[i], want[i])
					}
				}
			})
		}
	}
}

func TestResampleRefusesBadShapes(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	b := testAlloc(t, d, 1<<16)
	tests := []struct {
		name    string
		in, out [3]int
		r       [3]float64
	}{
		{"wrong out", [3]int{10, 10, 10}, [3]int{5, 5, 6}, [3]float64{2, 2, 2}},
		{"zero ratio", [3]int{10, 10, 10}, [3]int{5, 5, 5}, [3]float64{2, 0, 2}},
		{"too big for buffer", [3]int{40, 40, 40}, [3]int{40, 40, 40}, [3]float64{1, 1, 1}},
	}
	for _, tc := range tests {
		err := s.Resample(b, tc.out, b, tc.in, tc.r, false)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", tc.name, err)
		}
	}
}

func TestIntensity(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	rng := rand.New(rand.NewPCG(11, 13))
	special := func(n int) []float32 {
		v := randomCT(rng, n)
		for i := 0; i < n; i += 97 {
			v[i] = [...]float32{0, float32(math.NaN()), float32(math.Inf(1)),
				float32(math.Inf(-1)), -1000, 1500, -200, 200}[i/97%8]
		}
		return v
	}
	constant := make([]float32, 1001)
	for i := range constant {
		constant[i] = 42
	}
	nan := make([]float32, 333)
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	tests := []struct {
		name string
		src  []float32
	}{
		{"random odd", randomCT(rng, 100_003)},
		{"specials", special(77_777)},
		{"one", []float32{-731.5}},
		{"constant", constant},
		{"all NaN", nan},
	}
	for _, tc := range tests {
		n := len(tc.src)
		in := upload(t, d, s, tc.src)
		t.Run(tc.name+"/hu", func(t *testing.T) {
			want := make([]float32, n)
			if err := kernels.NormalizeHU(want, tc.src); err != nil {
				t.Fatal(err)
			}
			g := newGuarded(t, d, s, 4*n)
			if err := s.NormalizeHU(g.out, in, n); err != nil {
				t.Fatal(err)
			}
			got := asFloats(g.read(t, d, s))
			for i := range want { // exact: same float64 arithmetic, one rounding
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("value %d (%v): got %v, want %v", i, tc.src[i], got[i], want[i])
				}
			}
		})
		scratch, err := d.Alloc(8)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(tc.name+"/window u8", func(t *testing.T) {
			want := make([]uint8, n)
			if err := kernels.SAMWindow(want, tc.src); err != nil {
				t.Fatal(err)
			}
			g := newGuarded(t, d, s, n)
			if err := s.SAMWindow(g.out, in, n, false, scratch); err != nil {
				t.Fatal(err)
			}
			got := g.read(t, d, s)
			for i := range want { // exact, as numpy's float64 arithmetic
				if got[i] != want[i] {
					t.Fatalf("value %d (%v): got %d, want %d", i, tc.src[i], got[i], want[i])
				}
			}
		})
		t.Run(tc.name+"/window f32", func(t *testing.T) {
			want := make([]float32, n)
			if err := kernels.SAMWindowFloat(want, tc.src); err != nil {
				t.Fatal(err)
			}
			g := newGuarded(t, d, s, 4*n)
			if err := s.SAMWindow(g.out, in, n, true, scratch); err != nil {
				t.Fatal(err)
			}
			got := asFloats(g.read(t, d, s))
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("value %d (%v): got %v, want %v", i, tc.src[i], got[i], want[i])
				}
			}
		})
		_ = scratch.Close()
	}
}

// TestSliceMethods checks the CPU-signature methods, which stage through the pool.
func TestSliceMethods(t *testing.T) {
	d := openDevice(t)
	rng := rand.New(rand.NewPCG(17, 19))
	in, r := [3]int{45, 33, 21}, [3]float64{1.4, 0.8, 2.2}
	out, err := kernels.ResampleShape(in, r)
	if err != nil {
		t.Fatal(err)
	}
	src := randomCT(rng, shapeLen(in))
	for round := range 2 { // the second round reuses pooled buffers
		want := make([]float32, shapeLen(out))
		got := make([]float32, shapeLen(out))
		if err := kernels.ResampleNearest(want, out, src, in, r); err != nil {
			t.Fatal(err)
		}
		if err := d.ResampleNearest(got, out, src, in, r); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("round %d: nearest voxel %d: got %v, want %v", round, i, got[i],
					want[i])
			}
		}
		hu := make([]float32, len(src))
		huWant := make([]float32, len(src))
		_ = kernels.NormalizeHU(huWant, src)
		if err := d.NormalizeHU(hu, src); err != nil {
			t.Fatal(err)
		}
		win := make([]uint8, len(src))
		winWant := make([]uint8, len(src))
		_ = kernels.SAMWindow(winWant, src)
		if err := d.SAMWindow(win, src); err != nil {
			t.Fatal(err)
		}
		for i := range src {
			if hu[i] != huWant[i] || win[i] != winWant[i] {
				t.Fatalf("round %d: value %d: HU %v / %v, window %d / %d", round, i, hu[i],
					huWant[i], win[i], winWant[i])
			}
		}
	}
	if err := d.ResampleTrilinear(make([]float32, 3), out, src, in, r); err == nil {
		t.Error("ResampleTrilinear accepted a dst of the wrong length")
	}
}

// similarityCase builds random features and template kernels for points points.
func similarityCase(rng *rand.Rand, scales []kernels.SimilarityScale,
	points int) (features, kern [][]float32) {
	for _, sc := range scales {
		s3, k3 := sc.Size*sc.Size*sc.Size, sc.Kernel*sc.Kernel*sc.Kernel
		f := make([]float32, points*sc.Channels*s3)
		for i := range f {
			f[i] = float32(rng.NormFloat64())
		}
		k := make([]float32, points*sc.Channels*k3)
		tmpl := make([]float32, sc.Channels*s3)
		for p := range points {
			for range 2 { // two templates, as the method sums several
				for i := range tmpl {
					tmpl[i] = float32(rng.NormFloat64())
				}
				_ = kernels.AddTemplateKernel(k[p*sc.Channels*k3:(p+1)*sc.Channels*k3], tmpl,
					sc.Channels, sc.Size, sc.Kernel)
			}
		}
		features = append(features, f)
		kern = append(kern, k)
	}
	return features, kern
}

func TestSimilaritySearch(t *testing.T) {
	d := openDevice(t)
	tests := []struct {
		name   string
		scales []kernels.SimilarityScale
		patch  int
		points int
		chunk  int // 0: the default
	}{
		{"small odd patch", []kernels.SimilarityScale{{Size: 16, Kernel: 2, Channels: 7},
			{Size: 32, Kernel: 4, Channels: 5}}, 37, 3, 0},
		{"chunks of 2 over 5 points", []kernels.SimilarityScale{{Size: 16, Kernel: 4,
			Channels: 3}}, 20, 5, 2},
		{"medlam scales", kernels.MedLAMScales(96), kernels.MedLAMPatch, 2, 0},
	}
	rng := rand.New(rand.NewPCG(23, 29))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			features, kern := similarityCase(rng, tc.scales, tc.points)
			cpu, err := kernels.NewSimilaritySearch(tc.scales, tc.patch)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]kernels.SimilarityMatch, tc.points)
			if err := cpu.Search(features, kern, want); err != nil {
				t.Fatal(err)
			}
			g, err := d.NewSimilaritySearch(tc.scales, tc.patch)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if tc.chunk > 0 {
				g.chunk = tc.chunk
			}
			got := make([]kernels.SimilarityMatch, tc.points)
			if err := g.Search(features, kern, got); err != nil {
				t.Fatal(err)
			}
			// Tolerance: the correlations sum C*k^3 products in another order; the scores
			// (at most one per scale) agree to 2e-5. The maxima of random maps are apart
			// by far more, so the indices must agree.
			for p := range want {
				if got[p].Index != want[p].Index || got[p].Offset != want[p].Offset ||
					math.Abs(float64(got[p].Score-want[p].Score)) > 2e-5 {
					t.Errorf("point %d: got %+v, want %+v", p, got[p], want[p])
				}
			}
		})
	}
}

func TestSimilarityGuardAndNaN(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	scales := []kernels.SimilarityScale{{Size: 16, Kernel: 2, Channels: 4}}
	rng := rand.New(rand.NewPCG(31, 37))
	features, kern := similarityCase(rng, scales, 3)
	for i := 32; i < 64; i++ { // point 1's whole kernel [4][2^3]: its map is all NaN
		kern[0][i] = float32(math.NaN())
	}
	features[0][2*4*4096+123] = float32(math.NaN()) // one NaN voxel of point 2 is skipped
	g, err := d.NewSimilaritySearch(scales, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	fb := upload(t, d, s, features[0])
	kb := upload(t, d, s, kern[0])
	out := newGuarded(t, d, s, 8*3)
	if err := g.SearchDevice(s, []*Buffer{fb}, []*Buffer{kb}, 3, out.out); err != nil {
		t.Fatal(err)
	}
	res := out.read(t, d, s)
	var m [1]kernels.SimilarityMatch
	if err := decodeMatches(res[8:16], 16, m[:]); err == nil {
		t.Errorf("point 1 with NaN features gave %+v, want no maximum", m[0])
	}
	if err := decodeMatches(res[16:24], 16, m[:]); err != nil {
		t.Errorf("point 2: %v", err)
	}
	if _, err := d.NewSimilaritySearch([]kernels.SimilarityScale{{Size: 16, Kernel: 3,
		Channels: 4}}, 16); err == nil {
		t.Error("odd kernel accepted")
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	d := openDevice(t)
	b, err := d.Alloc(1024)
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.AllocHost(1024)
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	e, err := d.NewEvent()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, c := range []interface{ Close() error }{b, h, s, e} {
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	var nb *Buffer
	var nh *HostBuffer
	var ns *Stream
	var ne *Event
	var nd *Device
	for _, c := range []interface{ Close() error }{nb, nh, ns, ne, nd} {
		if err := c.Close(); err != nil {
			t.Errorf("nil Close: %v", err)
		}
	}
	if _, err := d.Alloc(1 << 62); !errors.Is(err, ErrOutOfMemory) {
		t.Errorf("Alloc(1<<62) = %v, want ErrOutOfMemory", err)
	}
}
