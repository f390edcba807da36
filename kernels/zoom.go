package kernels

import (
	"fmt"
	"math"
	"sync/atomic"
)

// This file holds the two resampling kernels of the reference implementation's grid
// conventions, which differ from the package's own (see the package comment):
//
//   - ZoomCubic is scipy.ndimage.zoom(x, f) with its defaults (order 3, mode "constant",
//     grid_mode False, prefilter on): a cubic B-spline through the samples, on a grid whose
//     first and last voxels coincide with the input's.
//   - ResampleLabelsOneHot is one-hot encoding, torch.nn.functional.interpolate(scale_factor
//     = f, mode "trilinear", align_corners False) and an argmax over the labels.

// ZoomShape returns scipy.ndimage.zoom's output shape for factors f (output voxels per input
// voxel, oldSpacing/newSpacing): n*f rounded half to even per axis, as Python's round. It
// refuses factors that are not positive and finite, and shapes that would be empty or
// overflow.
func ZoomShape(in [3]int, f [3]float64) ([3]int, error) {
	return outShape(in, f, "factor", func(n int, f float64) float64 {
		return math.RoundToEven(float64(n) * f)
	})
}

// ScaleShape returns torch.nn.functional.interpolate's output shape for scale factors f:
// floor(n*f) per axis, with the refusals of ZoomShape.
func ScaleShape(in [3]int, f [3]float64) ([3]int, error) {
	return outShape(in, f, "factor", func(n int, f float64) float64 {
		return math.Floor(float64(n) * f)
	})
}

// splinePole is the pole of the cubic B-spline's inverse filter, sqrt(3) - 2; splineGain
// is that filter's gain, (1 - z)(1 - 1/z) = 6.
var splinePole = math.Sqrt(3) - 2

const splineGain = 6

// splineAxis is the interpolation table of one axis: output o is the sum over k < 4 of
// w[4o+k] times spline coefficient idx[4o+k].
type splineAxis struct {
	idx []int
	w   []float64
}

// ZoomCubicPlan is what a device twin of ZoomCubic needs from the CPU one to compute the
// same values: the pole of the spline filter, its gain, the number of terms of the causal
// start that count, and per axis (i, j, k) the interpolation table (output o is the sum
// over t < 4, in that order, of W[a][4o+t] times coefficient Idx[a][4o+t]) and the pole's
// power z^(n-1) for the axis's input size n.
type ZoomCubicPlan struct {
	Pole, Gain float64
	Horizon    int
	Idx        [3][]int
	W          [3][]float64
	PolePower  [3]float64
}

// PlanZoomCubic returns the plan of ZoomCubic from srcShape to dstShape.
func PlanZoomCubic(dstShape, srcShape [3]int) ZoomCubicPlan {
	p := ZoomCubicPlan{Pole: splinePole, Gain: splineGain, Horizon: splineHorizon}
	for a := range 3 {
		t := newSplineAxis(dstShape[a], srcShape[a])
		p.Idx[a], p.W[a] = t.idx, t.w
		p.PolePower[a] = math.Pow(splinePole, float64(srcShape[a]-1))
	}
	return p
}

// newSplineAxis maps nOut outputs onto nIn inputs as scipy's zoom does without grid_mode:
// output o sits at input index o*(nIn-1)/(nOut-1) (0 when nOut is 1), and the taps beyond
// either end are mirrored about the end samples (d c b | a b c d | c b a). scipy computes
// that position as step = (nIn-1)/(nOut-1), then o*step, in float64; where rounding puts the
// last one past nIn-1, its mode "constant" makes the sample 0 (the whole face of the
// volume: scipy issues 4922, 6713), and so do the zero weights here.
func newSplineAxis(nOut, nIn int) splineAxis {
	t := splineAxis{idx: make([]int, 4*nOut), w: make([]float64, 4*nOut)}
	step := 1.0
	if nOut > 1 {
		step = float64(nIn-1) / float64(nOut-1)
	}
	for o := range nOut {
		x := float64(o) * step
		if x > float64(nIn-1) {
			continue // weights and indices stay 0
		}
		i := int(math.Floor(x))
		u := x - float64(i)
		w := t.w[4*o : 4*o+4]
		w[0] = (1 - u) * (1 - u) * (1 - u) / 6
		w[1] = (4 - 6*u*u + 3*u*u*u) / 6
		w[2] = (1 + 3*u + 3*u*u - 3*u*u*u) / 6
		w[3] = u * u * u / 6
		for k := range 4 {
			t.idx[4*o+k] = mirror(i-1+k, nIn)
		}
	}
	return t
}

// mirror folds index j into [0, n) by reflection about the end samples.
func mirror(j, n int) int {
	if n == 1 {
		return 0
	}
	p := 2 * (n - 1)
	j %= p
	if j < 0 {
		j += p
	}
	if j >= n {
		j = p - j
	}
	return j
}

// splineBlock is the number of lines filtered together: one float64 panel of n x
// splineBlock values per worker, so that every loop of the filter runs along a row.
const splineBlock = 64

// splineHorizon is the number of terms of the causal filter's start that count: beyond it
// the pole's powers are below 1e-17 and vanish in float64. scipy sums over the whole line;
// the difference is below float64 rounding.
var splineHorizon = int(math.Ceil(math.Log(1e-17) / math.Log(-splinePole)))

// lineSet describes the lines of one separable pass, input and output alike: along the
// contiguous axis (inner 0) line l is row l; along another axis the lines form outer blocks
// of inner adjacent lines (line l and l+1 start one element apart), each sample stride
// elements after the previous one.
type lineSet struct {
	n      int // samples per input line
	nOut   int // samples per output line
	stride int // element stride within a line (1: the contiguous axis)
	lines  int
	// inner is the number of adjacent lines per outer block (lines l and l+1 start one
	// element apart inside a block); 0 for the contiguous axis, whose line l starts at l*n.
	inner int
}

// starts returns the first element of input and output line l.
func (ls lineSet) starts(l int) (in, out int) {
	if ls.inner == 0 {
		return l * ls.n, l * ls.nOut
	}
	ob, col := l/ls.inner, l%ls.inner
	return ob*ls.n*ls.inner + col, ob*ls.nOut*ls.inner + col
}

// zoomLines resamples every line of ls from src into dst: panels of up to splineBlock
// lines are gathered into float64, turned into cubic B-spline coefficients (the recursive
// filter with mirror boundaries) and evaluated at the output positions of table t.
func zoomLines(dst, src []float32, ls lineSet, t splineAxis) {
	// Panels never straddle two outer blocks, so that their lines stay adjacent; the rows of
	// the contiguous axis form a single group.
	group := ls.inner
	if group == 0 {
		group = ls.lines
	}
	per := (group + splineBlock - 1) / splineBlock
	ParallelFor(ls.lines/group*per, 1, func(lo, hi int) {
		c := make([]float64, ls.n*splineBlock)
		v := make([]float64, ls.nOut*splineBlock)
		for b := lo; b < hi; b++ {
			col := b % per * splineBlock
			l0, m := b/per*group+col, min(splineBlock, group-col)
			in0, out0 := ls.starts(l0)
			// Gather: c[i*m + j] is sample i of line l0+j.
			if ls.inner == 0 {
				for j := range m {
					row := src[in0+j*ls.n : in0+(j+1)*ls.n]
					for i, x := range row {
						c[i*m+j] = float64(x)
					}
				}
			} else {
				for i := range ls.n {
					row := src[in0+i*ls.stride : in0+i*ls.stride+m]
					for j, x := range row {
						c[i*m+j] = float64(x)
					}
				}
			}
			splineFilter(c[:ls.n*m], ls.n, m)
			for o := range ls.nOut {
				idx, w := t.idx[4*o:4*o+4], t.w[4*o:4*o+4]
				r0, r1 := c[idx[0]*m:idx[0]*m+m], c[idx[1]*m:idx[1]*m+m]
				r2, r3 := c[idx[2]*m:idx[2]*m+m], c[idx[3]*m:idx[3]*m+m]
				row := v[o*m : o*m+m]
				for j := range row {
					// The conversions round each product, so that no build fuses them
					// (GOAMD64=v3, arm64) and the CUDA twin computes the same values.
					row[j] = float64(w[0]*r0[j]) + float64(w[1]*r1[j]) +
						float64(w[2]*r2[j]) + float64(w[3]*r3[j])
				}
			}
			// Scatter: output sample o of line l0+j is v[o*m + j].
			if ls.inner == 0 {
				for j := range m {
					row := dst[out0+j*ls.nOut : out0+(j+1)*ls.nOut]
					for o := range row {
						row[o] = float32(v[o*m+j])
					}
				}
			} else {
				for o := range ls.nOut {
					row := dst[out0+o*ls.stride : out0+o*ls.stride+m]
					for j := range row {
						row[j] = float32(v[o*m+j])
					}
				}
			}
		}
	})
}

// splineFilter turns c, n samples of m independent lines ([n][m]), into cubic B-spline
// coefficients in place: gain, then one causal and one anti-causal first-order recursion
// with pole z, each started from its exact value for a mirror-extended line.
func splineFilter(c []float64, n, m int) {
	if n == 1 {
		return
	}
	z := splinePole
	for i := range c {
		c[i] *= splineGain
	}
	// Causal start: c+[0] = sum over the mirrored line's history of z^k c[k], in closed form
	// over one period (z^(n-1) folds the far end in); terms past splineHorizon vanish.
	zn := math.Pow(z, float64(n-1)) // PlanZoomCubic's PolePower
	first, last := c[:m], c[(n-1)*m:n*m]
	var startBuf [splineBlock]float64
	start := startBuf[:m]
	for j := range start {
		start[j] = first[j] + float64(zn*last[j]) // float64(): no fused multiply-add
	}
	zi := z
	for i := 1; i < min(n-1, splineHorizon); i++ {
		a, b := c[i*m:i*m+m], c[(n-1-i)*m:(n-i)*m]
		for j := range start {
			start[j] += float64(zi * (a[j] + float64(zn*b[j])))
		}
		zi *= z
	}
	norm := 1 / (1 - zn*zn)
	for j := range first {
		first[j] = start[j] * norm
	}
	for i := 1; i < n; i++ {
		prev, cur := c[(i-1)*m:i*m], c[i*m:i*m+m]
		for j := range cur {
			cur[j] += float64(z * prev[j])
		}
	}
	// Anti-causal start for the mirror boundary, then the backward recursion.
	before := c[(n-2)*m : (n-1)*m]
	k := z / (z*z - 1)
	for j := range last {
		last[j] = k * (float64(z*before[j]) + last[j])
	}
	for i := n - 2; i >= 0; i-- {
		cur, next := c[i*m:i*m+m], c[(i+1)*m:(i+2)*m]
		for j := range cur {
			cur[j] = z * (next[j] - cur[j])
		}
	}
}

// ZoomCubic resamples src (shape srcShape) into dst (shape dstShape) as scipy.ndimage.zoom
// does with its defaults: a cubic B-spline through the samples with mirror boundaries,
// sampled at o*(n_in-1)/(n_out-1) along each axis (first and last voxels aligned; a last
// face that float rounding puts past the input is 0, as in scipy). Any dstShape of positive
// sizes is allowed; ZoomShape gives zoom's for a factor. The spline is separable, so the
// three axes are done one after another (i, j, then k), each in float64 within a line; the
// values agree with scipy's to float32 rounding. It allocates two intermediate volumes
// (dst's i size by src's j, k sizes, then dst's i, j sizes by src's k size), the exception to
// the package's rule, and splits its work over Workers() goroutines.
func ZoomCubic(dst []float32, dstShape [3]int, src []float32, srcShape [3]int) error {
	if err := checkShapes(dst, dstShape, src, srcShape); err != nil {
		return err
	}
	nx, ny, nz := srcShape[0], srcShape[1], srcShape[2]
	ox, oy, oz := dstShape[0], dstShape[1], dstShape[2]
	a := make([]float32, ox*ny*nz)
	zoomLines(a, src, lineSet{n: nx, nOut: ox, stride: 1, lines: ny * nz},
		newSplineAxis(ox, nx))
	b := make([]float32, ox*oy*nz)
	zoomLines(b, a, lineSet{n: ny, nOut: oy, stride: ox, lines: ox * nz, inner: ox},
		newSplineAxis(oy, ny))
	zoomLines(dst, b, lineSet{n: nz, nOut: oz, stride: ox * oy, lines: ox * oy,
		inner: ox * oy}, newSplineAxis(oz, nz))
	return nil
}

// firstNonLabel returns the index of the first value of x that is not a non-negative
// integer, or -1. Finite values from 2^24 up are integers in float32 whatever they are.
func firstNonLabel(x []float32) int {
	var first atomic.Int64
	first.Store(math.MaxInt64)
	const grain = 1 << 16
	ParallelFor((len(x)+grain-1)/grain, 1, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			for i, v := range x[b*grain : min((b+1)*grain, len(x))] {
				if (v >= 1<<24 && v <= math.MaxFloat32) || (v >= 0 && float32(int32(v)) == v) {
					continue
				}
				for at := int64(b*grain + i); ; {
					cur := first.Load()
					if at >= cur || first.CompareAndSwap(cur, at) {
						break
					}
				}
				break
			}
		}
	})
	if f := first.Load(); f != math.MaxInt64 {
		return int(f)
	}
	return -1
}

// halfPixelAxis is torch's linear source table for one axis with an explicit scale factor:
// output o reads i0[o] and i1[o] (multiplied by the axis stride) with weights w0[o], w1[o].
type halfPixelAxis struct {
	i0, i1 []int
	w0, w1 []float64
}

// newHalfPixelAxis computes, in float32 as torch does, the source index
// max((o + 0.5)/f - 0.5, 0) of each output and its two neighbours (the upper one clamped to
// the last input).
func newHalfPixelAxis(nOut, nIn int, f float64, stride int) halfPixelAxis {
	t := halfPixelAxis{i0: make([]int, nOut), i1: make([]int, nOut),
		w0: make([]float64, nOut), w1: make([]float64, nOut)}
	scale := float32(1 / f)
	for o := range nOut {
		x := max(float32(scale*(float32(o)+0.5))-0.5, 0)
		i := min(int(x), nIn-1)
		l1 := x - float32(i)
		t.i0[o] = i * stride
		t.i1[o] = min(i+1, nIn-1) * stride
		t.w0[o], t.w1[o] = float64(1-l1), float64(l1)
	}
	return t
}

// ResampleLabelsOneHot resamples the label map src (non-negative integers) into dst as the
// reference does: each label's indicator is interpolated trilinearly on torch's half-pixel
// grid for scale factors f (output o samples input max((o+0.5)/f - 0.5, 0), clamped), and
// each output voxel takes the label of largest weight, the smallest label on a tie. dstShape
// must be ScaleShape(srcShape, f). Only the labels of a voxel's eight neighbours compete, so
// nothing proportional to the number of labels is allocated. Torch sums the weights in
// float32 and breaks exact ties by float rounding; here they are summed in float64, so the
// two can differ where two labels' weights are equal in exact arithmetic (for instance
// halfway between two labels along one axis with a half-and-half split along another).
// Values that are not non-negative integers are refused.
func ResampleLabelsOneHot(dst []float32, dstShape [3]int, src []float32, srcShape [3]int,
	f [3]float64) error {
	want, err := ScaleShape(srcShape, f)
	if err != nil {
		return err
	}
	if err := checkOutput(dst, dstShape, want, src, srcShape,
		fmt.Sprintf("factors %v", f)); err != nil {
		return err
	}
	if i := firstNonLabel(src); i >= 0 {
		return fmt.Errorf("%w: label voxel %d holds %v, not a non-negative integer",
			errResample, i, src[i])
	}
	nx, ny := srcShape[0], srcShape[1]
	ox, oy, oz := dstShape[0], dstShape[1], dstShape[2]
	ti := newHalfPixelAxis(ox, nx, f[0], 1)
	tj := newHalfPixelAxis(oy, ny, f[1], nx)
	tk := newHalfPixelAxis(oz, srcShape[2], f[2], nx*ny)
	ParallelFor(oz, 1, func(lo, hi int) {
		var labels [8]float32
		var weights [8]float64
		for ok := lo; ok < hi; ok++ {
			for oj := range oy {
				row := dst[(ok*oy+oj)*ox : (ok*oy+oj+1)*ox]
				k0, k1, j0, j1 := tk.i0[ok], tk.i1[ok], tj.i0[oj], tj.i1[oj]
				for oi := range row {
					// Inside a structure all eight neighbours agree: nothing to weigh.
					i0, i1 := ti.i0[oi], ti.i1[oi]
					if l := src[k0+j0+i0]; l == src[k0+j0+i1] && l == src[k0+j1+i0] &&
						l == src[k0+j1+i1] && l == src[k1+j0+i0] && l == src[k1+j0+i1] &&
						l == src[k1+j1+i0] && l == src[k1+j1+i1] {
						row[oi] = l
						continue
					}
					n := 0
					for c := range 8 {
						k, wk := tk.i0[ok], tk.w0[ok]
						if c&4 != 0 {
							k, wk = tk.i1[ok], tk.w1[ok]
						}
						j, wj := tj.i0[oj], tj.w0[oj]
						if c&2 != 0 {
							j, wj = tj.i1[oj], tj.w1[oj]
						}
						i, wi := ti.i0[oi], ti.w0[oi]
						if c&1 != 0 {
							i, wi = ti.i1[oi], ti.w1[oi]
						}
						l, w := src[k+j+i], wk*wj*wi
						s := 0
						for s < n && labels[s] != l {
							s++
						}
						if s == n {
							labels[n], weights[n] = l, 0
							n++
						}
						weights[s] += w
					}
					best := 0
					for s := 1; s < n; s++ {
						if weights[s] > weights[best] ||
							(weights[s] == weights[best] && labels[s] < labels[best]) {
							best = s
						}
					}
					row[oi] = labels[best]
				}
			}
		}
	})
	return nil
}
