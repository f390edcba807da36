package kernels

import (
	"errors"
	"fmt"
	"math"
)

// errResample prefixes every argument error of the resampling kernels.
var errResample = errors.New("kernels: resample")

// ResampleShape returns the output shape for input shape in and per-axis ratios r
// (newSpacing/oldSpacing) under the package's grid convention: n_out = floor((n_in-1)/r +
// 1e-9) + 1. It refuses non-positive sizes, ratios that are not positive and finite, and
// outputs whose voxel count overflows int.
func ResampleShape(in [3]int, r [3]float64) ([3]int, error) {
	return outShape(in, r, "ratio", func(n int, r float64) float64 {
		return math.Floor(float64(n-1)/r+1e-9) + 1
	})
}

// outShape returns the shape whose size along axis a is size(in[a], p[a]), refusing
// non-positive input sizes, parameters (named param in errors) that are not positive and
// finite, empty or too large outputs, and voxel counts that overflow int.
func outShape(in [3]int, p [3]float64, param string,
	size func(n int, p float64) float64) ([3]int, error) {
	var out [3]int
	total := 1
	for a := 0; a < 3; a++ {
		if in[a] <= 0 {
			return out, fmt.Errorf("%w: input shape[%d] = %d must be positive", errResample, a,
				in[a])
		}
		if !(p[a] > 0) || math.IsInf(p[a], 0) {
			return out, fmt.Errorf("%w: %s[%d] = %v must be positive and finite", errResample,
				param, a, p[a])
		}
		f := size(in[a], p[a])
		if f < 1 {
			return out, fmt.Errorf("%w: %d voxels with %s %v leave none along axis %d",
				errResample, in[a], param, p[a], a)
		}
		if f > float64(math.MaxInt32) {
			return out, fmt.Errorf("%w: output size %g along axis %d is too large", errResample,
				f, a)
		}
		out[a] = int(f)
		if total > math.MaxInt/out[a] {
			return out, fmt.Errorf("%w: output shape %v overflows", errResample, out)
		}
		total *= out[a]
	}
	return out, nil
}

// linearAxis is the precomputed trilinear table of one axis: output o blends input offsets
// lo[o] and hi[o] (already multiplied by the axis stride) with weight w[o] on hi. The first
// pairs outputs have hi == lo + stride; the rest (at most the last few, where the sample
// sits on the last input voxel) have hi == lo.
type linearAxis struct {
	lo, hi []int
	w      []float32
	pairs  int
}

// sampleAt returns the input continuous index of output o, clamped into [0, n-1] so that
// float rounding of o*r never leaves the input.
func sampleAt(o int, r float64, n int) float64 {
	return min(float64(o)*r, float64(n-1))
}

func newLinearAxis(nOut, nIn int, r float64, stride int) linearAxis {
	t := linearAxis{lo: make([]int, nOut), hi: make([]int, nOut), w: make([]float32, nOut)}
	for o := range nOut {
		x := sampleAt(o, r, nIn)
		x0 := int(math.Floor(x))
		x1 := min(x0+1, nIn-1)
		t.lo[o] = x0 * stride
		t.hi[o] = x1 * stride
		t.w[o] = float32(x - float64(x0))
		if x1 > x0 {
			t.pairs = o + 1 // lo grows with o, so clamped outputs come last
		}
	}
	return t
}

// nearestAxis returns the nearest-neighbour offsets of one axis, multiplied by stride.
func nearestAxis(nOut, nIn int, r float64, stride int) []int {
	t := make([]int, nOut)
	for o := range nOut {
		x := sampleAt(o, r, nIn)
		t[o] = min(int(math.Floor(x+0.5)), nIn-1) * stride
	}
	return t
}

// checkResample validates the arguments shared by the resampling kernels.
func checkResample(dst []float32, dstShape [3]int, src []float32, srcShape [3]int,
	r [3]float64) error {
	want, err := ResampleShape(srcShape, r)
	if err != nil {
		return err
	}
	return checkOutput(dst, dstShape, want, src, srcShape, fmt.Sprintf("ratios %v", r))
}

// checkOutput checks that dstShape is want, the output shape for srcShape and the
// parameters described by params, and that both slices match their shapes.
func checkOutput(dst []float32, dstShape, want [3]int, src []float32, srcShape [3]int,
	params string) error {
	if dstShape != want {
		return fmt.Errorf("%w: dst shape %v, want %v for src shape %v and %s", errResample,
			dstShape, want, srcShape, params)
	}
	return checkShapes(dst, dstShape, src, srcShape)
}

// checkShapes checks that both slices hold as many voxels as their shapes, which must be
// positive and not overflow.
func checkShapes(dst []float32, dstShape [3]int, src []float32, srcShape [3]int) error {
	for _, s := range []struct {
		name  string
		n     int
		shape [3]int
	}{{"src", len(src), srcShape}, {"dst", len(dst), dstShape}} {
		want := 1
		for a := 0; a < 3; a++ {
			if s.shape[a] <= 0 || want > math.MaxInt/s.shape[a] {
				return fmt.Errorf("%w: %s shape %v is empty or overflows", errResample, s.name,
					s.shape)
			}
			want *= s.shape[a]
		}
		if s.n != want {
			return fmt.Errorf("%w: %s has %d voxels, shape %v needs %d", errResample, s.name,
				s.n, s.shape, want)
		}
	}
	return nil
}

// ResampleTrilinear resamples src (shape srcShape) into dst (shape dstShape) by trilinear
// interpolation, ratios r = newSpacing/oldSpacing per axis, under the grid convention stated
// in the package comment. dstShape must equal ResampleShape(srcShape, r) and the slices must
// match their shapes; dst and src must not overlap. Work is split over output k slabs on
// Workers() goroutines; besides three small per-axis tables nothing is allocated.
func ResampleTrilinear(dst []float32, dstShape [3]int, src []float32, srcShape [3]int,
	r [3]float64) error {
	if err := checkResample(dst, dstShape, src, srcShape, r); err != nil {
		return err
	}
	nx, ny := srcShape[0], srcShape[1]
	ox, oy, oz := dstShape[0], dstShape[1], dstShape[2]
	ti := newLinearAxis(ox, nx, r[0], 1)
	tj := newLinearAxis(oy, ny, r[1], nx)
	tk := newLinearAxis(oz, srcShape[2], r[2], nx*ny)
	ParallelFor(oz, 1, func(lo, hi int) {
		for ok := lo; ok < hi; ok++ {
			z0, z1, wz := tk.lo[ok], tk.hi[ok], tk.w[ok]
			for oj := range oy {
				y0, y1, wy := tj.lo[oj], tj.hi[oj], tj.w[oj]
				row := (ok*oy + oj) * ox
				trilinearRow(dst[row:row+ox], src[z0+y0:z0+y0+nx], src[z0+y1:z0+y1+nx],
					src[z1+y0:z1+y0+nx], src[z1+y1:z1+y1+nx], ti, wy, wz)
			}
		}
	})
	return nil
}

// trilinearRow fills one output row from the four input rows (k0,j0), (k0,j1), (k1,j0),
// (k1,j1) that surround it.
func trilinearRow(d, r00, r01, r10, r11 []float32, ti linearAxis, wy, wz float32) {
	n := min(ti.pairs, len(d))
	trilinearPairs(d[:n], r00, r01, r10, r11, ti.lo, ti.w, wy, wz)
	// The clamped tail: both neighbours are the same voxel, so only the j, k blend is left.
	lo := ti.lo[n:len(d)]
	for o := range d[n:] {
		a := lo[o]
		c0 := r00[a] + wy*(r01[a]-r00[a])
		c1 := r10[a] + wy*(r11[a]-r10[a])
		d[n+o] = c0 + wz*(c1-c0)
	}
}

// trilinearPairs is the hot loop of trilinearRow, for outputs whose upper i neighbour is
// lo[o]+1: one two-element slice per input row keeps the bounds checks to four per voxel.
func trilinearPairs(d, r00, r01, r10, r11 []float32, lo []int, w []float32, wy, wz float32) {
	lo, w = lo[:len(d)], w[:len(d)]
	for o := range d {
		a, wx := lo[o], w[o]
		p00 := r00[a : a+2 : a+2]
		p01 := r01[a : a+2 : a+2]
		p10 := r10[a : a+2 : a+2]
		p11 := r11[a : a+2 : a+2]
		c00 := p00[0] + wx*(p00[1]-p00[0])
		c01 := p01[0] + wx*(p01[1]-p01[0])
		c10 := p10[0] + wx*(p10[1]-p10[0])
		c11 := p11[0] + wx*(p11[1]-p11[0])
		c0 := c00 + wy*(c01-c00)
		c1 := c10 + wy*(c11-c10)
		d[o] = c0 + wz*(c1-c0)
	}
}

// ResampleNearest resamples src into dst by nearest neighbour, for label maps: output voxel
// o takes the input voxel floor(o*r + 0.5) per axis (clamped), so dst holds only values
// present in src. Arguments and threading are as for ResampleTrilinear.
func ResampleNearest(dst []float32, dstShape [3]int, src []float32, srcShape [3]int,
	r [3]float64) error {
	if err := checkResample(dst, dstShape, src, srcShape, r); err != nil {
		return err
	}
	nx, ny := srcShape[0], srcShape[1]
	ox, oy, oz := dstShape[0], dstShape[1], dstShape[2]
	ti := nearestAxis(ox, nx, r[0], 1)
	tj := nearestAxis(oy, ny, r[1], nx)
	tk := nearestAxis(oz, srcShape[2], r[2], nx*ny)
	ParallelFor(oz, 1, func(lo, hi int) {
		for ok := lo; ok < hi; ok++ {
			for oj := range oy {
				base := tk[ok] + tj[oj]
				in := src[base : base+nx]
				row := (ok*oy + oj) * ox
				d := dst[row : row+ox]
				idx := ti[:len(d)]
				for o := range d {
					d[o] = in[idx[o]]
				}
			}
		}
	})
	return nil
}
