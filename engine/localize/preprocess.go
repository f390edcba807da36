package localize

import (
	"fmt"
	"math"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// maxGridVoxels bounds a prepared grid (a 3 mm grid of 2 m per side has 0.3 G voxels).
const maxGridVoxels = 1 << 29

// Resampling chooses how Prepare brings a volume to 3 mm.
type Resampling string

// Resamplings.
const (
	// Linear follows the kernels package's grid convention: voxel 0 aligned, exactly 3 mm,
	// images trilinear, label maps by nearest neighbour; boxes map back through the same
	// geometry. The default; the GPU kernels run it too.
	Linear Resampling = "linear"
	// Reference resamples as the reference implementation does: images with
	// scipy.ndimage.zoom's cubic spline on its corner-aligned grid (round(n*s/3) voxels;
	// kernels.ZoomCubic), label maps by one-hot trilinear interpolation on torch's half-pixel
	// grid and argmax (floor(n*s/3) voxels; kernels.ResampleLabelsOneHot), and boxes mapped
	// back with the nominal ratio 3/s, ignoring that the corner-aligned grid's spacing is
	// (n-1)/(n_out-1) input voxels: at the far end of an axis the mapped position is off by
	// 1.5 to 4.5 mm less the input spacing s (up to about one 3 mm voxel). Template points
	// are read on the label grid and used on the image grid as they are, as in the
	// reference. The network was trained on such volumes. It runs on the CPU whatever the
	// kernels (TODO(#5): CUDA twins of both kernels).
	Reference Resampling = "reference"
)

// Check returns an error unless r is "" (Linear), Linear or Reference.
func (r Resampling) Check() error {
	if r != "" && r != Linear && r != Reference {
		return fmt.Errorf("localize: resampling %q is neither %s nor %s", r, Linear, Reference)
	}
	return nil
}

// or returns r, or Linear when r is "".
func (r Resampling) or() Resampling {
	if r == "" {
		return Linear
	}
	return r
}

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
// LAS (volume.Canonical), resampled to 3 mm (Linear resampling; skipped when the spacing is
// already 3 mm) and, for an image whose minimum is below -10, normalised with MedLAM's
// piecewise HU map (kernels.NormalizeHU). The zero padding is virtual (see Grid). v is not
// modified. Prepare runs the CPU kernels; PrepareWith takes the kernels and the resampling
// of a Config.
func Prepare(v *volume.Volume, source string, kind Kind) (*Grid, error) {
	return PrepareWith(Config{}, v, source, kind)
}

// PrepareWith is Prepare with c.Resampling, and with the resampling and the normalisation
// run by c.Kernels (CPUKernels when nil; Reference resampling always runs on the CPU).
func PrepareWith(c Config, v *volume.Volume, source string, kind Kind) (*Grid, error) {
	k := kernelsOr(c.Kernels)
	res := c.Resampling.or()
	if err := res.Check(); err != nil {
		return nil, err
	}
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("localize: %s: %w", source, err)
	}
	las, reo, err := v.Reorient(volume.Canonical)
	if err != nil {
		return nil, fmt.Errorf("localize: %s: %w", source, err)
	}
	g := &Grid{Source: source, reo: reo, srcShape: v.Shape, srcAffine: v.Affine,
		resampling: res}
	same := true
	for a := 0; a < 3; a++ {
		g.ratio[a] = Spacing / las.Spacing[a]
		same = same && math.Abs(las.Spacing[a]-Spacing) < 1e-6
	}
	if same {
		g.ratio = [3]float64{1, 1, 1}
		g.Vol = las
	} else if res == Reference {
		if g.Vol, err = resampleReference(las, g.ratio, kind); err != nil {
			return nil, fmt.Errorf("localize: %s: %w", source, err)
		}
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
