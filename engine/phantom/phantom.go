package phantom

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Hounsfield units of the tissues the phantom draws.
const (
	HUAir         = -1000
	HUFat         = -100
	HUSoftTissue  = 40
	HUBoneCore    = 450
	HUBoneCortex  = 700
	HULung        = -850
	defaultMaxVox = 1 << 26 // 64 Mi voxels, 256 MiB per float32 volume
)

// Config describes a phantom. The zero value is not usable: Shape and Spacing are required.
type Config struct {
	// Shape and Spacing are the grid size and voxel size in millimetres along the world axes
	// x (right-left), y (anterior-posterior) and z (inferior-superior), that is, as they
	// are for the "RAS" grid. For another Orientation they are permuted with the axes, so
	// that every code samples the same field of view at the same voxel centres.
	Shape   [3]int
	Spacing [3]float64
	// Orientation is the orientation code of the generated grid ("RAS", "LPS", "SAR", ...);
	// empty means "RAS".
	Orientation string
	// Seed selects the organ layout jitter and the noise.
	Seed int64
	// Noise is the standard deviation, in HU, of Gaussian noise added to the image; 0 for
	// none.
	Noise float64
	// Lungs adds the lung bases (lower lobes, HU -850) at the top of the field of view.
	Lungs bool
	// MaxVoxels caps the grid size; 0 means 64 Mi voxels.
	MaxVoxels int
}

// Organ is one labelled structure: the voxels whose centre lies in the ellipsoid with centre
// Center, semi-axes Radii along the unit principal axes Axes (column n of Axes is the
// direction of Radii[n]), all in RAS world millimetres.
type Organ struct {
	Label  int
	Name   string
	HU     float32
	Center [3]float64
	Radii  [3]float64
	Axes   [3][3]float64
}

// Contains reports whether world point w (RAS mm) lies inside the organ's ellipsoid.
// It rounds exactly as Generate does, so it agrees with the label map voxel for voxel.
func (o *Organ) Contains(w [3]float64) bool {
	s := prepare(o)
	return s.contains(w)
}

// Extent returns the axis-aligned world bounds (RAS mm) of the organ's ellipsoid.
func (o *Organ) Extent() (lo, hi [3]float64) {
	for a := 0; a < 3; a++ {
		var h float64
		for n := 0; n < 3; n++ {
			e := o.Axes[a][n] * o.Radii[n]
			h += e * e
		}
		h = math.Sqrt(h)
		lo[a], hi[a] = o.Center[a]-h, o.Center[a]+h
	}
	return lo, hi
}

// Phantom is a generated image with its label map and the analytic organs it was drawn
// from. Image and Labels share the grid (shape, spacing, affine); the Phantom owns them and
// is safe for concurrent reads.
type Phantom struct {
	Image, Labels *volume.Volume
	// Organs lists the labelled structures in label order.
	Organs []Organ
	// Body is the body ellipsoid (Label 0); Spine the vertebral column, a cylinder along z
	// drawn in the image only (Label 0).
	Body  Organ
	Spine Organ
	// Config is the configuration the phantom was generated from.
	Config Config

	// toGrid maps the RAS grid the anatomy was sampled on to the grid of Image.
	toGrid *volume.Reorientation
}

// ErrConfig reports an unusable Config.
var ErrConfig = errors.New("phantom: bad config")

// Generate builds the phantom cfg describes. It runs on all available cores for large grids;
// the result depends only on cfg.
func Generate(cfg Config) (*Phantom, error) {
	if cfg.Orientation == "" {
		cfg.Orientation = "RAS"
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ras, err := volume.New(cfg.Shape, cfg.Spacing)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	for a := 0; a < 3; a++ {
		ras.Affine[a][3] = -cfg.Spacing[a] * float64(cfg.Shape[a]-1) / 2
	}
	// The label map shares the grid; its voxels start at 0 (background) like the image's.
	labels := &volume.Volume{Data: make([]float32, len(ras.Data)), Shape: ras.Shape,
		Spacing: ras.Spacing, Affine: ras.Affine}
	p := &Phantom{Config: cfg}
	p.layout(cfg)
	p.paint(ras, labels)
	img, r, err := ras.Reorient(cfg.Orientation)
	if err != nil {
		return nil, err
	}
	lab, err := r.Apply(labels)
	if err != nil {
		return nil, err
	}
	p.Image, p.Labels, p.toGrid = img, lab, r
	return p, nil
}

func (cfg *Config) validate() error {
	if _, err := volume.ParseOrientation(cfg.Orientation); err != nil {
		return fmt.Errorf("%w: Orientation: %v", ErrConfig, err)
	}
	n, err := volume.NumVoxels(cfg.Shape)
	if err != nil {
		return fmt.Errorf("%w: Shape: %v", ErrConfig, err)
	}
	limit := cfg.MaxVoxels
	if limit <= 0 {
		limit = defaultMaxVox
	}
	if n > limit {
		return fmt.Errorf("%w: Shape %v has %d voxels, over the cap of %d (MaxVoxels)",
			ErrConfig, cfg.Shape, n, limit)
	}
	for a, s := range cfg.Spacing {
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("%w: Spacing[%d] = %v must be positive and finite", ErrConfig,
				a, s)
		}
	}
	if !(cfg.Noise >= 0) || math.IsInf(cfg.Noise, 0) {
		return fmt.Errorf("%w: Noise = %v must be finite and non-negative", ErrConfig,
			cfg.Noise)
	}
	return nil
}

// Organ returns the organ with the given label.
func (p *Phantom) Organ(label int) (Organ, bool) {
	for _, o := range p.Organs {
		if o.Label == label {
			return o, true
		}
	}
	return Organ{}, false
}

// Box returns the inclusive voxel bounding box, in voxel order (i, j, k) of the phantom's
// grid, of the voxels labelled label (see volume.LabelBox).
func (p *Phantom) Box(label int) (lo, hi [3]int, err error) {
	return volume.LabelBox(p.Labels, label)
}

// ExtremePoints returns the six MedLSAM extreme points of label on the phantom's grid, rows
// [zmin, ymin, xmin, zmax, ymax, xmax], points (z, y, x) (see volume.ExtremePoints).
func (p *Phantom) ExtremePoints(label int) ([6][3]int, error) {
	return volume.ExtremePoints(p.Labels, label)
}

// WorldToVoxel returns the fractional voxel coordinate (i, j, k) of world point w (RAS mm)
// on the phantom's grid; voxel centres are at integer coordinates.
func (p *Phantom) WorldToVoxel(w [3]float64) [3]float64 {
	var q [3]float64
	for a := 0; a < 3; a++ {
		q[a] = w[a]/p.Config.Spacing[a] + float64(p.Config.Shape[a]-1)/2
	}
	return p.toGrid.FromSourceF(q)
}

// organSpec places an organ in units of the half field of view (u, v, w along x, y, z);
// angles in degrees rotate it about z (yaw) after tilting it about x (pitch).
type organSpec struct {
	label      int
	name       string
	hu         float32
	center     [3]float64
	radii      [3]float64
	yaw, pitch float64
	lung       bool
}

// anatomy is the organ layout before jitter. Right is +u, anterior +v, superior +w; the
// positions keep every organ inside the body and apart from the others for any seed
// (tests check both).
var anatomy = []organSpec{
	{1, "spleen", 105, [3]float64{-0.50, -0.20, 0.30}, [3]float64{0.11, 0.19, 0.17}, -30, 0,
		false},
	{2, "kidney_right", 160, [3]float64{0.30, -0.40, -0.10}, [3]float64{0.10, 0.13, 0.20}, 20,
		10, false},
	{3, "kidney_left", 160, [3]float64{-0.30, -0.40, -0.04}, [3]float64{0.10, 0.13, 0.20},
		-20, -10, false},
	{4, "gallbladder", 10, [3]float64{0.22, 0.42, -0.12}, [3]float64{0.06, 0.08, 0.10}, 30, 0,
		false},
	{5, "liver", 95, [3]float64{0.36, 0.02, 0.36}, [3]float64{0.30, 0.34, 0.26}, 10, 0, false},
	{6, "stomach", 25, [3]float64{-0.22, 0.32, 0.34}, [3]float64{0.17, 0.14, 0.18}, 25, 0,
		false},
	{7, "pancreas", 85, [3]float64{-0.10, -0.10, 0.02}, [3]float64{0.26, 0.05, 0.06}, 15, 0,
		false},
	{11, "lung_lower_lobe_left", HULung, [3]float64{-0.34, -0.05, 1.00},
		[3]float64{0.22, 0.34, 0.32}, 0, 0, true},
	{14, "lung_lower_lobe_right", HULung, [3]float64{0.34, -0.05, 1.04},
		[3]float64{0.22, 0.34, 0.30}, 0, 0, true},
}

// layout draws the seed's jitter and fixes the organs in world millimetres.
func (p *Phantom) layout(cfg Config) {
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15))
	var half [3]float64
	for a := 0; a < 3; a++ {
		half[a] = cfg.Spacing[a] * float64(cfg.Shape[a]) / 2
	}
	jit := func(scale float64) float64 { return (2*rng.Float64() - 1) * scale }
	bodyScale := 1 + jit(0.03)
	p.Body = Organ{Name: "body", HU: HUSoftTissue, Axes: rotation(0, 0),
		Radii: [3]float64{0.86 * bodyScale * half[0], 0.72 * bodyScale * half[1], 1.6 * half[2]}}
	p.Spine = Organ{Name: "spine", HU: HUBoneCore, Axes: rotation(0, 0),
		Center: [3]float64{0, -0.56 * half[1], 0},
		Radii:  [3]float64{0.08 * half[0], 0.1 * half[1], math.Inf(1)}}
	for _, s := range anatomy {
		// Draw the jitter for every organ, lungs included, so that Lungs does not change
		// the layout of the others.
		var c, r [3]float64
		for a := 0; a < 3; a++ {
			c[a] = (s.center[a] + jit(0.02)) * half[a]
		}
		size := 1 + jit(0.06)
		for a := 0; a < 3; a++ {
			r[a] = s.radii[a] * size * half[a]
		}
		yaw := s.yaw + jit(6)
		if s.lung && !cfg.Lungs {
			continue
		}
		p.Organs = append(p.Organs, Organ{Label: s.label, Name: s.name, HU: s.hu, Center: c,
			Radii: r, Axes: rotation(yaw, s.pitch)})
	}
}

// rotation returns Rz(yaw)·Rx(pitch), angles in degrees; its columns are the rotated axes.
func rotation(yaw, pitch float64) [3][3]float64 {
	cy, sy := math.Cos(yaw*math.Pi/180), math.Sin(yaw*math.Pi/180)
	cp, sp := math.Cos(pitch*math.Pi/180), math.Sin(pitch*math.Pi/180)
	return [3][3]float64{
		{cy, -sy * cp, sy * sp},
		{sy, cy * cp, -cy * sp},
		{0, sp, cp},
	}
}

// paint fills img and labels, both on the RAS grid, in z slabs on kernels.ParallelFor
// workers (on the calling goroutine for small grids).
func (p *Phantom) paint(img, labels *volume.Volume) {
	nz := img.Shape[2]
	slabs := func(k0, k1 int) {
		for k := k0; k < k1; k++ {
			p.paintSlice(img, labels, k)
		}
	}
	if img.Len() < 1<<18 {
		slabs(0, nz)
		return
	}
	kernels.ParallelFor(nz, 1, slabs)
}

// solid is an Organ prepared for fast inside tests: row n of m is principal axis n divided
// by its radius, so that a point is inside when |m·(w-c)| <= 1; yLo and yHi bound it in y.
type solid struct {
	c        [3]float64
	m        [3][3]float64
	yLo, yHi float64
	hu       float32
	label    float32
}

func prepare(o *Organ) solid {
	s := solid{c: o.Center, hu: o.HU, label: float32(o.Label)}
	for n := 0; n < 3; n++ {
		for a := 0; a < 3; a++ {
			s.m[n][a] = o.Axes[a][n] / o.Radii[n]
		}
	}
	return s
}

func (s *solid) contains(w [3]float64) bool {
	d0, d1, d2 := w[0]-s.c[0], w[1]-s.c[1], w[2]-s.c[2]
	t0 := s.m[0][0]*d0 + s.m[0][1]*d1 + s.m[0][2]*d2
	t1 := s.m[1][0]*d0 + s.m[1][1]*d1 + s.m[1][2]*d2
	t2 := s.m[2][0]*d0 + s.m[2][1]*d1 + s.m[2][2]*d2
	return t0*t0+t1*t1+t2*t2 <= 1
}

// paintSlice fills slice k of the RAS grid. Inside tests use the same arithmetic as
// Organ.Contains up to rounding; a voxel centre within rounding of a surface may fall either
// way, identically for every orientation since all are painted on this one grid.
func (p *Phantom) paintSlice(img, labels *volume.Volume, k int) {
	nx, ny := img.Shape[0], img.Shape[1]
	aff := img.Affine
	z := aff[2][2]*float64(k) + aff[2][3]
	// Organs that reach this slice, in label order.
	var slice, row []solid
	for n := range p.Organs {
		lo, hi := p.Organs[n].Extent()
		// The margin keeps rounding in Extent from culling a voxel that contains accepts.
		const margin = 1e-6
		if z >= lo[2]-margin && z <= hi[2]+margin {
			s := prepare(&p.Organs[n])
			s.yLo, s.yHi = lo[1]-margin, hi[1]+margin
			slice = append(slice, s)
		}
	}
	body := prepare(&p.Body)
	fatBody := p.Body
	for a := 0; a < 3; a++ {
		fatBody.Radii[a] -= 12 // a 12 mm layer of subcutaneous fat
	}
	inner := prepare(&fatBody)
	cortex := p.Spine
	cortex.Radii[0] *= 0.75
	cortex.Radii[1] *= 0.75
	seed := uint64(p.Config.Seed)
	var cached uint64
	var haveCached bool
	var g0, g1 float64
	for j := 0; j < ny; j++ {
		y := aff[1][1]*float64(j) + aff[1][3]
		row = row[:0]
		for _, s := range slice {
			if y >= s.yLo && y <= s.yHi {
				row = append(row, s)
			}
		}
		o := nx * (j + ny*k)
		for i := 0; i < nx; i++ {
			x := aff[0][0]*float64(i) + aff[0][3]
			w := [3]float64{x, y, z}
			hu, label := float32(HUAir), float32(0)
			if body.contains(w) {
				hu = HUFat
				if inner.contains(w) {
					hu = HUSoftTissue
				}
				if p.Spine.containsXY(w) {
					hu = HUBoneCortex
					if cortex.containsXY(w) {
						hu = HUBoneCore
					}
				}
				for n := range row {
					if row[n].contains(w) {
						hu, label = row[n].hu, row[n].label
						break
					}
				}
			}
			if p.Config.Noise > 0 {
				n := uint64(o + i)
				if pair := n >> 1; pair != cached || !haveCached {
					g0, g1 = gaussPair(seed, pair)
					cached, haveCached = pair, true
				}
				g := g0
				if n&1 == 1 {
					g = g1
				}
				hu += float32(p.Config.Noise * g)
			}
			img.Data[o+i] = hu
			labels.Data[o+i] = label
		}
	}
}

// containsXY tests only the x, y cross-section, for structures that run along z.
func (o *Organ) containsXY(w [3]float64) bool {
	dx := (w[0] - o.Center[0]) / o.Radii[0]
	dy := (w[1] - o.Center[1]) / o.Radii[1]
	return dx*dx+dy*dy <= 1
}

// gaussPair returns two independent standard normal deviates for voxels 2n and 2n+1 (the
// Box-Muller transform of a SplitMix64 hash of seed and n). They depend only on seed and n,
// so noise needs no shared generator and no ordering between goroutines.
func gaussPair(seed, n uint64) (float64, float64) {
	h := splitmix(seed ^ splitmix(n+0x632be59bd9b4e019))
	u1 := (float64(h>>32) + 1) / (1 << 32) // (0, 1]
	u2 := float64(h&0xffffffff) / (1 << 32)
	r := math.Sqrt(-2 * math.Log(u1))
	sin, cos := math.Sincos(2 * math.Pi * u2)
	return r * cos, r * sin
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
