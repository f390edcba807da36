package nifti

import (
	"fmt"
	"math"
	"math/big"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// validXform reports whether c is a transform code nibabel accepts; nibabel resets any
// other code to 0 on load, and Read does the same.
func validXform(c int32) bool { return c >= 0 && c <= 5 }

// BestAffine returns the voxel-to-world affine nibabel's get_best_affine returns for h:
// the sform when sform_code > 0, else the qform when qform_code > 0, else the fallback
// built from the shape and pixdim (see BaseAffine). Unlike nibabel it refuses, with an
// error naming the field, a chosen sform or qform that holds a NaN or an infinity, and a
// quaternion that is not a unit quaternion.
func (h *Header) BestAffine() (volume.Affine, error) {
	if h.SformCode > 0 {
		for r, row := range [3]*[4]float64{&h.SrowX, &h.SrowY, &h.SrowZ} {
			for c, x := range row {
				if math.IsNaN(x) || math.IsInf(x, 0) {
					return volume.Affine{}, fmt.Errorf("srow_%c[%d] = %v: the sform "+
						"(sform_code = %d) must be finite", "xyz"[r], c, x, h.SformCode)
				}
			}
		}
		return h.SformAffine(), nil
	}
	if h.QformCode > 0 {
		return h.QformAffine()
	}
	return h.BaseAffine(), nil
}

// SformAffine returns the affine stored in srow_x, srow_y and srow_z, whatever sform_code.
func (h *Header) SformAffine() volume.Affine {
	return volume.Affine{h.SrowX, h.SrowY, h.SrowZ, {0, 0, 0, 1}}
}

// BaseAffine returns nibabel's fallback affine (shape_zoom_affine with the x axis flipped):
// diagonal (-pixdim[1], pixdim[2], pixdim[3]) with the centre voxel at the origin.
func (h *Header) BaseAffine() volume.Affine {
	shape := [3]float64{1, 1, 1}
	zoom := [3]float64{1, 1, 1}
	if h.Dim[0] >= 3 {
		for a := 0; a < 3; a++ {
			shape[a], zoom[a] = float64(h.Dim[a+1]), h.Pixdim[a+1]
		}
	} else {
		for a := 0; int64(a) < h.Dim[0]; a++ {
			shape[a], zoom[a] = float64(h.Dim[a+1]), h.Pixdim[a+1]
		}
	}
	zoom[0] = -zoom[0]
	aff := volume.Identity()
	for a := 0; a < 3; a++ {
		aff[a][a] = zoom[a]
		aff[a][3] = -((shape[a] - 1) / 2) * zoom[a]
	}
	return aff
}

// QformAffine returns the affine encoded by the quaternion, pixdim, qfac and qoffset fields,
// whatever qform_code, or an error when quatern_b/c/d, qoffset_x/y/z or pixdim[1..3] are
// not finite or b²+c²+d² exceeds 1. It reproduces nibabel bit for bit: nibabel computes the
// rotation in x87 extended precision (numpy longdouble, 64-bit mantissa) and rounds the
// result to float64, so the arithmetic here runs in big.Float with 64 bits of mantissa, in
// nibabel's order of operations.
func (h *Header) QformAffine() (volume.Affine, error) {
	// nibabel's quaternion_threshold: -3 eps of the header's float type.
	thresh := -3 * 0x1p-23
	if h.Version == 2 {
		thresh = -3 * 0x1p-52
	}
	for _, q := range []struct {
		name string
		v    float64
	}{{"quatern_b", h.QuaternB}, {"quatern_c", h.QuaternC}, {"quatern_d", h.QuaternD},
		{"qoffset_x", h.QoffsetX}, {"qoffset_y", h.QoffsetY}, {"qoffset_z", h.QoffsetZ},
		{"pixdim[1]", h.Pixdim[1]}, {"pixdim[2]", h.Pixdim[2]}, {"pixdim[3]", h.Pixdim[3]}} {
		if math.IsNaN(q.v) || math.IsInf(q.v, 0) {
			return volume.Affine{}, fmt.Errorf("%s = %v: the qform must be finite", q.name, q.v)
		}
	}
	x, y, z := ext(h.QuaternB), ext(h.QuaternC), ext(h.QuaternD)
	// fillpositive: w2 = 1 - ((0 + x*x) + y*y) + z*z), w = sqrt(w2) or 0 just below zero.
	dot := xadd(xadd(xadd(ext(0), xmul(x, x)), xmul(y, y)), xmul(z, z))
	w2 := xsub(ext(1), dot)
	w := ext(0)
	if w2.Sign() < 0 {
		if w2.Cmp(ext(thresh)) < 0 {
			return volume.Affine{}, fmt.Errorf("quatern_b/c/d = (%v, %v, %v): not a unit "+
				"quaternion (b²+c²+d² > 1)", h.QuaternB, h.QuaternC, h.QuaternD)
		}
	} else {
		w = new(big.Float).SetPrec(64).Sqrt(w2)
	}
	// quat2mat.
	var r [3][3]*big.Float
	nq := xadd(xadd(xadd(xmul(w, w), xmul(x, x)), xmul(y, y)), xmul(z, z))
	if nq.Cmp(ext(0x1p-52)) < 0 {
		for i := 0; i < 3; i++ {
			for j := 0; j < 3; j++ {
				r[i][j] = ext(0)
			}
			r[i][i] = ext(1)
		}
	} else {
		s := new(big.Float).SetPrec(64).Quo(ext(2), nq)
		bx, by, bz := xmul(x, s), xmul(y, s), xmul(z, s)
		wx, wy, wz := xmul(w, bx), xmul(w, by), xmul(w, bz)
		xx, xy, xz := xmul(x, bx), xmul(x, by), xmul(x, bz)
		yy, yz, zz := xmul(y, by), xmul(y, bz), xmul(z, bz)
		one := ext(1)
		r = [3][3]*big.Float{
			{xsub(one, xadd(yy, zz)), xsub(xy, wz), xadd(xz, wy)},
			{xadd(xy, wz), xsub(one, xadd(xx, zz)), xsub(yz, wx)},
			{xsub(xz, wy), xadd(yz, wx), xsub(one, xadd(xx, yy))},
		}
	}
	qfac := h.Pixdim[0]
	if qfac != -1 {
		qfac = 1 // nibabel resets any qfac other than -1 or 1 to 1.
	}
	vox := [3]float64{h.Pixdim[1], h.Pixdim[2], h.Pixdim[3] * qfac}
	aff := volume.Identity()
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			// np.dot(R, diag(vox)) accumulates from +0 over all three terms.
			acc := ext(0)
			for k := 0; k < 3; k++ {
				d := 0.0
				if k == j {
					d = vox[j]
				}
				acc = xadd(acc, xmul(r[i][k], ext(d)))
			}
			aff[i][j], _ = acc.Float64()
		}
	}
	aff[0][3], aff[1][3], aff[2][3] = h.QoffsetX, h.QoffsetY, h.QoffsetZ
	return aff, nil
}

// ext, xadd, xsub and xmul are numpy longdouble (x87, 64-bit mantissa) arithmetic.
func ext(v float64) *big.Float { return new(big.Float).SetPrec(64).SetFloat64(v) }

func xadd(a, b *big.Float) *big.Float { return new(big.Float).SetPrec(64).Add(a, b) }

func xsub(a, b *big.Float) *big.Float { return new(big.Float).SetPrec(64).Sub(a, b) }

func xmul(a, b *big.Float) *big.Float { return new(big.Float).SetPrec(64).Mul(a, b) }

// setQform fills the qform fields of h from affine a as nibabel's set_qform does: column
// norms become pixdim[1..3], the sign of the determinant becomes qfac, shears are dropped
// (the closest rotation is kept) and the rotation is stored as a quaternion with w >= 0.
// Values are rounded to float32 when h is written as NIfTI-1.
func (h *Header) setQform(a volume.Affine, code int32) error {
	var rzs [3][3]float64
	var zoom [3]float64
	for j := 0; j < 3; j++ {
		for i := 0; i < 3; i++ {
			rzs[i][j] = a[i][j]
			zoom[j] += a[i][j] * a[i][j]
		}
		zoom[j] = math.Sqrt(zoom[j])
		if !(zoom[j] > 0) || math.IsInf(zoom[j], 0) {
			return fmt.Errorf("affine column %d has zero or non-finite length", j)
		}
	}
	var r [3][3]float64
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			r[i][j] = rzs[i][j] / zoom[j]
		}
	}
	qfac := 1.0
	if det3(r) < 0 {
		qfac = -1
		for i := 0; i < 3; i++ {
			r[i][2] = -r[i][2]
		}
	}
	p, ok := polarRotation(r)
	if !ok {
		return fmt.Errorf("affine is singular; no qform can represent it")
	}
	b, c, d := rotationQuaternion(p)
	h.QformCode = code
	h.QuaternB, h.QuaternC, h.QuaternD = b, c, d
	h.QoffsetX, h.QoffsetY, h.QoffsetZ = a[0][3], a[1][3], a[2][3]
	h.Pixdim[0] = qfac
	h.Pixdim[1], h.Pixdim[2], h.Pixdim[3] = zoom[0], zoom[1], zoom[2]
	return nil
}

func det3(m [3][3]float64) float64 {
	return m[0][0]*(m[1][1]*m[2][2]-m[1][2]*m[2][1]) -
		m[0][1]*(m[1][0]*m[2][2]-m[1][2]*m[2][0]) +
		m[0][2]*(m[1][0]*m[2][1]-m[1][1]*m[2][0])
}

// polarRotation returns the orthogonal factor of the polar decomposition of m (the
// rotation closest to m) by Newton's iteration X <- (X + X^-T)/2.
func polarRotation(m [3][3]float64) ([3][3]float64, bool) {
	x := m
	for it := 0; it < 100; it++ {
		d := det3(x)
		if math.Abs(d) < 1e-12 || math.IsNaN(d) {
			return x, false
		}
		// Inverse transpose = cofactor matrix / det.
		var next [3][3]float64
		diff := 0.0
		for i := 0; i < 3; i++ {
			for j := 0; j < 3; j++ {
				i1, i2 := (i+1)%3, (i+2)%3
				j1, j2 := (j+1)%3, (j+2)%3
				cof := x[i1][j1]*x[i2][j2] - x[i1][j2]*x[i2][j1]
				next[i][j] = (x[i][j] + cof/d) / 2
				diff = math.Max(diff, math.Abs(next[i][j]-x[i][j]))
			}
		}
		x = next
		if diff < 1e-15 {
			break
		}
	}
	return x, true
}

// rotationQuaternion returns (b, c, d) of the unit quaternion (w >= 0) of rotation r,
// by Shepperd's method (the largest of w, b, c, d is computed from the diagonal).
func rotationQuaternion(r [3][3]float64) (b, c, d float64) {
	tr := r[0][0] + r[1][1] + r[2][2]
	var w float64
	switch {
	case tr > 0:
		s := 2 * math.Sqrt(1+tr)
		w = s / 4
		b, c, d = (r[2][1]-r[1][2])/s, (r[0][2]-r[2][0])/s, (r[1][0]-r[0][1])/s
	case r[0][0] >= r[1][1] && r[0][0] >= r[2][2]:
		s := 2 * math.Sqrt(1+r[0][0]-r[1][1]-r[2][2])
		b = s / 4
		w, c, d = (r[2][1]-r[1][2])/s, (r[0][1]+r[1][0])/s, (r[0][2]+r[2][0])/s
	case r[1][1] >= r[2][2]:
		s := 2 * math.Sqrt(1+r[1][1]-r[0][0]-r[2][2])
		c = s / 4
		w, b, d = (r[0][2]-r[2][0])/s, (r[0][1]+r[1][0])/s, (r[1][2]+r[2][1])/s
	default:
		s := 2 * math.Sqrt(1+r[2][2]-r[0][0]-r[1][1])
		d = s / 4
		w, b, c = (r[1][0]-r[0][1])/s, (r[0][2]+r[2][0])/s, (r[1][2]+r[2][1])/s
	}
	if w < 0 {
		b, c, d = -b, -c, -d
	}
	return b, c, d
}

// shrinkQuaternion32 rounds (b, c, d) to float32 and, where rounding pushed b²+c²+d²
// above 1 (which nibabel would reject), moves the components towards zero one float32
// step at a time until the implied w² is not negative.
func shrinkQuaternion32(b, c, d float64) (float64, float64, float64) {
	q := [3]float32{float32(b), float32(c), float32(d)}
	for it := 0; it < 8; it++ {
		x, y, z := ext(float64(q[0])), ext(float64(q[1])), ext(float64(q[2]))
		dot := xadd(xadd(xadd(ext(0), xmul(x, x)), xmul(y, y)), xmul(z, z))
		if dot.Cmp(ext(1)) <= 0 {
			break
		}
		for i := range q {
			if q[i] != 0 {
				q[i] = math.Nextafter32(q[i], 0)
			}
		}
	}
	return float64(q[0]), float64(q[1]), float64(q[2])
}
