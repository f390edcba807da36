package volume

import (
	"errors"
	"fmt"
)

// ErrLabelAbsent reports a label value that no voxel of a label map holds.
var ErrLabelAbsent = errors.New("volume: label absent")

// Extreme-point rows, in the order ExtremePoints returns them (method.md section 3).
const (
	ZMin = iota
	YMin
	XMin
	ZMax
	YMax
	XMax
)

// LabelBox returns the inclusive voxel bounding box of the voxels of labels equal to label,
// in voxel order (i, j, k), or an error wrapping ErrLabelAbsent when there are none. It does
// not modify labels and may run concurrently with other readers.
func LabelBox(labels *Volume, label int) (lo, hi [3]int, err error) {
	want, err := labelValue(labels, label)
	if err != nil {
		return lo, hi, err
	}
	nx, ny, nz := labels.Shape[0], labels.Shape[1], labels.Shape[2]
	lo = [3]int{nx, ny, nz}
	hi = [3]int{-1, -1, -1}
	o := 0
	for k := 0; k < nz; k++ {
		for j := 0; j < ny; j++ {
			row := labels.Data[o : o+nx]
			o += nx
			first := -1
			for i, x := range row {
				if x == want {
					first = i
					break
				}
			}
			if first < 0 {
				continue
			}
			last := first
			for i := nx - 1; i > first; i-- {
				if row[i] == want {
					last = i
					break
				}
			}
			lo[0], hi[0] = min(lo[0], first), max(hi[0], last)
			lo[1], hi[1] = min(lo[1], j), max(hi[1], j)
			lo[2], hi[2] = min(lo[2], k), max(hi[2], k)
		}
	}
	if hi[0] < 0 {
		return lo, hi, fmt.Errorf("%w: no voxel of the %v label map holds %d",
			ErrLabelAbsent, labels.Shape, label)
	}
	return lo, hi, nil
}

// ExtremePoints returns the six extreme points of one label as MedLSAM's templates define
// them (method.md section 3): for each axis of the (z, y, x) array, the first and the last
// slice holding the label, and in that slice the middle entry (index n/2 of n) of the
// slice's labelled voxels listed in C order of the array transposed to (a, a-2, a-1) for
// array axis a, as the reference's extract_fg_cor does: a z slice lists (y, x), a y slice
// (x, z) and an x slice (z, y), the first named axis slowest. Rows are
// [zmin, ymin, xmin, zmax, ymax, xmax] (see ZMin...XMax) and every point is (z, y, x) =
// (k, j, i). The labels volume is read as is: reorient it first (to Canonical for MedLAM).
// It returns an error wrapping ErrLabelAbsent when no voxel holds label.
func ExtremePoints(labels *Volume, label int) ([6][3]int, error) {
	var pts [6][3]int
	lo, hi, err := LabelBox(labels, label)
	if err != nil {
		return pts, err
	}
	want := float32(label)
	// Array axis a of (z, y, x) is voxel axis 2-a.
	for a := 0; a < 3; a++ {
		axis := 2 - a
		for side, slice := range [2]int{lo[axis], hi[axis]} {
			pt, ok := sliceMedian(labels, want, axis, slice)
			if !ok {
				return pts, fmt.Errorf("volume: extreme points: label %d vanished from slice "+
					"%d of axis %d", label, slice, axis)
			}
			pts[a+3*side] = pt
		}
	}
	return pts, nil
}

// sliceMedian returns, as (z, y, x), the voxel at index n/2 of the n voxels equal to want in
// the slice where voxel axis `axis` equals s, listed in the order ExtremePoints describes.
func sliceMedian(v *Volume, want float32, axis, s int) ([3]int, bool) {
	nx, ny, nz := v.Shape[0], v.Shape[1], v.Shape[2]
	// The two free voxel axes, slow then fast, with their sizes and strides.
	var slowN, fastN, slowStride, fastStride, base int
	switch axis {
	case 2: // z slice: (j, i)
		slowN, fastN, slowStride, fastStride, base = ny, nx, nx, 1, s*nx*ny
	case 1: // y slice: (i, k), the reference's label.transpose(1, 2, 0)
		slowN, fastN, slowStride, fastStride, base = nx, nz, 1, nx*ny, s*nx
	default: // x slice: (k, j)
		slowN, fastN, slowStride, fastStride, base = nz, ny, nx*ny, nx, s
	}
	count := 0
	for a := 0; a < slowN; a++ {
		o := base + a*slowStride
		for b := 0; b < fastN; b++ {
			if v.Data[o] == want {
				count++
			}
			o += fastStride
		}
	}
	if count == 0 {
		return [3]int{}, false
	}
	target := count / 2
	for a := 0; a < slowN; a++ {
		o := base + a*slowStride
		for b := 0; b < fastN; b++ {
			if v.Data[o] == want {
				if target == 0 {
					i := o % nx
					j := o / nx % ny
					k := o / (nx * ny)
					return [3]int{k, j, i}, true
				}
				target--
			}
			o += fastStride
		}
	}
	return [3]int{}, false
}

// labelValue validates labels and returns label as the float32 a label map stores.
func labelValue(labels *Volume, label int) (float32, error) {
	if labels == nil {
		return 0, errors.New("volume: nil label map")
	}
	if err := labels.Validate(); err != nil {
		return 0, err
	}
	const exact = 1 << 24 // float32 holds every integer up to here
	if label < -exact || label > exact {
		return 0, fmt.Errorf("volume: label %d is not exactly representable in float32", label)
	}
	return float32(label), nil
}
