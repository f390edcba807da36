package localize

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Config holds the localiser's settings; the zero value means the method's defaults.
type Config struct {
	// Mode is WPL (default) or SPL.
	Mode Mode
	// SliceInterval is SPL's chunk length in resampled slices (default 2).
	SliceInterval int
	// BatchSize caps the patches per network call (default 8); 0 or less means the default.
	// Results do not depend on it.
	BatchSize int
	// Seed drives the coarse step's random crops; equal seeds give equal results.
	Seed uint64
	// CoarseCrops is the number of random crops of the coarse step (default 10).
	CoarseCrops int
	// Logger receives progress; nil means slog.Default().
	Logger *slog.Logger
	// Kernels runs the similarity search (and, through PrepareWith, the resampling and
	// normalisation); nil means CPUKernels. Results agree within the kernels' tolerances.
	Kernels Kernels
	// Resampling is how PrepareWith brings volumes to 3 mm: "" or Linear, or Reference.
	// Templates and queries must share it (a template set records it).
	Resampling Resampling
}

// Defaults of Config.
const (
	DefaultSliceInterval = 2
	DefaultBatchSize     = 8
	DefaultCoarseCrops   = 10
)

func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = WPL
	}
	if c.SliceInterval <= 0 {
		c.SliceInterval = DefaultSliceInterval
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.CoarseCrops <= 0 {
		c.CoarseCrops = DefaultCoarseCrops
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) check() error {
	if c.Mode != WPL && c.Mode != SPL {
		return fmt.Errorf("localize: mode %q is neither WPL nor SPL", c.Mode)
	}
	return c.Resampling.Check()
}

// Template is one annotated template: a prepared image and either its label map, prepared on
// the same grid (Prepare with Labels set), or its points given directly (see
// TemplatePoints.Template).
type Template struct {
	Image  *Grid
	Labels *Grid
	// Points, used when Labels is nil, holds each organ's points by label: six rows per
	// chunk (min z, y, x, max z, y, x), (z, y, x) in Image's unpadded frame.
	Points map[int][][3]int
}

// BuildTemplateSet computes the template set of organs over templates: every organ's points
// in every template (WPL or SPL, see Config.Mode), then one batched pass of net.Full over
// all the points of all organs and templates, giving per point the position vector averaged
// over the templates and, per feature scale, the sum over the templates of the centre crop
// of the feature map (2^3, 4^3, 8^3 voxels), L2-normalised over channels at each voxel.
// Every template must hold every organ; an absent organ is an error naming it and the file.
func BuildTemplateSet(ctx context.Context, net *Network, templates []Template,
	organs []Organ, cfg Config) (*TemplateSet, error) {
	cfg = cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if err := net.check(); err != nil {
		return nil, err
	}
	if len(templates) == 0 {
		return nil, fmt.Errorf("localize: no template")
	}
	if err := checkOrgans(organs); err != nil {
		return nil, err
	}
	given := templates[0].Labels == nil
	for _, t := range templates {
		if t.Image == nil || (t.Labels == nil && t.Points == nil) {
			return nil, fmt.Errorf("localize: template without image, or without label " +
				"map and points")
		}
		if (t.Labels == nil) != given {
			return nil, fmt.Errorf("localize: template %s: templates mix label maps and "+
				"given points", t.Image.Source)
		}
		if r, r0 := t.Image.Resampling(), templates[0].Image.Resampling(); r != r0 ||
			(t.Labels != nil && t.Labels.Resampling() != r0) {
			return nil, fmt.Errorf("localize: template %s: prepared with %s resampling, "+
				"template %s with %s; prepare every template alike", t.Image.Source, r,
				templates[0].Image.Source, r0)
		}
		if given {
			continue
		}
		if t.Image.srcShape != t.Labels.srcShape ||
			!t.Image.srcAffine.Near(t.Labels.srcAffine, gridTolerance) {
			return nil, fmt.Errorf("localize: template %s: label map %s is on another grid "+
				"(shape %v, affine %v; the image's %v, %v)", t.Image.Source, t.Labels.Source,
				t.Labels.srcShape, t.Labels.srcAffine, t.Image.srcShape, t.Image.srcAffine)
		}
	}
	ts := &TemplateSet{ModelSHA256: net.ModelSHA256, Mode: cfg.Mode,
		SliceInterval: cfg.SliceInterval}
	if r := templates[0].Image.Resampling(); r != Linear {
		ts.Resampling = r
	}
	for _, t := range templates {
		ts.Templates = append(ts.Templates, t.Image.Source)
	}

	// Points of every organ in every template.
	for _, o := range organs {
		var op OrganPoints
		var err error
		if given {
			op, err = givenPoints(templates, o)
		} else {
			op, err = labelPoints(templates, o, cfg)
		}
		if err != nil {
			return nil, err
		}
		op.First = ts.NumPoints()
		ts.Organs = append(ts.Organs, op)
	}

	// One pass of the network over all points of all templates, template-major.
	np := ts.NumPoints()
	type job struct{ t, point int }
	jobs := make([]job, 0, np*len(templates))
	centres := make([][3]int, 0, cap(jobs))
	for ti := range templates {
		for _, o := range ts.Organs {
			for i, p := range o.TemplatePoints[ti] {
				jobs = append(jobs, job{ti, o.First + i})
				centres = append(centres, [3]int{p[0] + Pad, p[1] + Pad, p[2] + Pad})
			}
		}
	}
	pos := make([]float64, 3*np)
	var kern [3][]float32
	names := append([]string{OutputPosition}, OutputFeatures[:]...)
	start := time.Now()
	cfg.Logger.Info("localize: template features", "templates", len(templates),
		"organs", len(organs), "patches", len(jobs), "batch", cfg.BatchSize)
	err := runBatched(ctx, net.Full, len(jobs), cfg.BatchSize, names,
		func(p int, dst []float32) error {
			templates[jobs[p].t].Image.cropPadded(centres[p], dst)
			return nil
		},
		func(first int, outs []backend.Tensor) error {
			if err := checkPosition(outs[0]); err != nil {
				return err
			}
			for s := 0; s < 3; s++ {
				c, e, err := featureShape(outs[1+s])
				if err != nil {
					return err
				}
				k := kernelEdge(e)
				if kern[s] == nil {
					ts.Channels[s], ts.Edges[s] = c, k
					kern[s] = make([]float32, np*c*k*k*k)
				} else if ts.Channels[s] != c || ts.Edges[s] != k {
					return fmt.Errorf("%w: localize: feature %d changed shape between batches",
						backend.ErrShape, s)
				}
			}
			for b := 0; b < int(outs[0].Shape[0]); b++ {
				j := jobs[first+b]
				for a := 0; a < 3; a++ {
					pos[3*j.point+a] += float64(outs[0].Data[3*b+a])
				}
				for s := 0; s < 3; s++ {
					c, k := ts.Channels[s], ts.Edges[s]
					e := int(outs[1+s].Shape[2])
					kv, fv := c*k*k*k, c*e*e*e
					err := kernels.AddTemplateKernel(kern[s][j.point*kv:(j.point+1)*kv],
						outs[1+s].Data[b*fv:(b+1)*fv], c, e, k)
					if err != nil {
						return fmt.Errorf("localize: template kernel: %w", err)
					}
				}
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	cfg.Logger.Info("localize: template features done", "seconds",
		time.Since(start).Seconds())
	ts.Positions = make([]float32, len(pos))
	for i, v := range pos {
		ts.Positions[i] = float32(v / float64(len(templates)))
	}
	ts.Kernels = kern
	return ts, ts.Validate()
}

// labelPoints derives an organ's points from every template's label map (WPL or SPL).
func labelPoints(templates []Template, o Organ, cfg Config) (OrganPoints, error) {
	ext := make([]int, len(templates))
	for i, t := range templates {
		e, err := zExtent(t.Labels, o)
		if err != nil {
			return OrganPoints{}, err
		}
		ext[i] = e
	}
	n, split := chunksFor(cfg.Mode, ext, cfg.SliceInterval)
	op := OrganPoints{Organ: o, Chunks: n}
	for _, t := range templates {
		var pts [][3]int
		var err error
		if split {
			pts, err = splitPoints(t.Labels, o, n)
		} else {
			pts, err = wplPoints(t.Labels, o)
		}
		if err != nil {
			return OrganPoints{}, err
		}
		op.TemplatePoints = append(op.TemplatePoints, pts)
	}
	return op, nil
}

// givenPoints takes an organ's points from every template's Points; every template must
// give it, with the same number of chunks, inside its grid.
func givenPoints(templates []Template, o Organ) (OrganPoints, error) {
	op := OrganPoints{Organ: o}
	for i, t := range templates {
		pts, ok := t.Points[o.Label]
		if !ok {
			return op, fmt.Errorf("localize: template %s: organ %v has no points",
				t.Image.Source, o)
		}
		n := len(pts) / 6
		if len(pts)%6 != 0 || n < 1 || n > maxChunks {
			return op, fmt.Errorf("localize: template %s: organ %v has %d points, want 6 "+
				"per chunk and 1 to %d chunks", t.Image.Source, o, len(pts), maxChunks)
		}
		if i == 0 {
			op.Chunks = n
		} else if n != op.Chunks {
			return op, fmt.Errorf("localize: template %s: organ %v has %d chunks, template "+
				"%s has %d", t.Image.Source, o, n, templates[0].Image.Source, op.Chunks)
		}
		d := t.Image.Dims()
		for _, p := range pts {
			for a := 0; a < 3; a++ {
				if p[a] < 0 || p[a] >= d[a] {
					return op, fmt.Errorf("localize: template %s: organ %v: point %v "+
						"outside the grid %v", t.Image.Source, o, p, d)
				}
			}
		}
		op.TemplatePoints = append(op.TemplatePoints, slices.Clone(pts))
	}
	return op, nil
}

func checkOrgans(organs []Organ) error {
	if len(organs) == 0 {
		return fmt.Errorf("localize: no organ requested")
	}
	seen := map[int]bool{}
	for _, o := range organs {
		if o.Label <= 0 {
			return fmt.Errorf("localize: organ %v: label values start at 1", o)
		}
		if seen[o.Label] {
			return fmt.Errorf("localize: organ %v requested twice", o)
		}
		seen[o.Label] = true
	}
	return nil
}

func checkPosition(t backend.Tensor) error {
	if len(t.Shape) != 2 || t.Shape[1] != 3 {
		return fmt.Errorf("%w: localize: %q has shape %v, want [B,3]", backend.ErrShape,
			t.Name, t.Shape)
	}
	return nil
}

// gridTolerance is how far, in mm, a label map's affine may differ from its image's: NIfTI-1
// stores affines as float32.
const gridTolerance = 1e-3
