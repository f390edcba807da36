package localize

import (
	"errors"
	"fmt"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// maxChunks is the method's cap on SPL chunks per organ.
const maxChunks = 6

// organMask reads one label of a label grid as a binary mask.
type organMask struct {
	g     *Grid
	d     [3]int
	label float32
}

func newOrganMask(g *Grid, label int) organMask {
	return organMask{g: g, d: g.Dims(), label: float32(label)}
}

func (m organMask) in(z, y, x int) bool {
	return m.g.Vol.Data[x+m.d[2]*(y+m.d[1]*z)] == m.label
}

// bounds returns the first and last index along each axis (z, y, x) of the organ's voxels
// whose z lies in [z0, z1), and false when there is none.
func (m organMask) bounds(z0, z1 int) (lo, hi [3]int, ok bool) {
	lo = m.d
	hi = [3]int{-1, -1, -1}
	for z := max(z0, 0); z < min(z1, m.d[0]); z++ {
		for y := 0; y < m.d[1]; y++ {
			for x := 0; x < m.d[2]; x++ {
				if m.in(z, y, x) {
					p := [3]int{z, y, x}
					for a := 0; a < 3; a++ {
						lo[a] = min(lo[a], p[a])
						hi[a] = max(hi[a], p[a])
					}
				}
			}
		}
	}
	return lo, hi, hi[0] >= 0
}

// sliceMedian returns the middle voxel (entry count/2) of the organ's voxels in slice idx
// along axis, listed in the order the reference lists them: it takes the slice of the
// array transposed to (axis, axis-2, axis-1), so the in-slice order is (y, x) for a z slice,
// (x, z) for a y slice and (z, y) for an x slice, first coordinate slowest. It returns false
// for an empty slice.
func (m organMask) sliceMedian(axis, idx int) ([3]int, bool) {
	u, v := (axis+1)%3, (axis+2)%3 // transposed order (axis, axis-2, axis-1) = (axis, u, v)
	var p [3]int
	p[axis] = idx
	count := 0
	for pass := 0; pass < 2; pass++ {
		seen := 0
		for a := 0; a < m.d[u]; a++ {
			for b := 0; b < m.d[v]; b++ {
				p[u], p[v] = a, b
				if !m.in(p[0], p[1], p[2]) {
					continue
				}
				if pass == 1 && seen == count/2 {
					return p, true
				}
				seen++
			}
		}
		count = seen
		if count == 0 {
			return p, false
		}
	}
	return p, false
}

// wplPoints returns the organ's six extreme points in the unpadded (z, y, x) frame of lab,
// rows zmin, ymin, xmin, zmax, ymax, xmax (method.md section 3), as volume.ExtremePoints
// computes them in the reference's slice order.
func wplPoints(lab *Grid, o Organ) ([][3]int, error) {
	ext, err := volume.ExtremePoints(lab.Vol, o.Label)
	if errors.Is(err, volume.ErrLabelAbsent) {
		return nil, fmt.Errorf("localize: template %s: organ %v is absent from the label map",
			lab.Source, o)
	}
	if err != nil {
		return nil, fmt.Errorf("localize: template %s: organ %v: %w", lab.Source, o, err)
	}
	return ext[:], nil
}

// zExtent returns zmax - zmin of the organ in lab, or an error naming the organ and the file
// when the organ is absent.
func zExtent(lab *Grid, o Organ) (int, error) {
	lo, hi, ok := newOrganMask(lab, o.Label).bounds(0, lab.Dims()[0])
	if !ok {
		return 0, fmt.Errorf("localize: template %s: organ %v is absent from the label map",
			lab.Source, o)
	}
	return hi[0] - lo[0], nil
}

// splitPoints returns six points for each of n z chunks of the organ, as the reference's
// split mode computes them: with step (zmax-zmin)/n, chunk c spans z in [start, end) with
// start = zmin + c*step and end = start+step (zmax for the last chunk). The chunk's bounds
// are start and end along z and the bounds of its voxels along y and x. For each bound and
// axis, the point lies at the bound along that axis, and its other two coordinates are the
// middle voxel (see sliceMedian) of the whole organ's slice at the bound, or at the first
// non-empty slice beyond it. Rows per chunk: zmin, ymin, xmin, zmax, ymax, xmax.
//
// Where a chunk holds no voxel (an organ with a gap along z), the reference reuses the
// previous chunk's y and x bounds; this uses the whole organ's instead.
func splitPoints(lab *Grid, o Organ, n int) ([][3]int, error) {
	m := newOrganMask(lab, o.Label)
	olo, ohi, ok := m.bounds(0, m.d[0])
	if !ok {
		return nil, fmt.Errorf("localize: template %s: organ %v is absent from the label map",
			lab.Source, o)
	}
	if n < 1 || n > maxChunks {
		return nil, fmt.Errorf("localize: split into %d chunks, want 1 to %d", n, maxChunks)
	}
	step := (ohi[0] - olo[0]) / n
	pts := make([][3]int, 0, 6*n)
	for c := 0; c < n; c++ {
		start := olo[0] + c*step
		end := start + step
		if c == n-1 {
			end = ohi[0]
		}
		lo, hi, ok := m.bounds(start, end)
		if !ok {
			lo, hi = olo, ohi
		}
		lo[0], hi[0] = start, end
		for _, b := range [2][3]int{lo, hi} {
			for axis := 0; axis < 3; axis++ {
				var p [3]int
				found := false
				for s := b[axis]; s < m.d[axis] && !found; s++ {
					p, found = m.sliceMedian(axis, s)
				}
				if !found {
					return nil, fmt.Errorf("localize: template %s: organ %v: no voxel at or "+
						"beyond slice %d of axis %d", lab.Source, o, b[axis], axis)
				}
				p[axis] = b[axis]
				pts = append(pts, p)
			}
		}
	}
	return pts, nil
}

// chunksFor decides an organ's points from its z extents (zmax - zmin) over all templates.
// SPL uses the split points, n = min(minExtent/interval, 6) chunks, when every extent exceeds
// interval; otherwise, and always in WPL mode, the organ gets the six extreme points.
func chunksFor(mode Mode, extents []int, interval int) (n int, split bool) {
	if mode != SPL || len(extents) == 0 || interval <= 0 {
		return 1, false
	}
	lo := extents[0]
	for _, e := range extents[1:] {
		lo = min(lo, e)
	}
	if lo <= interval {
		return 1, false
	}
	return min(lo/interval, maxChunks), true
}
