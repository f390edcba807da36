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
	// reference. The network was trained on such volumes. Images resample with the
	// kernels' ZoomCubic (the GPU's too); label maps, which only templates have, on the CPU.
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
// run by c.Kernels (CPUKernels when nil; Reference label maps always resample on the CPU).
func PrepareWith(c Config, v *volume.Volume, source string, kind Kind) (*Grid, error) {
	k := kernelsOr(c.Kernels)
	if v == nil {
		return nil, fmt.Errorf("localize: %s: no volume", source)
	}
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("localize: %s: %w", source, err)
	}
	plan, err := PlanGrid(v, source, c.Resampling, kind)
	if err != nil {
		return nil, err
	}
	las, err := plan.Reorientation.Apply(v)
	if err != nil {
		return nil, fmt.Errorf("localize: %s: %w", source, err)
	}
	g := plan.Grid
	switch {
	case !plan.Resample:
		g.Vol = las
	case g.resampling == Reference:
		err = fill(g.Vol, func(dst []float32) error { return resampleReference(k, dst, g.Vol.Shape, las, kind) })
	default:
		err = fill(g.Vol, func(dst []float32) error {
			if kind == Labels {
				return k.ResampleNearest(dst, g.Vol.Shape, las.Data, las.Shape, g.ratio)
			}
			return k.ResampleTrilinear(dst, g.Vol.Shape, las.Data, las.Shape, g.ratio)
		})
	}
	if err != nil {
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

// GridPlan is the geometry of the Grid that PrepareWith makes of a volume, and the steps that
// make its voxels, computed without touching any voxel: a caller whose voxels live on a GPU
// (engine/gpu) runs the steps there and localises on Grid.
type GridPlan struct {
	// Grid has the geometry of the prepared grid and its mapping back to the source; its
	// Vol has Shape, Spacing and Affine but no Data.
	Grid *Grid
	// Reorientation takes the source grid to LAS (an axis permutation with flips).
	Reorientation *volume.Reorientation
	// Resample is false when the LAS spacing is already 3 mm and the grid is the LAS volume
	// itself; otherwise resampled voxel o sits at LAS voxel o*Ratio (Linear resampling).
	Resample bool
	Ratio    [3]float64
}

// PlanGrid plans the preparation of v (its geometry; v.Data is not read) with resampling
// res for a volume of the given kind. v's shape and spacing must be valid.
func PlanGrid(v *volume.Volume, source string, res Resampling, kind Kind) (*GridPlan, error) {
	res = res.or()
	if err := res.Check(); err != nil {
		return nil, err
	}
	reo, err := volume.PlanReorientation(v.Shape, v.Spacing, v.Affine, volume.Canonical)
	if err != nil {
		return nil, fmt.Errorf("localize: %s: %w", source, err)
	}
	var lasSpacing [3]float64
	for n := range 3 {
		lasSpacing[n] = v.Spacing[reo.Perm[n]]
	}
	lasAffine := v.Affine.Mul(reo.IndexTransform())
	g := &Grid{Source: source, reo: reo, srcShape: v.Shape, srcAffine: v.Affine,
		resampling: res}
	plan := &GridPlan{Grid: g, Reorientation: reo, Ratio: [3]float64{1, 1, 1}}
	for a := range 3 {
		plan.Resample = plan.Resample || math.Abs(lasSpacing[a]-Spacing) >= 1e-6
	}
	if !plan.Resample {
		g.ratio = plan.Ratio
		g.Vol = &volume.Volume{Shape: reo.DstShape, Spacing: lasSpacing, Affine: lasAffine}
		return plan, nil
	}
	var f [3]float64 // the reference's zoom factors
	for a := range 3 {
		plan.Ratio[a] = Spacing / lasSpacing[a]
		f[a] = lasSpacing[a] / Spacing
	}
	g.ratio = plan.Ratio
	var shape [3]int
	switch {
	case res == Reference && kind == Labels:
		shape, err = kernels.ScaleShape(reo.DstShape, f)
	case res == Reference:
		shape, err = kernels.ZoomShape(reo.DstShape, f)
	default:
		shape, err = kernels.ResampleShape(reo.DstShape, plan.Ratio)
	}
	if err != nil {
		return nil, fmt.Errorf("localize: %s: %w", source, err)
	}
	// The grid's affine is the nominal A*diag(r) for both resamplings (see Reference).
	affine := lasAffine
	for row := range 4 {
		for a := range 3 {
			affine[row][a] *= plan.Ratio[a]
		}
	}
	if n, err := volume.NumVoxels(shape); err != nil || n > maxGridVoxels {
		return nil, fmt.Errorf("localize: %s: 3 mm grid %v has more than %d voxels", source,
			shape, maxGridVoxels)
	}
	g.Vol = &volume.Volume{Shape: shape, Spacing: [3]float64{Spacing, Spacing, Spacing},
		Affine: affine}
	return plan, nil
}
