package localize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// TemplatePointsVersion is the version of the template-points JSON schema.
const TemplatePointsVersion = 1

// Limits of a template-points file, so that a bad file cannot ask for unbounded work.
const (
	maxPointsFileBytes = 16 << 20
	maxPointsTemplates = 64
	maxPointsOrgans    = 512
)

// TemplatePoints is a template-points file: annotated points given directly, instead of
// being derived from label maps. It is the alternative the issue names ("or read points from
// a JSON file"): the templates need images but no label maps.
//
// Schema (version 1):
//
//	{
//	  "version": 1,
//	  "templates": [
//	    {
//	      "image": "ct_01.nii.gz",
//	      "organs": [
//	        {"label": 1, "name": "spleen", "points": [[z, y, x], ... six rows]},
//	        {"label": 6, "name": "liver", "chunks": [[[z, y, x], ... six rows], ...]}
//	      ]
//	    }
//	  ]
//	}
//
// "image" is the template image file, relative to the JSON file's directory unless
// absolute. Each point is a voxel of that file written [z, y, x] = [k, j, i] (the file's
// voxel indices in reverse, the order in which the reference's arrays index them). The six
// rows of an organ ("points", one box) or of each chunk ("chunks", one box per chunk, one to
// six chunks: the split mode) are, along the file's axes: min along k, min along j, min
// along i, max along k, max along j, max along i, as the method's extreme points are (a
// row's point lies on that face of the organ; its other coordinates are free). Every
// template must list the same organs, each with the same number of chunks, and the same
// name for a label; labels are positive integers.
type TemplatePoints struct {
	Version   int                `json:"version"`
	Templates []TemplatePointSet `json:"templates"`

	// dir is the JSON file's directory, for relative image paths.
	dir string
}

// TemplatePointSet is one template of a TemplatePoints file.
type TemplatePointSet struct {
	Image  string          `json:"image"`
	Organs []OrganPointSet `json:"organs"`
}

// OrganPointSet is one organ's points in one template: Points (six rows) or Chunks (six
// rows each), not both.
type OrganPointSet struct {
	Label  int        `json:"label"`
	Name   string     `json:"name,omitempty"`
	Points [][3]int   `json:"points,omitempty"`
	Chunks [][][3]int `json:"chunks,omitempty"`
}

// rows returns the organ's points, six per chunk, and the chunk count.
func (o OrganPointSet) rows() ([][3]int, int) {
	if o.Points != nil {
		return o.Points, 1
	}
	var out [][3]int
	for _, c := range o.Chunks {
		out = append(out, c...)
	}
	return out, len(o.Chunks)
}

// ReadTemplatePoints reads and validates a template-points file (see TemplatePoints). Errors
// name the file, the template, the organ and the field at fault. Bounds against the images'
// grids are checked later, by Grid (see TemplatePoints.Template).
func ReadTemplatePoints(path string) (*TemplatePoints, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("localize: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPointsFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("localize: template points %s: %w", path, err)
	}
	if len(b) > maxPointsFileBytes {
		return nil, fmt.Errorf("localize: template points %s: larger than %d bytes", path,
			maxPointsFileBytes)
	}
	tp, err := parseTemplatePoints(b)
	if err != nil {
		return nil, fmt.Errorf("localize: template points %s: %w", path, err)
	}
	tp.dir = filepath.Dir(path)
	return tp, nil
}

func parseTemplatePoints(b []byte) (*TemplatePoints, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var tp TemplatePoints
	if err := dec.Decode(&tp); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON object")
	}
	if tp.Version != TemplatePointsVersion {
		return nil, fmt.Errorf("version %d, this build reads %d", tp.Version,
			TemplatePointsVersion)
	}
	if len(tp.Templates) == 0 || len(tp.Templates) > maxPointsTemplates {
		return nil, fmt.Errorf("templates: %d entries, want 1 to %d", len(tp.Templates),
			maxPointsTemplates)
	}
	// Organs of the first template, by label: name and chunk count.
	type organInfo struct {
		name   string
		chunks int
	}
	first := map[int]organInfo{}
	for ti, t := range tp.Templates {
		where := fmt.Sprintf("templates[%d]", ti)
		if t.Image == "" {
			return nil, fmt.Errorf("%s: no image", where)
		}
		if len(t.Organs) == 0 || len(t.Organs) > maxPointsOrgans {
			return nil, fmt.Errorf("%s (%s): %d organs, want 1 to %d", where, t.Image,
				len(t.Organs), maxPointsOrgans)
		}
		seen := map[int]bool{}
		for oi, o := range t.Organs {
			at := fmt.Sprintf("%s (%s) organs[%d] (label %d)", where, t.Image, oi, o.Label)
			if o.Label <= 0 {
				return nil, fmt.Errorf("%s: label must be a positive integer", at)
			}
			if seen[o.Label] {
				return nil, fmt.Errorf("%s: label listed twice", at)
			}
			seen[o.Label] = true
			if err := checkOrganRows(o); err != nil {
				return nil, fmt.Errorf("%s: %w", at, err)
			}
			_, n := o.rows()
			if ti == 0 {
				first[o.Label] = organInfo{o.Name, n}
				continue
			}
			want, ok := first[o.Label]
			switch {
			case !ok:
				return nil, fmt.Errorf("%s: organ absent from templates[0] (%s)", at,
					tp.Templates[0].Image)
			case want.chunks != n:
				return nil, fmt.Errorf("%s: %d chunks, templates[0] has %d", at, n,
					want.chunks)
			case want.name != o.Name:
				return nil, fmt.Errorf("%s: name %q, templates[0] calls it %q", at, o.Name,
					want.name)
			}
		}
		if len(seen) != len(first) {
			for l := range first {
				if !seen[l] {
					return nil, fmt.Errorf("%s (%s): organ label %d of templates[0] is "+
						"absent", where, t.Image, l)
				}
			}
		}
	}
	return &tp, nil
}

// checkOrganRows checks one organ's rows: points or chunks, six rows each, non-negative,
// each min row at or below its max row along its axis.
func checkOrganRows(o OrganPointSet) error {
	if (o.Points == nil) == (o.Chunks == nil) {
		return fmt.Errorf("give exactly one of \"points\" and \"chunks\"")
	}
	if o.Chunks != nil && (len(o.Chunks) < 1 || len(o.Chunks) > maxChunks) {
		return fmt.Errorf("chunks: %d entries, want 1 to %d", len(o.Chunks), maxChunks)
	}
	sets := o.Chunks
	field := "chunks[%d]"
	if o.Points != nil {
		sets, field = [][][3]int{o.Points}, "points"
	}
	for c, rows := range sets {
		name := field
		if o.Points == nil {
			name = fmt.Sprintf(field, c)
		}
		if len(rows) != 6 {
			return fmt.Errorf("%s: %d rows, want 6 (min k, j, i then max k, j, i)", name,
				len(rows))
		}
		for r, p := range rows {
			if p[0] < 0 || p[1] < 0 || p[2] < 0 {
				return fmt.Errorf("%s[%d]: point %v has a negative index", name, r, p)
			}
		}
		for a := 0; a < 3; a++ {
			if rows[a][a] > rows[3+a][a] {
				return fmt.Errorf("%s: row %d (min along %c) is at %d, beyond row %d (max) "+
					"at %d", name, a, "kji"[a], rows[a][a], 3+a, rows[3+a][a])
			}
		}
	}
	return nil
}

// ImagePath returns template t's image path, resolved against the JSON file's directory.
func (tp *TemplatePoints) ImagePath(t int) string {
	p := tp.Templates[t].Image
	if filepath.IsAbs(p) || tp.dir == "" {
		return p
	}
	return filepath.Join(tp.dir, p)
}

// Organs returns the organs of the file, in the first template's order.
func (tp *TemplatePoints) Organs() []Organ {
	var out []Organ
	for _, o := range tp.Templates[0].Organs {
		out = append(out, Organ{Label: o.Label, Name: o.Name})
	}
	return out
}

// Mode returns SPL when any organ is given as chunks, WPL otherwise.
func (tp *TemplatePoints) Mode() Mode {
	for _, o := range tp.Templates[0].Organs {
		if o.Chunks != nil {
			return SPL
		}
	}
	return WPL
}

// Template returns template t with its image prepared as img (Prepare of the file at
// ImagePath(t)): each point is checked against the file's grid and mapped to the grid's
// (z, y, x) frame, and each chunk's rows are reordered to the grid's axes.
func (tp *TemplatePoints) Template(t int, img *Grid) (Template, error) {
	if t < 0 || t >= len(tp.Templates) {
		return Template{}, fmt.Errorf("localize: template points: no template %d", t)
	}
	ts := tp.Templates[t]
	out := Template{Image: img, Points: map[int][][3]int{}}
	for _, o := range ts.Organs {
		rows, _ := o.rows()
		mapped := make([][3]int, len(rows))
		for c := 0; c < len(rows); c += 6 {
			if err := img.rowsFromSource(rows[c:c+6], mapped[c:c+6]); err != nil {
				return Template{}, fmt.Errorf("localize: template points: %s, organ %v: %w",
					tp.ImagePath(t), Organ{o.Label, o.Name}, err)
			}
		}
		out.Points[o.Label] = mapped
	}
	return out, nil
}

// fromSource maps voxel (i, j, k) of the grid's source file to the grid's (z, y, x) frame
// (unpadded): through the reorientation, then divided by the resampling ratio and rounded
// half to even.
func (g *Grid) fromSource(p [3]int) [3]int {
	las := p
	if g.reo != nil {
		las = g.reo.FromSource(p)
	}
	var out [3]int
	for a := 0; a < 3; a++ {
		v := int(math.RoundToEven(float64(las[a]) / g.ratio[a]))
		out[2-a] = min(max(v, 0), g.Vol.Shape[a]-1)
	}
	return out
}

// sourceAxisOfGrid returns, for grid axis a (z, y, x), the source file axis (i, j, k)
// it runs along.
func (g *Grid) sourceAxisOfGrid(a int) int {
	las := 2 - a
	if g.reo == nil {
		return las
	}
	return g.reo.Perm[las]
}

// rowsFromSource maps six rows given as [k, j, i] of the source file (min k, j, i, max k, j,
// i) to the grid frame, in the grid's row order (min z, y, x, max z, y, x).
func (g *Grid) rowsFromSource(rows, dst [][3]int) error {
	pts := make([][3]int, 6)
	for r, p := range rows {
		src := [3]int{p[2], p[1], p[0]}
		for a := 0; a < 3; a++ {
			if src[a] >= g.srcShape[a] {
				return fmt.Errorf("row %d: point [k j i] %v lies outside the image's grid "+
					"%v (i, j, k)", r, p, g.srcShape)
			}
		}
		pts[r] = g.fromSource(src)
	}
	for a := 0; a < 3; a++ {
		// Row of the file's (k, j, i) axis that grid axis a runs along.
		fr := 2 - g.sourceAxisOfGrid(a)
		lo, hi := pts[fr], pts[3+fr]
		if lo[a] > hi[a] {
			lo, hi = hi, lo
		}
		dst[a], dst[3+a] = lo, hi
	}
	return nil
}
