package volume

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Canonical is the orientation the MedLAM localiser works in (method.md section 1): voxel
// axis i grows towards the subject's Left, j towards Anterior, k towards Superior. Read as a
// C-order (z, y, x) array, that is Data[k][j][i]: array axis 0 (z) runs from inferior to
// superior, axis 1 (y) from posterior to anterior and axis 2 (x) from the subject's right to
// the subject's left. The reference reaches it with nibabel's as_reoriented and then
// transposes the array to (z, y, x).
const Canonical = "LAS"

// World axes of the RAS+ frame, as numbered in Direction.World.
const (
	WorldX = 0 // right (+) / left (-)
	WorldY = 1 // anterior (+) / posterior (-)
	WorldZ = 2 // superior (+) / inferior (-)
)

// axisLetters holds, per world axis, the letter of its negative and positive end.
var axisLetters = [3][2]byte{{'L', 'R'}, {'P', 'A'}, {'I', 'S'}}

// Direction is where one voxel axis points in the world: along world axis World (WorldX,
// WorldY, WorldZ) with Sign +1 (towards R, A or S) or -1 (towards L, P or I). World is -1 for
// an axis whose direction cannot be told (a degenerate affine).
type Direction struct {
	World int
	Sign  int
}

// Letter returns the orientation letter of d ('R', 'L', 'A', 'P', 'S', 'I'), or '?' when d
// is undefined.
func (d Direction) Letter() byte {
	if d.World < 0 || d.World > 2 || (d.Sign != 1 && d.Sign != -1) {
		return '?'
	}
	if d.Sign > 0 {
		return axisLetters[d.World][1]
	}
	return axisLetters[d.World][0]
}

// Orientation holds the Direction of voxel axes i, j and k. A valid Orientation names every
// world axis exactly once.
type Orientation [3]Direction

// String returns the three-letter code, such as "RAS"; undefined axes print as '?'.
func (o Orientation) String() string {
	return string([]byte{o[0].Letter(), o[1].Letter(), o[2].Letter()})
}

// Valid reports whether o names each world axis once with a sign of +1 or -1.
func (o Orientation) Valid() bool {
	var seen [3]bool
	for _, d := range o {
		if d.Letter() == '?' || seen[d.World] {
			return false
		}
		seen[d.World] = true
	}
	return true
}

// ParseOrientation parses a three-letter code such as "RAS", "LPS" or "SAR" (either case).
// It refuses other lengths, unknown letters and codes that name a world axis twice.
func ParseOrientation(code string) (Orientation, error) {
	var o Orientation
	if len(code) != 3 {
		return o, fmt.Errorf("%w %q: want three letters from RLAPSI", ErrOrientation, code)
	}
	up := strings.ToUpper(code)
	var seen [3]bool
	for n := 0; n < 3; n++ {
		d := Direction{World: -1}
		for w, pair := range axisLetters {
			switch up[n] {
			case pair[0]:
				d = Direction{World: w, Sign: -1}
			case pair[1]:
				d = Direction{World: w, Sign: 1}
			}
		}
		if d.World < 0 {
			return o, fmt.Errorf("%w %q: letter %q is not one of RLAPSI",
				ErrOrientation, code, up[n])
		}
		if seen[d.World] {
			return o, fmt.Errorf("%w %q: world axis %c%c named twice", ErrOrientation,
				code, axisLetters[d.World][0], axisLetters[d.World][1])
		}
		seen[d.World] = true
		o[n] = d
	}
	return o, nil
}

// ErrOrientation reports an orientation code or an affine whose orientation cannot be used.
var ErrOrientation = errors.New("volume: bad orientation")

// OrientationOf returns the orientation code of affine a as nibabel's aff2axcodes computes
// it, for example "RAS" or "LPS". Axes whose direction is undefined (a zero or degenerate
// column, or non-finite entries) print as '?'; use AffineOrientation to get an error instead.
func OrientationOf(a Affine) string { return orientationOf(a).String() }

// AffineOrientation returns the orientation of affine a (see OrientationOf), or an error
// when a does not define one: non-finite entries or a rank-deficient 3x3 part.
func AffineOrientation(a Affine) (Orientation, error) {
	o := orientationOf(a)
	if !o.Valid() {
		return o, fmt.Errorf("%w: affine %v has no defined orientation (got %q)",
			ErrOrientation, a, o.String())
	}
	return o, nil
}

// orientationOf follows nibabel's io_orientation: normalise the columns of the 3x3 part,
// take the orthogonal factor of its polar decomposition (from the SVD, dropping singular
// values at or below max*3*eps), then give each voxel axis in turn the world axis where its
// column has the largest magnitude (first one on ties), removing that world axis from the
// later choices. This makes oblique and sheared affines resolve as nibabel resolves them.
func orientationOf(a Affine) Orientation {
	undefined := Orientation{{-1, 0}, {-1, 0}, {-1, 0}}
	var m [3][3]float64
	for c := 0; c < 3; c++ {
		var norm float64
		for r := 0; r < 3; r++ {
			if math.IsNaN(a[r][c]) || math.IsInf(a[r][c], 0) {
				return undefined
			}
			norm += a[r][c] * a[r][c]
		}
		norm = math.Sqrt(norm)
		if norm == 0 {
			norm = 1
		}
		for r := 0; r < 3; r++ {
			m[r][c] = a[r][c] / norm
		}
	}
	rot := polarFactor(m)
	var o Orientation
	for c := 0; c < 3; c++ {
		o[c] = Direction{World: -1}
		if allNearZero(rot, c) {
			continue
		}
		best := 0
		for r := 1; r < 3; r++ {
			if math.Abs(rot[r][c]) > math.Abs(rot[best][c]) {
				best = r
			}
		}
		o[c] = Direction{World: best, Sign: 1}
		if rot[best][c] < 0 {
			o[c].Sign = -1
		}
		for cc := 0; cc < 3; cc++ {
			rot[best][cc] = 0
		}
	}
	return o
}

// allNearZero mirrors numpy.allclose(column, 0) with its default absolute tolerance.
func allNearZero(m [3][3]float64, c int) bool {
	for r := 0; r < 3; r++ {
		if math.Abs(m[r][c]) > 1e-8 {
			return false
		}
	}
	return true
}

// polarFactor returns U·Vᵀ summed over the singular triplets of m whose singular value
// exceeds max(S)*3*eps, the orthogonal (or partial isometry) factor nibabel uses. The SVD is
// a one-sided Jacobi iteration, accurate to a few ulps for 3x3 matrices.
func polarFactor(m [3][3]float64) [3][3]float64 {
	w := m // columns are rotated towards U·S
	v := [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
	const eps = 0x1p-52
	for sweep := 0; sweep < 60; sweep++ {
		rotated := false
		for p := 0; p < 2; p++ {
			for q := p + 1; q < 3; q++ {
				var alpha, beta, gamma float64
				for r := 0; r < 3; r++ {
					alpha += w[r][p] * w[r][p]
					beta += w[r][q] * w[r][q]
					gamma += w[r][p] * w[r][q]
				}
				if gamma == 0 || math.Abs(gamma) <= eps*math.Sqrt(alpha*beta) {
					continue
				}
				rotated = true
				zeta := (beta - alpha) / (2 * gamma)
				t := 1 / (math.Abs(zeta) + math.Sqrt(1+zeta*zeta))
				if zeta < 0 {
					t = -t
				}
				c := 1 / math.Sqrt(1+t*t)
				s := c * t
				for r := 0; r < 3; r++ {
					wp, wq := w[r][p], w[r][q]
					w[r][p], w[r][q] = c*wp-s*wq, s*wp+c*wq
					vp, vq := v[r][p], v[r][q]
					v[r][p], v[r][q] = c*vp-s*vq, s*vp+c*vq
				}
			}
		}
		if !rotated {
			break
		}
	}
	var sigma [3]float64
	var smax float64
	for c := 0; c < 3; c++ {
		sigma[c] = math.Sqrt(w[0][c]*w[0][c] + w[1][c]*w[1][c] + w[2][c]*w[2][c])
		smax = math.Max(smax, sigma[c])
	}
	tol := smax * 3 * eps
	var out [3][3]float64
	for k := 0; k < 3; k++ {
		if !(sigma[k] > tol) {
			continue
		}
		for r := 0; r < 3; r++ {
			u := w[r][k] / sigma[k]
			for c := 0; c < 3; c++ {
				out[r][c] += u * v[c][k]
			}
		}
	}
	return out
}

// Reorientation records how a reoriented grid relates to its source grid: reoriented voxel
// axis n is source axis Perm[n], running the other way when Flip[n]. It maps voxel indices
// both ways and undoes the reorientation of volumes. A Reorientation is immutable after
// Reorient returns it and safe for concurrent use.
type Reorientation struct {
	// From and To are the source and target orientations.
	From, To Orientation
	// Perm[n] is the source axis that reoriented axis n runs along.
	Perm [3]int
	// Flip[n] tells whether reoriented axis n runs opposite to source axis Perm[n].
	Flip [3]bool
	// SrcShape and DstShape are the grid shapes before and after; DstShape[n] is
	// SrcShape[Perm[n]].
	SrcShape, DstShape [3]int
	// SrcSpacing and SrcAffine are the source geometry, restored exactly by Undo.
	SrcSpacing [3]float64
	SrcAffine  Affine
}

// Reorient returns a copy of v whose voxel axes follow the orientation code target (such as
// Canonical), together with the Reorientation that maps between the two grids. Only axis
// permutations and flips are applied, so no voxel value changes; each voxel keeps its world
// coordinate (the returned Affine is v.Affine composed with the index map) and Spacing is
// permuted with the axes. For an oblique affine the axes are matched as nibabel's
// io_orientation matches them. The result never aliases v.Data.
func (v *Volume) Reorient(target string) (*Volume, *Reorientation, error) {
	if v == nil {
		return nil, nil, errors.New("volume: reorient: nil volume")
	}
	if err := v.Validate(); err != nil {
		return nil, nil, err
	}
	r, err := PlanReorientation(v.Shape, v.Spacing, v.Affine, target)
	if err != nil {
		return nil, nil, err
	}
	out, err := r.Apply(v)
	if err != nil {
		return nil, nil, err
	}
	return out, r, nil
}

// PlanReorientation returns the Reorientation that Reorient would apply to a volume of this
// geometry, without touching voxels: for callers whose voxels live elsewhere (a GPU).
func PlanReorientation(shape [3]int, spacing [3]float64, affine Affine,
	target string) (*Reorientation, error) {
	to, err := ParseOrientation(target)
	if err != nil {
		return nil, err
	}
	from := orientationOf(affine)
	if !from.Valid() {
		return nil, fmt.Errorf("%w: affine %v gives %q", ErrOrientation, affine,
			from.String())
	}
	r := &Reorientation{From: from, To: to, SrcShape: shape, SrcSpacing: spacing,
		SrcAffine: affine}
	for n := 0; n < 3; n++ {
		for m := 0; m < 3; m++ {
			if from[m].World == to[n].World {
				r.Perm[n] = m
				r.Flip[n] = from[m].Sign != to[n].Sign
			}
		}
		r.DstShape[n] = shape[r.Perm[n]]
	}
	return r, nil
}

// IndexTransform returns the affine that maps a voxel index of the reoriented grid to the
// voxel index of the source grid; the reoriented affine is SrcAffine·IndexTransform().
func (r *Reorientation) IndexTransform() Affine {
	var t Affine
	t[3][3] = 1
	for n := 0; n < 3; n++ {
		m := r.Perm[n]
		if r.Flip[n] {
			t[m][n] = -1
			t[m][3] = float64(r.SrcShape[m] - 1)
		} else {
			t[m][n] = 1
		}
	}
	return t
}

// ToSource maps integer voxel index q of the reoriented grid to the source grid.
func (r *Reorientation) ToSource(q [3]int) [3]int { return toSource(r, q) }

// FromSource maps integer voxel index p of the source grid to the reoriented grid.
func (r *Reorientation) FromSource(p [3]int) [3]int { return fromSource(r, p) }

// ToSourceF maps a fractional voxel coordinate of the reoriented grid to the source grid
// (voxel centres at integer coordinates, so a flip maps x to size-1-x).
func (r *Reorientation) ToSourceF(q [3]float64) [3]float64 { return toSource(r, q) }

// FromSourceF maps a fractional voxel coordinate of the source grid to the reoriented grid.
func (r *Reorientation) FromSourceF(p [3]float64) [3]float64 { return fromSource(r, p) }

func toSource[T int | float64](r *Reorientation, q [3]T) [3]T {
	var p [3]T
	for n, m := range r.Perm {
		p[m] = q[n]
		if r.Flip[n] {
			p[m] = T(r.SrcShape[m]-1) - q[n]
		}
	}
	return p
}

func fromSource[T int | float64](r *Reorientation, p [3]T) [3]T {
	var q [3]T
	for n, m := range r.Perm {
		q[n] = p[m]
		if r.Flip[n] {
			q[n] = T(r.SrcShape[m]-1) - p[m]
		}
	}
	return q
}

// BoxToSource maps the axis-aligned box [lo, hi] (inclusive, voxel order i, j, k) of the
// reoriented grid to the source grid; the result again has lo <= hi on every axis.
func (r *Reorientation) BoxToSource(lo, hi [3]int) (srcLo, srcHi [3]int) {
	return sortBox(r.ToSource(lo), r.ToSource(hi))
}

// BoxFromSource maps the inclusive box [lo, hi] of the source grid to the reoriented grid.
func (r *Reorientation) BoxFromSource(lo, hi [3]int) (dstLo, dstHi [3]int) {
	return sortBox(r.FromSource(lo), r.FromSource(hi))
}

func sortBox(a, b [3]int) (lo, hi [3]int) {
	for n := 0; n < 3; n++ {
		lo[n], hi[n] = min(a[n], b[n]), max(a[n], b[n])
	}
	return lo, hi
}

// Apply reorients another volume on the source grid (a label map of the same image, say)
// the way Reorient reoriented the original: the result has DstShape, v's spacing permuted and
// v's affine composed with IndexTransform. It never aliases v.Data.
func (r *Reorientation) Apply(v *Volume) (*Volume, error) {
	if v == nil {
		return nil, errors.New("volume: reorient: nil volume")
	}
	if err := v.Validate(); err != nil {
		return nil, err
	}
	if v.Shape != r.SrcShape {
		return nil, fmt.Errorf("volume: reorient: shape %v is not the source shape %v",
			v.Shape, r.SrcShape)
	}
	out := &Volume{Shape: r.DstShape, Affine: v.Affine.Mul(r.IndexTransform())}
	for n := 0; n < 3; n++ {
		out.Spacing[n] = v.Spacing[r.Perm[n]]
	}
	out.Data = permute(v.Data, v.Shape, r.Perm, r.Flip)
	return out, nil
}

// Undo brings v, a volume on the reoriented grid (shape DstShape), back to the source grid:
// every voxel returns to where it came from, bit for bit, and the result carries the source
// geometry recorded by Reorient (SrcSpacing, SrcAffine) so that it overlays the source image
// exactly; v's own affine and spacing are not consulted. It never aliases v.Data.
func (r *Reorientation) Undo(v *Volume) (*Volume, error) {
	if v == nil {
		return nil, errors.New("volume: undo reorientation: nil volume")
	}
	if err := v.Validate(); err != nil {
		return nil, err
	}
	if v.Shape != r.DstShape {
		return nil, fmt.Errorf("volume: undo reorientation: shape %v is not the reoriented "+
			"shape %v", v.Shape, r.DstShape)
	}
	var inv [3]int
	var flip [3]bool
	for n := 0; n < 3; n++ {
		inv[r.Perm[n]] = n
		flip[r.Perm[n]] = r.Flip[n]
	}
	data := permute(v.Data, v.Shape, inv, flip)
	return &Volume{Data: data, Shape: r.SrcShape, Spacing: r.SrcSpacing, Affine: r.SrcAffine},
		nil
}

// permute returns a new array in which output axis n is input axis perm[n], reversed when
// flip[n]. Slabs of the slowest output axis are filled on kernels.ParallelFor workers for
// large volumes.
func permute(src []float32, shape [3]int, perm [3]int, flip [3]bool) []float32 {
	inStride := [3]int{1, shape[0], shape[0] * shape[1]}
	var outShape [3]int
	var stride [3]int
	base := 0
	for n := 0; n < 3; n++ {
		m := perm[n]
		outShape[n] = shape[m]
		stride[n] = inStride[m]
		if flip[n] {
			base += (shape[m] - 1) * inStride[m]
			stride[n] = -stride[n]
		}
	}
	dst := make([]float32, len(src))
	fill := func(k0, k1 int) {
		o := k0 * outShape[0] * outShape[1]
		for k := k0; k < k1; k++ {
			for j := 0; j < outShape[1]; j++ {
				s := base + k*stride[2] + j*stride[1]
				row := dst[o : o+outShape[0]]
				if stride[0] == 1 {
					copy(row, src[s:s+outShape[0]])
				} else {
					for i := range row {
						row[i] = src[s]
						s += stride[0]
					}
				}
				o += outShape[0]
			}
		}
	}
	if len(src) < 1<<20 {
		fill(0, outShape[2])
		return dst
	}
	kernels.ParallelFor(outShape[2], 1, fill)
	return dst
}
