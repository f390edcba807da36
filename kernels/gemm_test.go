package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGemmTileMatchesFloat64 checks the selected tile (assembly where the CPU has it) and
// the portable tile against a float64 product, with uneven row offsets and guard values
// around every written span that must stay untouched.
func TestGemmTileMatchesFloat64(t *testing.T) {
	tests := []struct {
		name string
		kc   int
		offs func(i int) int // offset of row i
	}{
		{"one step", 1, func(i int) int { return 16 * i }},
		{"channels 5", 5, func(i int) int { return 3 + 37*i%200 }},
		{"channels 96", 96, func(i int) int { return 200 - 13*i }},
		{"overlapping rows", 33, func(i int) int { return 10 + i }},
	}
	if len(gemmAvailable()) == 1 {
		t.Log("only the portable tile runs here (no AVX2/FMA, or not amd64)")
	}
	for _, impl := range gemmAvailable() {
		for _, tc := range tests {
			t.Run(impl.String()+"/"+tc.name, func(t *testing.T) {
				rows := impl.rows()
				offs := make([]int, rows)
				for i := range offs {
					offs[i] = tc.offs(i)
				}
				rng := rand.New(rand.NewPCG(uint64(tc.kc), 7))
				a := randSlice(rng, tc.kc*rows)
				b := randSlice(rng, tc.kc*tileCols)
				const n = 300
				dst := randSlice(rng, n)
				want := make([]float64, n)
				for i, v := range dst {
					want[i] = float64(v)
				}
				for i := range rows {
					for j := range tileCols {
						var s float64
						for l := range tc.kc {
							s += float64(a[l*rows+i]) * float64(b[l*tileCols+j])
						}
						want[offs[i]+j] += s
					}
				}
				gemmTile(impl, tc.kc, a, b, dst, offs)
				for i := range dst {
					if d := math.Abs(float64(dst[i]) - want[i]); d > 1e-5*float64(tc.kc+1) {
						t.Fatalf("dst[%d] = %g, want %g (diff %g)", i, dst[i], want[i], d)
					}
				}
			})
		}
	}
}

// randSlice returns n values uniform in [-1, 1).
func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = 2*rng.Float32() - 1
	}
	return s
}
