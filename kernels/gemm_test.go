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
		offs [tileRows]int
	}{
		{"one step", 1, [tileRows]int{0, 16, 32, 48, 64, 80}},
		{"channels 5", 5, [tileRows]int{3, 40, 77, 101, 150, 190}},
		{"channels 96", 96, [tileRows]int{190, 150, 101, 77, 40, 3}},
		{"overlapping rows", 33, [tileRows]int{10, 11, 12, 13, 14, 15}},
	}
	impls := []struct {
		name string
		asm  bool
	}{{"generic", false}, {"avx2", true}}
	for _, impl := range impls {
		if impl.asm && !useAVX2FMA {
			t.Logf("skip %s: CPU lacks AVX2/FMA or this is not amd64", impl.name)
			continue
		}
		for _, tc := range tests {
			t.Run(impl.name+"/"+tc.name, func(t *testing.T) {
				old := useAVX2FMA
				useAVX2FMA = impl.asm
				defer func() { useAVX2FMA = old }()
				rng := rand.New(rand.NewPCG(uint64(tc.kc), 7))
				a := randSlice(rng, tc.kc*tileRows)
				b := randSlice(rng, tc.kc*tileCols)
				const n = 230
				dst := randSlice(rng, n)
				want := make([]float64, n)
				for i, v := range dst {
					want[i] = float64(v)
				}
				for i := range tileRows {
					for j := range tileCols {
						var s float64
						for l := range tc.kc {
							s += float64(a[l*tileRows+i]) * float64(b[l*tileCols+j])
						}
						want[tc.offs[i]+j] += s
					}
				}
				gemmTile(tc.kc, a, b, dst, &tc.offs)
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
