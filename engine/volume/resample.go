package volume

import (
	"fmt"
	"math"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Interp selects how Resample interpolates.
type Interp int

const (
	// Linear is trilinear interpolation, for images.
	Linear Interp = iota
	// Nearest is nearest-neighbour selection, for label maps: it keeps only existing labels.
	Nearest
)

// String names the mode for logs and errors.
func (m Interp) String() string {
	switch m {
	case Linear:
		return "linear"
	case Nearest:
		return "nearest"
	}
	return fmt.Sprintf("Interp(%d)", int(m))
}

// MaxResampleVoxels caps the output of Resample (2^30 voxels, 4 GiB of float32), so that a
// tiny target spacing is refused instead of exhausting memory.
const MaxResampleVoxels = 1 << 30

// Resample returns a new volume with the given voxel spacing (mm along i, j, k), sampled
// from v with the kernels package's grid convention: voxel centre 0 stays where it is,
// output voxel o samples input index o*spacing/v.Spacing on each axis, the grid stops at or
// before the last input voxel (nothing is extrapolated), and the affine becomes
// v.Affine * diag(r_i, r_j, r_k, 1) with r = spacing/v.Spacing, so every output voxel keeps
// its world position. mode is Linear for images and Nearest for label maps. The receiver is
// not modified and the result shares no memory with it. The work runs on
// kernels.Workers() goroutines.
func (v *Volume) Resample(spacing [3]float64, mode Interp) (*Volume, error) {
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("volume: resample: %w", err)
	}
	var r [3]float64
	for a, s := range spacing {
		if !(s > 0) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("volume: resample: target spacing[%d] = %v must be positive "+
				"and finite", a, s)
		}
		r[a] = s / v.Spacing[a]
	}
	shape, err := kernels.ResampleShape(v.Shape, r)
	if err != nil {
		return nil, fmt.Errorf("volume: resample %v mm to %v mm: %w", v.Spacing, spacing, err)
	}
	n, err := NumVoxels(shape)
	if err != nil {
		return nil, err
	}
	if n > MaxResampleVoxels {
		return nil, fmt.Errorf("volume: resample to %v mm gives %v = %d voxels, over the cap "+
			"of %d", spacing, shape, n, MaxResampleVoxels)
	}
	out := &Volume{Data: make([]float32, n), Shape: shape, Spacing: spacing}
	switch mode {
	case Linear:
		err = kernels.ResampleTrilinear(out.Data, shape, v.Data, v.Shape, r)
	case Nearest:
		err = kernels.ResampleNearest(out.Data, shape, v.Data, v.Shape, r)
	default:
		return nil, fmt.Errorf("volume: resample: unknown interpolation %v", mode)
	}
	if err != nil {
		return nil, err
	}
	out.Affine = v.Affine
	for row := range 4 {
		for a := range 3 {
			out.Affine[row][a] *= r[a]
		}
	}
	return out, nil
}
