package kernels

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestMinMaxAndLooksLikeHU(t *testing.T) {
	nan := float32(math.NaN())
	big := make([]float32, 3*elemGrain+17) // several ranges, the extremes in the last one
	for i := range big {
		big[i] = float32(i % 100)
	}
	big[len(big)-1], big[len(big)-2] = -1024, 3071
	tests := []struct {
		name   string
		data   []float32
		lo, hi float32
		ok, hu bool
	}{
		{"empty", nil, 0, 0, false, false},
		{"all nan", []float32{nan, nan}, 0, 0, false, false},
		{"nan ignored", []float32{nan, 5, -3, nan}, -3, 5, true, false},
		{"threshold is strict", []float32{-10, 40}, -10, 40, true, false},
		{"raw ct", []float32{0, -10.5, 12}, -10.5, 12, true, true},
		{"many ranges", big, -1024, 3071, true, true},
	}
	old := runtime.GOMAXPROCS(3)
	defer runtime.GOMAXPROCS(old)
	for _, tc := range tests {
		lo, hi, ok := MinMax(tc.data)
		if lo != tc.lo || hi != tc.hi || ok != tc.ok {
			t.Errorf("%s: MinMax = %v, %v, %v; want %v, %v, %v", tc.name, lo, hi, ok,
				tc.lo, tc.hi, tc.ok)
		}
		if got := LooksLikeHU(tc.data); got != tc.hu {
			t.Errorf("%s: LooksLikeHU = %v, want %v", tc.name, got, tc.hu)
		}
	}
}

func TestNormalizeHU(t *testing.T) {
	tests := []struct {
		hu   float32
		want float64
	}{
		{float32(math.Inf(-1)), 0}, {-3024, 0}, {-1000.5, 0}, {-1000, 0},
		{-600, 0.1}, {-200, 0.2}, {-100, 0.35}, {0, 0.5}, {100, 0.65}, {200, 0.8},
		{850, 0.9}, {1499, 0.8 + 0.2*1299.0/1300}, {1500, 1}, {3071, 1},
		{float32(math.Inf(1)), 1}, {float32(math.NaN()), 0},
	}
	src := make([]float32, len(tests))
	for i, tc := range tests {
		src[i] = tc.hu
	}
	dst := make([]float32, len(src))
	if err := NormalizeHU(dst, src); err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		if math.Abs(float64(dst[i])-tc.want) > 1e-7 {
			t.Errorf("NormalizeHU(%v) = %v, want %v", tc.hu, dst[i], tc.want)
		}
	}
	// In place, on a volume large enough to be split, the result must be the same.
	rng := rand.New(rand.NewPCG(5, 6))
	vol := make([]float32, 5*elemGrain+3)
	for i := range vol {
		v := rng.Float64()*4000 - 1500
		if i%2 == 0 { // integer HU take the table path, the others the arithmetic one
			v = math.Round(v)
		}
		vol[i] = float32(v)
	}
	want := make([]float32, len(vol))
	for i, v := range vol {
		want[i] = normHU(v)
		if want[i] < 0 || want[i] > 1 {
			t.Fatalf("normHU(%v) = %v outside [0, 1]", v, want[i])
		}
	}
	if err := NormalizeHU(vol, vol); err != nil {
		t.Fatal(err)
	}
	for i := range vol {
		if vol[i] != want[i] {
			t.Fatalf("in place voxel %d = %v, want %v", i, vol[i], want[i])
		}
	}
	if err := NormalizeHU(dst[:1], src); err == nil {
		t.Error("length mismatch accepted")
	}
}

// samWindowNaive restates the reference in float64: clip, min-max over the whole clipped
// volume, scale to 255, zero where the raw value is 0, truncate.
func samWindowNaive(src []float32) []uint8 {
	c := make([]float64, len(src))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, v := range src {
		c[i] = math.Min(math.Max(float64(v), -500), 1000)
		lo, hi = math.Min(lo, c[i]), math.Max(hi, c[i])
	}
	out := make([]uint8, len(src))
	for i, v := range src {
		if v != 0 && hi > lo {
			out[i] = uint8(math.Trunc((c[i] - lo) / (hi - lo) * 255))
		}
	}
	return out
}

func TestSAMWindowKnown(t *testing.T) {
	tests := []struct {
		name string
		src  []float32
		want []uint8
	}{
		// Full window: lo = -500, span 1500, so HU h maps to trunc((h+500)/1500*255).
		{"full window", []float32{-1024, -500, -499, 0, 1, 250, 999.9, 1000, 3071},
			[]uint8{0, 0, 0, 0, 85, 127, 254, 255, 255}},
		// Narrow range: min 100, max 300 after clipping; 200 is half way.
		{"own range", []float32{100, 200, 300, 150.5}, []uint8{0, 127, 255, 64}},
		{"raw zero", []float32{-50, 0, 50}, []uint8{0, 0, 255}},
		{"constant", []float32{42, 42}, []uint8{0, 0}},
		{"nan", []float32{float32(math.NaN()), -500, 1000}, []uint8{0, 0, 255}},
	}
	for _, tc := range tests {
		got := make([]uint8, len(tc.src))
		if err := SAMWindow(got, tc.src); err != nil {
			t.Fatal(err)
		}
		gotF := make([]float32, len(tc.src))
		if err := SAMWindowFloat(gotF, tc.src); err != nil {
			t.Fatal(err)
		}
		for i := range tc.want {
			if got[i] != tc.want[i] || gotF[i] != float32(tc.want[i]) {
				t.Errorf("%s: voxel %d (%v) = %d / %v, want %d", tc.name, i, tc.src[i], got[i],
					gotF[i], tc.want[i])
			}
		}
	}
}

func TestSAMWindowAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	tests := []struct {
		name     string
		integers bool
		lo, hi   float64
	}{
		{"integer hu", true, -1024, 2000},
		{"fractional hu", false, -1024, 2000},
		{"inside window", false, -300, 700},
		{"integers inside", true, -200, 400},
	}
	old := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(old)
	for _, tc := range tests {
		src := make([]float32, 3*elemGrain+101)
		for i := range src {
			v := tc.lo + rng.Float64()*(tc.hi-tc.lo)
			if tc.integers {
				v = math.Round(v)
			}
			src[i] = float32(v)
		}
		src[11] = 0
		want := samWindowNaive(src)
		got := make([]uint8, len(src))
		if err := SAMWindow(got, src); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: voxel %d (%v) = %d, want %d", tc.name, i, src[i], got[i], want[i])
			}
		}
		if err := SAMWindowFloat(src, src); err != nil { // in place
			t.Fatal(err)
		}
		for i := range want {
			if src[i] != float32(want[i]) {
				t.Fatalf("%s in place: voxel %d = %v, want %d", tc.name, i, src[i], want[i])
			}
		}
	}
	if err := SAMWindow(make([]uint8, 2), make([]float32, 3)); err == nil {
		t.Error("length mismatch accepted")
	}
	if err := SAMWindowFloat(make([]float32, 2), make([]float32, 3)); err == nil {
		t.Error("length mismatch accepted")
	}
}

func BenchmarkNormalizeHUCT(b *testing.B) {
	src := syntheticCT()
	dst := make([]float32, len(src))
	b.SetBytes(int64(4 * len(src)))
	b.ResetTimer()
	for b.Loop() {
		if err := NormalizeHU(dst, src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSAMWindowCT(b *testing.B) {
	src := syntheticCT()
	dst := make([]uint8, len(src))
	b.SetBytes(int64(4 * len(src)))
	b.ResetTimer()
	for b.Loop() {
		if err := SAMWindow(dst, src); err != nil {
			b.Fatal(err)
		}
	}
}
