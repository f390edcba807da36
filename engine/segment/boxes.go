package segment

import (
	"math"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// BoxMargin is the method's widening of every prompt box, in 1024-pixel units per side.
const BoxMargin = 10

// Box1024 returns the prompt box (x0, y0, x1, y1) that the method gives SAM on every slice
// of b (method.md 5.4): b's i and j corners scaled by 1024/W and 1024/H (W = nx, H = ny),
// rounded half to even (numpy's around), widened by BoxMargin pixels and clipped to
// [0, 1023] (the reference does not clip). x runs along i, y along j.
func Box1024(b eval.Box, nx, ny int) [4]float32 {
	const S = kernels.SAMImageSize
	scale := func(v, n int) float64 { return math.RoundToEven(float64(v) * S / float64(n)) }
	clip := func(v float64) float32 { return float32(min(max(v, 0), S-1)) }
	return [4]float32{
		clip(scale(b.Min[0], nx) - BoxMargin), clip(scale(b.Min[1], ny) - BoxMargin),
		clip(scale(b.Max[0], nx) + BoxMargin), clip(scale(b.Max[1], ny) + BoxMargin),
	}
}
