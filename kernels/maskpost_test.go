package kernels

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

func TestNewMaskMap(t *testing.T) {
	tests := []struct {
		n, lowRes int
		o         int
		l0, l1    int32
		w1        float32
	}{
		// 512 rows: s = 2o, x = (2o + 0.5)/4 - 0.5 = o/2 - 0.375.
		{512, 256, 0, 0, 1, 0}, // x < 0 clamps to 0
		{512, 256, 1, 0, 1, 0.125},
		{512, 256, 2, 0, 1, 0.625},
		{512, 256, 511, 255, 255, 0.125}, // x = 255.125, upper neighbour clamped
		// 1024 rows: the nearest step is the identity, x = (o + 0.5)/4 - 0.5.
		{1024, 256, 5, 0, 1, 0.875},
		// 100 rows: s = floor(o * 10.24) (OpenCV's nearest, no half-pixel shift).
		{100, 256, 3, 7, 8, 0.125},      // s = 30, x = 7.125
		{100, 256, 99, 252, 253, 0.875}, // s = 1013, x = 252.875
	}
	for _, tc := range tests {
		m, err := NewMaskMap(tc.n, tc.lowRes)
		if err != nil {
			t.Fatal(err)
		}
		if m.L0[tc.o] != tc.l0 || m.L1[tc.o] != tc.l1 || m.W1[tc.o] != tc.w1 ||
			m.W0[tc.o] != 1-tc.w1 {
			t.Errorf("NewMaskMap(%d, %d)[%d] = %d, %d, %v, %v; want %d, %d, %v", tc.n,
				tc.lowRes, tc.o, m.L0[tc.o], m.L1[tc.o], m.W0[tc.o], m.W1[tc.o], tc.l0,
				tc.l1, tc.w1)
		}
	}
	if _, err := NewMaskMap(0, 256); err == nil {
		t.Error("NewMaskMap(0, 256) did not fail")
	}
}

func TestSAMMaskPost(t *testing.T) {
	const lr = 4
	// One row (h = 1 samples low-res row 0 only) of w = 1024 columns, so the column map is
	// torch's bilinear: x = (c + 0.5)/256 - 0.5.
	row := func(v ...float32) []float32 {
		m := make([]float32, lr*lr)
		for i := range m {
			m[i] = -20
		}
		copy(m, v)
		return m
	}
	tests := []struct {
		name   string
		logits [][]float32
		labels []int16
		col    int
		want   int16
	}{
		// Column 191: x = 0.248046875 between samples 0 and 1. Logits -3, +10 average to
		// +0.22 > 0, but the probabilities 0.047, 1.0 average to 0.28 < 0.5: the reference
		// takes the sigmoid first, so the pixel stays unlabelled.
		{"sigmoid first", [][]float32{row(-3, 10)}, []int16{5}, 191, 7},
		{"claimed", [][]float32{row(3, 3)}, []int16{5}, 191, 5},
		{"nobody", [][]float32{row(-1, -1)}, []int16{5}, 191, 7},
		{"higher probability wins", [][]float32{row(1, 1), row(4, 4)}, []int16{5, 9}, 191, 9},
		{"first wins a tie", [][]float32{row(2, 2), row(2, 2)}, []int16{5, 9}, 191, 5},
		{"last column edge", [][]float32{row(-9, -9, -9, 6)}, []int16{3}, 1023, 3},
	}
	for _, tc := range tests {
		dst := make([]int16, 1024)
		for i := range dst {
			dst[i] = 7
		}
		if err := SAMMaskPost(dst, 1, 1024, slices.Concat(tc.logits...), lr,
			tc.labels); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if dst[tc.col] != tc.want {
			t.Errorf("%s: column %d = %d, want %d", tc.name, tc.col, dst[tc.col], tc.want)
		}
	}
}

// TestSAMMaskPostReference compares with the two steps done literally (sigmoid, bilinear to
// 1024 x 1024, nearest to h x w) on random logits and odd sizes.
func TestSAMMaskPostReference(t *testing.T) {
	const lr, S = 16, SAMImageSize
	r := rand.New(rand.NewPCG(3, 4))
	h, w := 37, 53
	logits := make([]float32, 2*lr*lr)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 3)
	}
	labels := []int16{2, 6}
	sig := func(v float32) float32 { return float32(1 / (1 + math.Exp(-float64(v)))) }
	src := func(s int) (int, int, float32) {
		x := max((float32(s)+0.5)*lr/S-0.5, 0)
		x0 := int(x)
		return x0, min(x0+1, lr-1), x - float32(x0)
	}
	want := make([]int16, h*w)
	for b := range labels {
		p := logits[b*lr*lr:]
		for r := 0; r < h; r++ {
			y0, y1, ly := src(r * S / h)
			for c := 0; c < w; c++ {
				x0, x1, lx := src(c * S / w)
				v := (1-ly)*((1-lx)*sig(p[y0*lr+x0])+lx*sig(p[y0*lr+x1])) +
					ly*((1-lx)*sig(p[y1*lr+x0])+lx*sig(p[y1*lr+x1]))
				if v <= 0.5 {
					continue
				}
				// The other box's probability decides overlaps; recompute it.
				o := logits[(1-b)*lr*lr:]
				u := (1-ly)*((1-lx)*sig(o[y0*lr+x0])+lx*sig(o[y0*lr+x1])) +
					ly*((1-lx)*sig(o[y1*lr+x0])+lx*sig(o[y1*lr+x1]))
				if v > u || (v == u && b == 0) {
					want[r*w+c] = labels[b]
				}
			}
		}
	}
	for _, procs := range []int{1, 3} {
		old := runtime.GOMAXPROCS(procs)
		got := make([]int16, h*w)
		err := SAMMaskPost(got, h, w, logits, lr, labels)
		runtime.GOMAXPROCS(old)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i := range got {
			if got[i] != want[i] {
				n++
			}
		}
		if n > 0 {
			t.Errorf("%d workers: %d of %d pixels differ from the literal reference", procs,
				n, h*w)
		}
		if !slices.Contains(got, 2) || !slices.Contains(got, 6) {
			t.Errorf("random logits labelled neither box somewhere: test is too weak")
		}
	}
}

func TestSAMMaskPostRefuses(t *testing.T) {
	tests := []struct {
		name   string
		dst    []int16
		h, w   int
		logits []float32
		lr     int
		labels []int16
	}{
		{"dst size", make([]int16, 5), 2, 3, make([]float32, 16), 4, []int16{1}},
		{"logit count", make([]int16, 6), 2, 3, make([]float32, 15), 4, []int16{1}},
		{"labels count", make([]int16, 6), 2, 3, make([]float32, 16), 4, []int16{1, 2}},
		{"zero size", nil, 0, 3, make([]float32, 16), 4, []int16{1}},
	}
	for _, tc := range tests {
		if err := SAMMaskPost(tc.dst, tc.h, tc.w, tc.logits, tc.lr, tc.labels); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func BenchmarkSAMMaskPost(b *testing.B) {
	const lr, boxes = 256, 4
	logits := make([]float32, boxes*lr*lr)
	for i := range logits {
		logits[i] = float32(i%97) - 48
	}
	labels := []int16{1, 2, 3, 4}
	dst := make([]int16, 512*512)
	for b.Loop() {
		if err := SAMMaskPost(dst, 512, 512, logits, lr, labels); err != nil {
			b.Fatal(err)
		}
	}
}
