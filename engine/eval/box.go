package eval

import (
	"fmt"
	"math"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// Box is an axis-aligned box in voxel indices of one grid: Min and Max are the first and the
// last index covered along each voxel axis (i, j, k), both inclusive.
type Box struct {
	Min [3]int `json:"min"`
	Max [3]int `json:"max"`
}

// Valid reports whether Min <= Max on every axis.
func (b Box) Valid() bool {
	return b.Min[0] <= b.Max[0] && b.Min[1] <= b.Max[1] && b.Min[2] <= b.Max[2]
}

// Union returns the smallest box that contains a and b.
func (b Box) Union(o Box) Box {
	u := b
	for a := 0; a < 3; a++ {
		u.Min[a] = min(u.Min[a], o.Min[a])
		u.Max[a] = max(u.Max[a], o.Max[a])
	}
	return u
}

// IoU is the 3D box intersection over union as the MedLSAM evaluation computes it: a box is
// the continuous range between its two face coordinates, so an extent is Max - Min (not
// Max - Min + 1) and a box one voxel thick has no volume. Disjoint boxes score 0; two
// boxes without volume score 1 when equal and 0 otherwise. See VoxelIoU for the count of
// voxels.
func IoU(a, b Box) float64 {
	inter := 1.0
	for ax := 0; ax < 3; ax++ {
		d := min(a.Max[ax], b.Max[ax]) - max(a.Min[ax], b.Min[ax])
		if d < 0 {
			return 0
		}
		inter *= float64(d)
	}
	union := faceVolume(a) + faceVolume(b) - inter
	if union <= 0 {
		if a == b {
			return 1
		}
		return 0
	}
	return inter / union
}

func faceVolume(b Box) float64 {
	v := 1.0
	for ax := 0; ax < 3; ax++ {
		v *= float64(max(b.Max[ax]-b.Min[ax], 0))
	}
	return v
}

// VoxelIoU is the intersection over union of the sets of voxels the two inclusive boxes
// cover (extent Max - Min + 1). It differs from IoU for thin boxes; invalid boxes cover no
// voxel.
func VoxelIoU(a, b Box) float64 {
	va, vb := voxelCount(a), voxelCount(b)
	inter := 1.0
	for ax := 0; ax < 3; ax++ {
		d := min(a.Max[ax], b.Max[ax]) - max(a.Min[ax], b.Min[ax]) + 1
		if d <= 0 {
			inter = 0
			break
		}
		inter *= float64(d)
	}
	if va == 0 || vb == 0 {
		inter = 0
	}
	union := va + vb - inter
	if union == 0 {
		return 0
	}
	return inter / union
}

func voxelCount(b Box) float64 {
	if !b.Valid() {
		return 0
	}
	v := 1.0
	for ax := 0; ax < 3; ax++ {
		v *= float64(b.Max[ax] - b.Min[ax] + 1)
	}
	return v
}

// WallDistance is the MedLSAM wall distance: the mean, over the six faces, of the absolute
// distance in millimetres between the corresponding faces of a and b. spacing is the voxel
// size along i, j, k.
func WallDistance(a, b Box, spacing [3]float64) float64 {
	var s float64
	for ax := 0; ax < 3; ax++ {
		s += math.Abs(float64(a.Min[ax]-b.Min[ax])) * spacing[ax]
		s += math.Abs(float64(a.Max[ax]-b.Max[ax])) * spacing[ax]
	}
	return s / 6
}

// LabelBox returns the bounding box of the voxels of labels equal to label, and false when
// there is none. Label values are compared after rounding to the nearest integer.
func LabelBox(labels *volume.Volume, label int) (Box, bool, error) {
	if err := labels.Validate(); err != nil {
		return Box{}, false, fmt.Errorf("eval: label map: %w", err)
	}
	nx, ny, nz := labels.Shape[0], labels.Shape[1], labels.Shape[2]
	b := Box{Min: [3]int{nx, ny, nz}, Max: [3]int{-1, -1, -1}}
	want := float64(label)
	p := 0
	for k := 0; k < nz; k++ {
		for j := 0; j < ny; j++ {
			for i := 0; i < nx; i++ {
				if math.Round(float64(labels.Data[p])) == want {
					b.Min = [3]int{min(b.Min[0], i), min(b.Min[1], j), min(b.Min[2], k)}
					b.Max = [3]int{max(b.Max[0], i), max(b.Max[1], j), max(b.Max[2], k)}
				}
				p++
			}
		}
	}
	if b.Max[0] < 0 {
		return Box{}, false, nil
	}
	return b, true, nil
}
