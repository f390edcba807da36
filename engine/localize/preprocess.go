package localize

import (
	"fmt"
	"math"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// maxGridVoxels bounds a prepared grid (a 3 mm grid of 2 m per side has 0.3 G voxels).
const maxGridVoxels = 1 << 29

// Kind tells Prepare whether a volume holds intensities or labels.
type Kind int

// Kinds of volume.
const (
	// Image volumes are resampled trilinearly and normalised when they look like raw HU.
	Image Kind = iota
	// Labels are resampled by nearest neighbour and must hold non-negative integers.
	Labels
)

// Prepare turns a volume read from source into a Grid (method.md section 1): reoriented to
// LAS (volume.Canonical), resampled to 3 mm (kernels' grid convention: voxel 0 aligned,
// trilinear for images, nearest for labels; skipped when the spacing is already 3 mm) and,
// for an image whose minimum is below -10, normalised with MedLAM's piecewise HU map
// (kernels.NormalizeHU). The zero padding is virtual (see Grid). v is not modified.
//
// This resamples trilinearly where the reference uses a cubic spline (scipy's zoom, order 3,
// corner-aligned grid) and labels by nearest neighbour where it uses one-hot trilinear
// argmax; the box is mapped back with the same ratio, so boxes stay on the query's grid.
// Prepare runs the CPU kernels; PrepareWith takes others.
func Prepare(v *volume.Volume, source string, kind Kind) (*Grid, error) {
	return PrepareWith(nil, v, source, kind)
}

// PrepareWith is Prepare with the resampling and the normalisation run by k (CPUKernels
// when nil).
func PrepareWith(k Kernels, v *volume.Volume, source string, kind Kind) (*Grid, error) {
	k = kernelsOr(k)
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("localize: %s: %w", source, err)
	}
	las, reo, err := v.Reorient(volume.Canonical)
	if err != nil {
		return nil, fmt.Errorf("localize: %s: %w", source, err)
	}
	g := &Grid{Source: source, reo: reo, srcShape: v.Shape, srcAffine: v.Affine}
	same := true
	for a := 0; a < 3; a++ {
		g.ratio[a] = Spacing / las.Spacing[a]
		same = same && math.Abs(las.Spacing[a]-Spacing) < 1e-6
	}
	if same {
		g.ratio = [3]float64{1, 1, 1}
		g.Vol = las
	} else if g.Vol, err = resampleWith(k, las, g.ratio, kind); err != nil {
		return nil, fmt.Errorf("localize: %s: %w", source, err)
	}
	switch kind {
	case Image:
		if kernels.LooksLikeHU(g.Vol.Data) {
			if err := k.NormalizeHU(g.Vol.Data, g.Vol.Data); err != nil {
				return nil, fmt.Errorf("localize: %s: %w", source, err)
			}
		}
	case Labels:
		for i, x := range g.Vol.Data {
			if x < 0 || x != float32(math.Trunc(float64(x))) {
				return nil, fmt.Errorf("localize: label map %s: voxel %d holds %v, not a "+
					"non-negative integer label", source, i, x)
			}
		}
	}
	return g, nil
}
