package cpunet

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkConv runs the full-size network's heaviest convolutions. The "GMAC/s" metric
// counts the multiply-adds of the direct form (27 per input channel per output), so it
// compares with direct implementations at the same work. Each instruction-set build this
// CPU runs is timed: -bench 'Conv/avx2/conv8_2' picks one.
func BenchmarkConv(b *testing.B) {
	defer func(l Level) { level = l }(level)
	for _, l := range Levels() {
		level = l
		b.Run(l.String(), benchConvs)
	}
}

func benchConvs(b *testing.B) {
	for _, tc := range []struct {
		name               string
		c1, c2, cout, edge int
	}{
		{"conv8_1", 96, 48, 96, 64},
		{"conv8_2", 96, 0, 96, 64},
		{"conv0_2", 48, 0, 48, 64},
		{"conv7_1", 96, 48, 96, 32},
		{"conv5_1", 384, 192, 192, 8},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			n := tc.edge * tc.edge * tc.edge
			cin := tc.c1 + tc.c2
			conv, err := NewConv(randSlice(r, tc.cout*cin*27, 0.1), randSlice(r, tc.cout, 0.1),
				tc.c1, tc.c2, tc.cout)
			if err != nil {
				b.Fatal(err)
			}
			a := randSlice(r, n*Pad(tc.c1), 1)
			var s2 []float32
			if tc.c2 > 0 {
				s2 = randSlice(r, n*Pad(tc.c2), 1)
			}
			out := make([]float32, n*Pad(tc.cout))
			b.ResetTimer()
			for b.Loop() {
				conv.Forward(out, a, s2, tc.edge, tc.edge, tc.edge)
			}
			macs := float64(n) * 27 * float64(cin*tc.cout)
			b.ReportMetric(macs*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
		})
	}
}
