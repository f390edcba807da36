package volume

import (
	"errors"
	"fmt"
	"math"
)

// Volume is a 3D scalar image. A Volume owns Data; methods that return a new Volume never
// alias the receiver's Data unless their doc comment says so. A Volume is not safe for
// concurrent mutation.
type Volume struct {
	// Data holds NX*NY*NZ voxels, i fastest (see the package comment).
	Data []float32
	// Shape is [NX, NY, NZ].
	Shape [3]int
	// Spacing is the voxel size in millimetres along i, j, k; always positive.
	Spacing [3]float64
	// Affine maps voxel indices (i, j, k, 1) to world millimetres (RAS+).
	Affine Affine
}

// Affine is a 4x4 row-major homogeneous transform.
type Affine [4][4]float64

// Identity returns the identity transform.
func Identity() Affine {
	return Affine{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}
}

// New allocates a zeroed volume of the given shape with the given spacing and an affine that
// is diagonal in the spacing (RAS, origin at voxel 0). It refuses non-positive sizes and
// spacings.
func New(shape [3]int, spacing [3]float64) (*Volume, error) {
	n, err := NumVoxels(shape)
	if err != nil {
		return nil, err
	}
	for a, s := range spacing {
		if !(s > 0) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("volume: spacing[%d] = %v must be positive and finite", a, s)
		}
	}
	aff := Identity()
	for a := 0; a < 3; a++ {
		aff[a][a] = spacing[a]
	}
	return &Volume{Data: make([]float32, n), Shape: shape, Spacing: spacing, Affine: aff}, nil
}

// ErrShape reports a shape that is non-positive or whose voxel count overflows int.
var ErrShape = errors.New("volume: invalid shape")

// NumVoxels returns NX*NY*NZ, or ErrShape when a size is not positive or the product
// overflows.
func NumVoxels(shape [3]int) (int, error) {
	n := 1
	for a, s := range shape {
		if s <= 0 {
			return 0, fmt.Errorf("%w: shape[%d] = %d", ErrShape, a, s)
		}
		if n > math.MaxInt/s {
			return 0, fmt.Errorf("%w: %v overflows", ErrShape, shape)
		}
		n *= s
	}
	return n, nil
}

// Len returns the number of voxels.
func (v *Volume) Len() int { return v.Shape[0] * v.Shape[1] * v.Shape[2] }

// Index returns the offset of voxel (i, j, k) in Data. It does not check bounds.
func (v *Volume) Index(i, j, k int) int { return i + v.Shape[0]*(j+v.Shape[1]*k) }

// At returns voxel (i, j, k). It panics when out of bounds, as a slice index does.
func (v *Volume) At(i, j, k int) float32 { return v.Data[v.Index(i, j, k)] }

// Validate checks that Data's length matches Shape and that Spacing is positive and finite.
func (v *Volume) Validate() error {
	n, err := NumVoxels(v.Shape)
	if err != nil {
		return err
	}
	if len(v.Data) != n {
		return fmt.Errorf("volume: %d voxels for shape %v (want %d)", len(v.Data), v.Shape, n)
	}
	for a, s := range v.Spacing {
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("volume: spacing[%d] = %v must be positive and finite", a, s)
		}
	}
	return nil
}

// Clone returns a deep copy.
func (v *Volume) Clone() *Volume {
	c := *v
	c.Data = append([]float32(nil), v.Data...)
	return &c
}

// Apply maps a voxel coordinate (fractional allowed) to world millimetres.
func (a Affine) Apply(p [3]float64) [3]float64 {
	var w [3]float64
	for r := 0; r < 3; r++ {
		w[r] = a[r][0]*p[0] + a[r][1]*p[1] + a[r][2]*p[2] + a[r][3]
	}
	return w
}

// Mul returns a·b.
func (a Affine) Mul(b Affine) Affine {
	var c Affine
	for r := 0; r < 4; r++ {
		for col := 0; col < 4; col++ {
			var s float64
			for k := 0; k < 4; k++ {
				s += a[r][k] * b[k][col]
			}
			c[r][col] = s
		}
	}
	return c
}

// Near reports whether every entry of a and b agrees within tol, relative to the entry's
// magnitude when that exceeds 1. Affines read from NIfTI-1 files are float32, so an image and
// the label map saved beside it may differ in the last bits: compare them with a tolerance
// such as 1e-3 mm, not with ==.
func (a Affine) Near(b Affine, tol float64) bool {
	for r := 0; r < 4; r++ {
		for c := 0; c < 4; c++ {
			if math.Abs(a[r][c]-b[r][c]) > tol*max(1, math.Abs(a[r][c])) {
				return false
			}
		}
	}
	return true
}
