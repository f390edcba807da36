package localize

import (
	"context"
	"fmt"
	"math"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
)

// Result is a query's localisation on the query file's own voxel grid. It marshals to the
// JSON that `medlsam-fast localize` writes.
type Result struct {
	// Query names the query file; Shape is its grid (i, j, k).
	Query string `json:"query"`
	Shape [3]int `json:"shape"`
	// ModelSHA256, Mode and Seed record how the result was computed.
	ModelSHA256 string `json:"model_sha256"`
	Mode        Mode   `json:"mode"`
	Seed        uint64 `json:"seed"`
	// Organs lists one entry per organ of the template set, in its order.
	Organs []OrganBox `json:"organs"`
}

// OrganBox is one organ's box. In SPL mode each z chunk has its own box (Chunks), and Box
// is their union (the reference keeps only the chunks and segments each chunk's slices with
// its own box; the union is this package's summary).
type OrganBox struct {
	Organ
	BoxOnGrid
	Chunks []BoxOnGrid `json:"chunks,omitempty"`
}

// BoxOnGrid is a box in voxel indices (i, j, k) of the query file, inclusive, clipped to
// the volume, with its extent in world millimetres.
type BoxOnGrid struct {
	Box eval.Box `json:"box"`
	// World is the axis-aligned bounding box in world (RAS+) millimetres of the centres of
	// the box's eight corner voxels.
	World WorldBox `json:"world_mm"`
	// Clipped tells whether a face lay outside the volume before clipping.
	Clipped bool `json:"clipped,omitempty"`
	// Points are the six refined points (i, j, k) on the query's grid, before clipping,
	// rows zmin, ymin, xmin, zmax, ymax, xmax of the LAS frame (absent for an SPL union).
	Points [][3]int `json:"points,omitempty"`
}

// WorldBox is an axis-aligned box in world millimetres.
type WorldBox struct {
	Min [3]float64 `json:"min"`
	Max [3]float64 `json:"max"`
}

// Boxes turns the refined points of a query into boxes on the query file's grid: each
// point is unpadded, scaled back to the LAS grid at the file's spacing (rounded half to
// even, as numpy's around), and mapped through the reorientation to the file's voxel axes.
// Each chunk of six points gives a box, per LAS axis from its min row to its max row;
// faces are sorted per axis (as the reference swaps them after a flip) and clipped to the
// volume.
//
// The reference forms the box per axis of the file after mapping (row n for file axis n),
// which is wrong for files whose axes are permuted relative to LAS; here the rows are read
// in the LAS frame, before mapping, and the result equals the reference's otherwise.
func Boxes(ts *TemplateSet, q *Grid, pts *Points, seed uint64) (*Result, error) {
	if len(pts.Final) != ts.NumPoints() {
		return nil, fmt.Errorf("localize: %d refined points for a template set of %d",
			len(pts.Final), ts.NumPoints())
	}
	r := &Result{Query: q.Source, Shape: q.srcShape, ModelSHA256: ts.ModelSHA256,
		Mode: ts.Mode, Seed: seed}
	for _, o := range ts.Organs {
		ob := OrganBox{Organ: o.Organ}
		for c := 0; c < o.Chunks; c++ {
			rows := pts.Final[o.First+6*c : o.First+6*c+6]
			b := q.chunkBox(rows)
			if c == 0 {
				ob.BoxOnGrid = b
			} else {
				ob.Box = ob.Box.Union(b.Box)
				ob.Clipped = ob.Clipped || b.Clipped
			}
			if o.Chunks > 1 {
				ob.Chunks = append(ob.Chunks, b)
			}
		}
		if o.Chunks > 1 {
			ob.World = q.worldBox(ob.Box)
			ob.Points = nil
		}
		r.Organs = append(r.Organs, ob)
	}
	return r, nil
}

// toSource maps a point of the padded (z, y, x) frame to voxel (i, j, k) of the source
// file, unclipped.
func (g *Grid) toSource(p [3]int) [3]int {
	las := [3]int{p[2] - Pad, p[1] - Pad, p[0] - Pad}
	for a := 0; a < 3; a++ {
		las[a] = int(math.RoundToEven(float64(las[a]) * g.ratio[a]))
	}
	if g.reo == nil {
		return las
	}
	return g.reo.ToSource(las)
}

// chunkBox forms the box of six rows (padded frame, rows zmin..xmax).
func (g *Grid) chunkBox(rows [][3]int) BoxOnGrid {
	var b BoxOnGrid
	var lo, hi [3]int // padded (z, y, x)
	for a := 0; a < 3; a++ {
		lo[a], hi[a] = rows[a][a], rows[3+a][a]
	}
	for _, p := range rows {
		b.Points = append(b.Points, g.toSource(p))
	}
	s0, s1 := g.toSource(lo), g.toSource(hi)
	for a := 0; a < 3; a++ {
		l, h := min(s0[a], s1[a]), max(s0[a], s1[a])
		cl, ch := clamp(l, 0, g.srcShape[a]-1), clamp(h, 0, g.srcShape[a]-1)
		b.Clipped = b.Clipped || cl != l || ch != h
		b.Box.Min[a], b.Box.Max[a] = cl, ch
	}
	b.World = g.worldBox(b.Box)
	return b
}

func clamp(v, lo, hi int) int { return min(max(v, lo), hi) }

// worldBox returns the world bounding box of the centres of b's corner voxels.
func (g *Grid) worldBox(b eval.Box) WorldBox {
	w := WorldBox{Min: [3]float64{math.Inf(1), math.Inf(1), math.Inf(1)},
		Max: [3]float64{math.Inf(-1), math.Inf(-1), math.Inf(-1)}}
	for c := 0; c < 8; c++ {
		var p [3]float64
		for a := 0; a < 3; a++ {
			p[a] = float64(b.Min[a])
			if c>>a&1 == 1 {
				p[a] = float64(b.Max[a])
			}
		}
		x := g.srcAffine.Apply(p)
		for a := 0; a < 3; a++ {
			w.Min[a] = math.Min(w.Min[a], x[a])
			w.Max[a] = math.Max(w.Max[a], x[a])
		}
	}
	return w
}

// Localize runs Locate and Boxes: the boxes of every organ of ts in the prepared query q.
func Localize(ctx context.Context, net *Network, ts *TemplateSet, q *Grid,
	cfg Config) (*Result, *Points, error) {
	pts, err := Locate(ctx, net, ts, q, cfg)
	if err != nil {
		return nil, nil, err
	}
	r, err := Boxes(ts, q, pts, cfg.Seed)
	return r, pts, err
}
