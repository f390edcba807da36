package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkSimilaritySearch times the whole search (normalisation, correlation at the three
// MedLAM scales with 96 channels, resize, sum, argmax) for one point and for a batch of 8,
// with each GEMM tile the CPU can run (the portable one for one point only). "GMAC/s"
// counts the correlation's multiply-adds, k^3*C*S^3 per scale and point (13.4 G per point).
func BenchmarkSimilaritySearch(b *testing.B) {
	scales := MedLAMScales(96)
	var macs float64
	for _, sc := range scales {
		macs += float64(sc.Kernel*sc.Kernel*sc.Kernel) * float64(sc.Channels) *
			float64(sc.Size*sc.Size*sc.Size)
	}
	for _, points := range []int{1, 8} {
		var feats, kerns [][]float32 // built on first use: 115 MB per point
		for _, impl := range gemmAvailable() {
			if impl == implGeneric && points > 1 {
				continue // the portable tile is only timed once, it is slow
			}
			b.Run(fmt.Sprintf("points=%d/%v", points, impl), func(b *testing.B) {
				old := gemmUse
				gemmUse = impl
				defer func() { gemmUse = old }()
				if feats == nil {
					feats, kerns = randomInputs(rand.New(rand.NewPCG(1, 1)), scales, points)
				}
				s, err := NewSimilaritySearch(scales, MedLAMPatch)
				if err != nil {
					b.Fatal(err)
				}
				out := make([]SimilarityMatch, points)
				b.ResetTimer()
				for b.Loop() {
					if err := s.Search(feats, kerns, out); err != nil {
						b.Fatal(err)
					}
				}
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(sec/float64(points), "s/point")
				b.ReportMetric(macs*float64(points)/sec/1e9, "GMAC/s")
			})
		}
	}
}
