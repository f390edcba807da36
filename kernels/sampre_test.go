package kernels

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestLinearTaps(t *testing.T) {
	type tap struct {
		j int32
		w float32
	}
	tests := []struct {
		name string
		n, m int
		want [][]tap
	}{
		{"identity", 3, 3, [][]tap{{{0, 1}}, {{1, 1}}, {{2, 1}}}},
		// x = (o+0.5)/2 - 0.5 = -0.25, 0.25, 0.75, 1.25; edges take the edge sample.
		{"up 2x", 2, 4, [][]tap{{{0, 1}}, {{0, 0.75}, {1, 0.25}}, {{0, 0.25}, {1, 0.75}},
			{{1, 1}}}},
		// x = 0.5, 2.5; triangle of half-width 2; taps outside renormalised (sum 1.75).
		{"down 2x", 4, 2, [][]tap{{{0, 3. / 7}, {1, 3. / 7}, {2, 1. / 7}},
			{{1, 1. / 7}, {2, 3. / 7}, {3, 3. / 7}}}},
		{"one to many", 1, 3, [][]tap{{{0, 1}}, {{0, 1}}, {{0, 1}}}},
	}
	for _, tc := range tests {
		got, err := LinearTaps(tc.n, tc.m)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got.Start) != tc.m+1 {
			t.Fatalf("%s: %d starts, want %d", tc.name, len(got.Start), tc.m+1)
		}
		for o, want := range tc.want {
			a, b := got.Start[o], got.Start[o+1]
			if int(b-a) != len(want) {
				t.Errorf("%s: output %d has %d taps %v, want %v", tc.name, o, b-a,
					got.Index[a:b], want)
				continue
			}
			for i, w := range want {
				if got.Index[int(a)+i] != w.j || math.Abs(float64(got.Weight[int(a)+i]-w.w)) > 1e-6 {
					t.Errorf("%s: output %d tap %d = (%d, %v), want %v", tc.name, o, i,
						got.Index[int(a)+i], got.Weight[int(a)+i], w)
				}
			}
		}
	}
	if _, err := LinearTaps(0, 4); err == nil {
		t.Error("LinearTaps(0, 4) did not fail")
	}
}

// grey inverts the normalisation of channel c at index p of dst, rounded to an integer.
func grey(dst []float32, c, p int) int {
	return int(math.Round(float64(dst[c*SAMImageSize*SAMImageSize+p])*SAMPixelStd[c] +
		SAMPixelMean[c]))
}

func TestSAMPreprocessKnownAnswers(t *testing.T) {
	const S = SAMImageSize
	// Slice 0 is one row [0 40 80 120] (H = 1, W = 4); slice 1 is 200 everywhere.
	// Columns: x = (c+0.5)/256 - 0.5.
	win := []uint8{0, 40, 80, 120, 200, 200, 200, 200}
	dst := make([]float32, 2*3*S*S)
	if err := SAMPreprocess(dst, win, [3]int{4, 1, 2}, []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		col, want int
	}{
		{0, 0},      // x < 0: edge
		{128, 0},    // x = 0.00195: 0.078 truncated
		{192, 10},   // x = 0.25195: 10.08
		{384, 40},   // x = 1.00195: 40.08
		{512, 60},   // x = 1.50195: 60.08
		{640, 80},   // x = 2.00195: 80.08
		{1023, 120}, // x beyond the last sample: edge
	}
	for _, tc := range tests {
		for _, row := range []int{0, 700, S - 1} {
			for c := 0; c < 3; c++ {
				if g := grey(dst, c, row*S+tc.col); g != tc.want {
					t.Errorf("slice 0 row %d col %d channel %d = %d, want %d", row, tc.col,
						c, g, tc.want)
				}
			}
		}
	}
	want0 := float32((40 - 123.675) / 58.395)
	if d := dst[384]; math.Abs(float64(d-want0)) > 1e-6 {
		t.Errorf("normalised channel 0 = %v, want %v", d, want0)
	}
	for _, p := range []int{0, 5000, S*S - 1} {
		if g := grey(dst[3*S*S:], 2, p); g != 200 {
			t.Errorf("slice 1 pixel %d = %d, want 200 (a constant stays constant)", p, g)
		}
	}
}

func TestSAMPreprocessOrientation(t *testing.T) {
	const S = SAMImageSize
	// NX = 2, NY = 3: row j = 2 is bright. The slice must come out with rows along j, so
	// the bottom third of the image is bright and every column is the same.
	win := []uint8{0, 0, 0, 0, 250, 250}
	dst := make([]float32, 3*S*S)
	if err := SAMPreprocess(dst, win, [3]int{2, 3, 1}, []int{0}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ row, want int }{{0, 0}, {500, 0}, {1023, 250}} {
		for _, col := range []int{0, 1023} {
			if g := grey(dst, 1, tc.row*S+col); g != tc.want {
				t.Errorf("row %d col %d = %d, want %d", tc.row, col, g, tc.want)
			}
		}
	}
}

func TestSAMPreprocessDownsample(t *testing.T) {
	const S = SAMImageSize
	// W = 2048, a period-4 pattern 0 0 200 200: the antialiased filter averages it
	// (x = 2o + 0.5, taps 2o-1..2o+2 weighted 1/8, 3/8, 3/8, 1/8).
	nx := 2 * S
	win := make([]uint8, nx)
	for i := range win {
		if i%4 >= 2 {
			win[i] = 200
		}
	}
	dst := make([]float32, 3*S*S)
	if err := SAMPreprocess(dst, win, [3]int{nx, 1, 1}, []int{0}); err != nil {
		t.Fatal(err)
	}
	// o = 0: taps 0, 1, 2 with 3/7, 3/7, 1/7 -> 28.6; o = 1: taps 1..4 -> 150;
	// o = 2: taps 3..6 -> (200*1 + 0*3 + 0*3 + 200*1)/8 = 50.
	for _, tc := range []struct{ col, want int }{{0, 28}, {1, 150}, {2, 50}, {3, 150}} {
		if g := grey(dst, 0, 10*S+tc.col); g != tc.want {
			t.Errorf("col %d = %d, want %d", tc.col, g, tc.want)
		}
	}
}

func TestSAMPreprocessRefuses(t *testing.T) {
	const S = SAMImageSize
	win := make([]uint8, 4*3*2)
	tests := []struct {
		name   string
		dst    []float32
		shape  [3]int
		slices []int
	}{
		{"short dst", make([]float32, 3*S*S-1), [3]int{4, 3, 2}, []int{0}},
		{"bad shape", make([]float32, 3*S*S), [3]int{4, 3, 3}, []int{0}},
		{"zero shape", make([]float32, 3*S*S), [3]int{0, 3, 2}, []int{0}},
		{"slice out", make([]float32, 3*S*S), [3]int{4, 3, 2}, []int{2}},
		{"negative slice", make([]float32, 3*S*S), [3]int{4, 3, 2}, []int{-1}},
	}
	for _, tc := range tests {
		if err := SAMPreprocess(tc.dst, win, tc.shape, tc.slices); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestSAMPreprocessParallel checks that the result does not depend on the worker count,
// on random odd-sized slices.
func TestSAMPreprocessParallel(t *testing.T) {
	const S = SAMImageSize
	r := rand.New(rand.NewPCG(1, 2))
	shape := [3]int{37, 23, 5}
	win := make([]uint8, shape[0]*shape[1]*shape[2])
	for i := range win {
		win[i] = uint8(r.IntN(256))
	}
	slices := []int{4, 0, 2}
	run := func(procs int) []float32 {
		old := runtime.GOMAXPROCS(procs)
		defer runtime.GOMAXPROCS(old)
		dst := make([]float32, len(slices)*3*S*S)
		if err := SAMPreprocess(dst, win, shape, slices); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	a, b := run(1), run(3)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("value %d differs: %v (1 worker) vs %v (3)", i, a[i], b[i])
		}
	}
	// Batch entry 1 is slice 0: its corner pixel equals voxel (0, 0, 0).
	if g := grey(a[3*S*S:], 0, 0); g != int(win[0]) {
		t.Errorf("slice 0 corner = %d, want %d", g, win[0])
	}
}

func BenchmarkSAMPreprocess(b *testing.B) {
	shape := [3]int{512, 512, 4}
	win := make([]uint8, shape[0]*shape[1]*shape[2])
	for i := range win {
		win[i] = uint8(i * 7)
	}
	slices := []int{0, 1, 2, 3}
	dst := make([]float32, len(slices)*3*SAMImageSize*SAMImageSize)
	b.SetBytes(int64(len(dst) * 4))
	b.ResetTimer()
	for b.Loop() {
		if err := SAMPreprocess(dst, win, shape, slices); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/float64(len(slices)),
		"ms/slice")
}
