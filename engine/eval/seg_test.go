package eval

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

func bools(s string) []bool {
	b := make([]bool, len(s))
	for i, c := range s {
		b[i] = c == '1'
	}
	return b
}

func TestDice(t *testing.T) {
	tests := []struct {
		pred, ref string
		want      float64
		ok        bool
	}{
		{"1100", "0110", 0.5, true},
		{"1111", "1111", 1, true},
		{"1000", "0001", 0, true},
		{"0000", "0100", 0, true},
		{"0000", "0000", 0, false},
		{"1110", "0100", 0.5, true},
	}
	for _, tc := range tests {
		got, ok := Dice(bools(tc.pred), bools(tc.ref))
		if got != tc.want || ok != tc.ok {
			t.Errorf("Dice(%s, %s) = %v, %v; want %v, %v", tc.pred, tc.ref, got, ok,
				tc.want, tc.ok)
		}
	}
}

func TestSurface(t *testing.T) {
	// A 3x3x3 cube inside a 5x5x5 grid: every cube voxel but the centre is surface. A
	// mask filling a 2x2x2 grid is all surface (outside the grid is background).
	shape := [3]int{5, 5, 5}
	m := make([]bool, 125)
	for k := 1; k <= 3; k++ {
		for j := 1; j <= 3; j++ {
			for i := 1; i <= 3; i++ {
				m[i+5*(j+5*k)] = true
			}
		}
	}
	s := Surface(m, shape)
	n := 0
	for _, v := range s {
		if v {
			n++
		}
	}
	if n != 26 || s[2+5*(2+5*2)] {
		t.Errorf("cube surface has %d voxels (centre %v), want 26 without the centre", n,
			s[2+5*(2+5*2)])
	}
	full := make([]bool, 8)
	for i := range full {
		full[i] = true
	}
	for i, v := range Surface(full, [3]int{2, 2, 2}) {
		if !v {
			t.Errorf("voxel %d of a grid-filling mask is not surface", i)
		}
	}
}

func TestDistanceTransformKnown(t *testing.T) {
	tests := []struct {
		name    string
		feat    string
		shape   [3]int
		spacing [3]float64
		at      int
		want    float64
	}{
		{"line", "00100", [3]int{5, 1, 1}, [3]float64{2, 1, 1}, 0, 4},
		{"line right", "00100", [3]int{5, 1, 1}, [3]float64{2, 1, 1}, 4, 4},
		{"feature", "00100", [3]int{5, 1, 1}, [3]float64{2, 1, 1}, 2, 0},
		{"two features", "10001", [3]int{5, 1, 1}, [3]float64{1, 1, 1}, 2, 2},
		{"diagonal", "10000000", [3]int{2, 2, 2}, [3]float64{1, 2, 3}, 7, math.Sqrt(14)},
		{"none", "0000", [3]int{2, 2, 1}, [3]float64{1, 1, 1}, 3, math.Inf(1)},
	}
	for _, tc := range tests {
		d := DistanceTransform(bools(tc.feat), tc.shape, tc.spacing)
		if math.Abs(d[tc.at]-tc.want) > 1e-12 && !(math.IsInf(tc.want, 1) && math.IsInf(d[tc.at], 1)) {
			t.Errorf("%s: d[%d] = %v, want %v", tc.name, tc.at, d[tc.at], tc.want)
		}
	}
}

// TestDistanceTransformBrute compares with the definition on random sparse features.
func TestDistanceTransformBrute(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	shape := [3]int{9, 7, 6}
	spacing := [3]float64{0.7, 1.3, 2.9}
	n := shape[0] * shape[1] * shape[2]
	feat := make([]bool, n)
	var pts [][3]int
	for p := 0; p < n; p++ {
		if r.IntN(23) == 0 {
			feat[p] = true
			pts = append(pts, [3]int{p % shape[0], p / shape[0] % shape[1], p / shape[0] / shape[1]})
		}
	}
	if len(pts) < 3 {
		t.Fatal("too few features drawn")
	}
	d := DistanceTransform(feat, shape, spacing)
	for p := 0; p < n; p++ {
		q := [3]int{p % shape[0], p / shape[0] % shape[1], p / shape[0] / shape[1]}
		best := math.Inf(1)
		for _, f := range pts {
			var s float64
			for a := 0; a < 3; a++ {
				x := float64(q[a]-f[a]) * spacing[a]
				s += x * x
			}
			best = math.Min(best, math.Sqrt(s))
		}
		if math.Abs(d[p]-best) > 1e-9 {
			t.Fatalf("voxel %v: %v, brute force %v", q, d[p], best)
		}
	}
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		a    []float64
		q    float64
		want float64
	}{
		{[]float64{4, 1, 3, 2}, 95, 3.85},
		{[]float64{7}, 95, 7},
		{[]float64{0, 10}, 50, 5},
		{[]float64{5, 0, 10}, 100, 10},
	}
	for _, tc := range tests {
		if got := percentile(tc.a, tc.q); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.a, tc.q, got, tc.want)
		}
	}
}

// box3 marks the voxels of [lo, hi] (inclusive) on a grid.
func box3(shape, lo, hi [3]int) []bool {
	m := make([]bool, shape[0]*shape[1]*shape[2])
	for k := lo[2]; k <= hi[2]; k++ {
		for j := lo[1]; j <= hi[1]; j++ {
			for i := lo[0]; i <= hi[0]; i++ {
				m[i+shape[0]*(j+shape[1]*k)] = true
			}
		}
	}
	return m
}

func TestHD95(t *testing.T) {
	shape := [3]int{12, 10, 8}
	tests := []struct {
		name    string
		pred    []bool
		ref     []bool
		spacing [3]float64
		want    float64
		ok      bool
	}{
		{"same", box3(shape, [3]int{2, 2, 2}, [3]int{5, 5, 5}),
			box3(shape, [3]int{2, 2, 2}, [3]int{5, 5, 5}), [3]float64{1, 1, 1}, 0, true},
		// Two single voxels 3 apart along i at 2 mm: every distance is 6 mm.
		{"points", box3(shape, [3]int{1, 1, 1}, [3]int{1, 1, 1}),
			box3(shape, [3]int{4, 1, 1}, [3]int{4, 1, 1}), [3]float64{2, 1, 1}, 6, true},
		{"empty pred", make([]bool, 960), box3(shape, [3]int{1, 1, 1}, [3]int{2, 2, 2}),
			[3]float64{1, 1, 1}, 0, false},
	}
	for _, tc := range tests {
		got, ok := HD95(tc.pred, tc.ref, shape, tc.spacing)
		if ok != tc.ok || (ok && math.Abs(got-tc.want) > 1e-9) {
			t.Errorf("%s: HD95 = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestHD95Brute compares with the definition computed by brute force on random blobs.
func TestHD95Brute(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	shape := [3]int{14, 11, 9}
	spacing := [3]float64{0.8, 0.8, 2.5}
	blob := func() []bool {
		c := [3]float64{4 + r.Float64()*5, 3 + r.Float64()*4, 2 + r.Float64()*4}
		rad := 2 + r.Float64()*3
		m := make([]bool, shape[0]*shape[1]*shape[2])
		for p := range m {
			q := [3]int{p % shape[0], p / shape[0] % shape[1], p / shape[0] / shape[1]}
			var s float64
			for a := 0; a < 3; a++ {
				x := (float64(q[a]) - c[a]) * spacing[a]
				s += x * x
			}
			m[p] = math.Sqrt(s) < rad*1.5
		}
		return m
	}
	coords := func(m []bool) [][3]int {
		var out [][3]int
		for p, v := range m {
			if v {
				out = append(out, [3]int{p % shape[0], p / shape[0] % shape[1], p / shape[0] / shape[1]})
			}
		}
		return out
	}
	for trial := 0; trial < 4; trial++ {
		a, b := blob(), blob()
		sa, sb := coords(Surface(a, shape)), coords(Surface(b, shape))
		var all []float64
		near := func(from, to [][3]int) {
			for _, p := range from {
				best := math.Inf(1)
				for _, q := range to {
					var s float64
					for ax := 0; ax < 3; ax++ {
						x := float64(p[ax]-q[ax]) * spacing[ax]
						s += x * x
					}
					best = math.Min(best, s)
				}
				all = append(all, math.Sqrt(best))
			}
		}
		near(sa, sb)
		near(sb, sa)
		want := percentile(all, 95)
		got, ok := HD95(a, b, shape, spacing)
		if !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("trial %d: HD95 = %v, %v; brute force %v", trial, got, ok, want)
		}
	}
}

func TestScoreSegmentation(t *testing.T) {
	pred, _ := volume.New([3]int{4, 1, 1}, [3]float64{1, 1, 1})
	ref, _ := volume.New([3]int{4, 1, 1}, [3]float64{1, 1, 1})
	copy(pred.Data, []float32{1, 1, 2, 0})
	copy(ref.Data, []float32{0, 1, 2, 2})
	s, err := ScoreSegmentation(pred, ref, []int{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if *s[0].Dice != 2.0/3 || *s[1].Dice != 2.0/3 || s[2].Dice != nil || s[2].HD95 != nil {
		t.Errorf("scores %+v", s)
	}
	// Label 1: distances 1, 0 (pred to ref) and 0 (ref to pred): 95th percentile 0.9.
	if s[0].PredVoxels != 2 || s[0].RefVoxels != 1 || math.Abs(*s[0].HD95-0.9) > 1e-12 {
		t.Errorf("label 1: %+v (hd95 %v)", s[0], *s[0].HD95)
	}
	other, _ := volume.New([3]int{2, 2, 1}, [3]float64{1, 1, 1})
	if _, err := ScoreSegmentation(pred, other, []int{1}); err == nil {
		t.Error("shape mismatch not refused")
	}
}
