package kernels

import (
	"fmt"
	"math"
	"sync"
)

// elemGrain is the smallest range ParallelFor hands out to element-wise kernels: large
// enough that the goroutine hand-off is noise.
const elemGrain = 1 << 16

// MinMax returns the smallest and largest values of data, ignoring NaNs; ok is false when
// data holds no value that is not NaN. It reads data from Workers() goroutines.
func MinMax(data []float32) (lo, hi float32, ok bool) {
	var mu sync.Mutex
	lo, hi = float32(math.Inf(1)), float32(math.Inf(-1))
	ParallelFor(len(data), elemGrain, func(a, b int) {
		l, h := float32(math.Inf(1)), float32(math.Inf(-1))
		for _, v := range data[a:b] {
			if v < l { // false for NaN, which is thereby skipped
				l = v
			}
			if v > h {
				h = v
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if l <= h { // the range held a value that is not NaN
			ok = true
			lo, hi = min(lo, l), max(hi, h)
		}
	})
	if !ok {
		return 0, 0, false
	}
	return lo, hi, true
}

// HUThreshold is the minimum below which the method treats a volume as raw Hounsfield units
// and applies NormalizeHU (method.md, section 1, step 3).
const HUThreshold = -10

// LooksLikeHU reports whether MedLAM's HU normalisation applies to data: its minimum (NaNs
// ignored) is below HUThreshold. The caller decides whether to call NormalizeHU; the kernel
// itself never checks.
func LooksLikeHU(data []float32) bool {
	lo, _, ok := MinMax(data)
	return ok && lo < HUThreshold
}

// huKnots are MedLAM's normalisation breakpoints: HU on the left, output on the right.
var huKnots = [4][2]float64{{-1000, 0}, {-200, 0.2}, {200, 0.8}, {1500, 1}}

// normHU maps one HU value: piecewise linear through huKnots, 0 below the first knot and
// for NaN, 1 from the last knot on. It computes in float64 and rounds once to float32.
func normHU(v float32) float32 {
	x := float64(v)
	switch {
	case !(x >= huKnots[0][0]): // also NaN, as in the reference, which starts from 0
		return 0
	case x < huKnots[1][0]:
		return float32(huKnots[0][1] + (x-huKnots[0][0])*((huKnots[1][1]-huKnots[0][1])/
			(huKnots[1][0]-huKnots[0][0])))
	case x < huKnots[2][0]:
		return float32(huKnots[1][1] + (x-huKnots[1][0])*((huKnots[2][1]-huKnots[1][1])/
			(huKnots[2][0]-huKnots[1][0])))
	case x < huKnots[3][0]:
		return float32(huKnots[2][1] + (x-huKnots[2][0])*((huKnots[3][1]-huKnots[2][1])/
			(huKnots[3][0]-huKnots[2][0])))
	default:
		return 1
	}
}

// huTable holds normHU of every integer HU from the first to the last knot, since CT values
// are integers (int16 on disk) almost always.
var huTable = func() (t [1500 - -1000 + 1]float32) {
	for i := range t {
		t[i] = normHU(float32(i - 1000))
	}
	return t
}()

// normHUFast is normHU through huTable for integer values inside the knots.
func normHUFast(v float32) float32 {
	if v >= -1000 && v <= 1500 {
		if n := int32(v); float32(n) == v {
			return huTable[n+1000]
		}
	}
	return normHU(v)
}

// NormalizeHU writes MedLAM's intensity normalisation of src into dst: piecewise linear
// through HU -1000 -> 0, -200 -> 0.2, 200 -> 0.8, 1500 -> 1, clamped to [0, 1]; NaN maps to
// 0. dst and src must have the same length; dst may be src (in place) but must not
// otherwise overlap it. Use LooksLikeHU to decide whether to apply it, as the method does.
// Work is split over Workers() goroutines.
func NormalizeHU(dst, src []float32) error {
	if len(dst) != len(src) {
		return fmt.Errorf("kernels: normalize HU: dst has %d values, src %d", len(dst),
			len(src))
	}
	ParallelFor(len(src), elemGrain, func(a, b int) {
		d, s := dst[a:b], src[a:b]
		d = d[:len(s)]
		for i, v := range s {
			d[i] = normHUFast(v)
		}
	})
	return nil
}

// SAM's CT window, method.md section 5 step 2.
const (
	SAMWindowLow  = -500
	SAMWindowHigh = 1000
)

// samWindow holds what every voxel of one SAMWindow call shares: the clipped range and a
// table of the results for the integer HU values inside the window.
type samWindow struct {
	lo, span float64
	table    [SAMWindowHigh - SAMWindowLow + 1]uint8
}

func newSAMWindow(src []float32) *samWindow {
	w := &samWindow{}
	lo, hi, ok := MinMax(src)
	if !ok {
		return w // all NaN: span 0, every voxel maps to 0
	}
	clip := func(v float32) float64 {
		return min(max(float64(v), SAMWindowLow), SAMWindowHigh)
	}
	w.lo, w.span = clip(lo), clip(hi)-clip(lo)
	for i := range w.table {
		w.table[i] = w.scale(float64(i + SAMWindowLow))
	}
	return w
}

// scale maps a clipped value exactly as numpy does on float64: (c - lo) / span * 255,
// truncated. A zero span (constant volume) gives 0.
func (w *samWindow) scale(c float64) uint8 {
	if w.span == 0 {
		return 0
	}
	return uint8((c - w.lo) / w.span * 255)
}

// at maps one raw voxel.
func (w *samWindow) at(v float32) uint8 {
	if v == 0 || v != v { // raw 0 is forced to 0; NaN too
		return 0
	}
	if v >= SAMWindowLow && v <= SAMWindowHigh {
		if n := int32(v); float32(n) == v {
			return w.table[n-SAMWindowLow]
		}
	}
	return w.scale(min(max(float64(v), SAMWindowLow), SAMWindowHigh))
}

// SAMWindow writes SAM's 8-bit CT window of src into dst (method.md section 5 step 2): clip
// to [SAMWindowLow, SAMWindowHigh] HU, scale the clipped volume's own min..max to 0..255,
// set voxels whose raw value is exactly 0 to 0, truncate. The arithmetic is the reference's,
// in float64, so results equal numpy's bit for bit. The min and max span the whole of src,
// so pass the whole volume, not a slice of it. NaN voxels are ignored by the min and max and
// map to 0 (the reference would turn the whole volume to NaN); a constant volume maps to 0.
// dst and src must have the same length. Work is split over Workers() goroutines.
func SAMWindow(dst []uint8, src []float32) error { return samWindowInto(dst, src) }

// SAMWindowFloat is SAMWindow with float32 output: the integers 0..255 as float32. dst may
// be src (in place) but must not otherwise overlap it.
func SAMWindowFloat(dst, src []float32) error { return samWindowInto(dst, src) }

// samWindowInto is SAMWindow for either output type. The window is fixed from the whole of
// src before any voxel of dst is written, which is what lets SAMWindowFloat run in place.
func samWindowInto[T uint8 | float32](dst []T, src []float32) error {
	if len(dst) != len(src) {
		return fmt.Errorf("kernels: SAM window: dst has %d values, src %d", len(dst), len(src))
	}
	w := newSAMWindow(src)
	ParallelFor(len(src), elemGrain, func(a, b int) {
		d, s := dst[a:b], src[a:b]
		d = d[:len(s)]
		for i, v := range s {
			d[i] = T(w.at(v))
		}
	})
	return nil
}
