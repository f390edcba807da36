package eval

import (
	"fmt"
	"math"
	"slices"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// Dice returns the Sørensen-Dice coefficient 2|P ∩ G| / (|P| + |G|) of two masks over the
// same voxels, and false when both are empty (the score is undefined). It panics if the
// lengths differ; ScoreSegmentation checks them.
func Dice(pred, ref []bool) (float64, bool) {
	var inter, np, nr int
	for i, p := range pred {
		g := ref[i]
		if p {
			np++
		}
		if g {
			nr++
		}
		if p && g {
			inter++
		}
	}
	if np+nr == 0 {
		return 0, false
	}
	return 2 * float64(inter) / float64(np+nr), true
}

// Surface returns the surface voxels of mask on a grid of the given shape (i fastest): the
// voxels of the mask that are not in its erosion by the 6-connected cross, with everything
// outside the grid counted as background (medpy's border: mask XOR binary_erosion with
// connectivity 1 and border_value 0).
func Surface(mask []bool, shape [3]int) []bool {
	nx, ny, nz := shape[0], shape[1], shape[2]
	s := make([]bool, len(mask))
	p := 0
	for k := 0; k < nz; k++ {
		for j := 0; j < ny; j++ {
			for i := 0; i < nx; i++ {
				if mask[p] {
					inner := i > 0 && i < nx-1 && j > 0 && j < ny-1 && k > 0 && k < nz-1 &&
						mask[p-1] && mask[p+1] && mask[p-nx] && mask[p+nx] &&
						mask[p-nx*ny] && mask[p+nx*ny]
					s[p] = !inner
				}
				p++
			}
		}
	}
	return s
}

// DistanceTransform returns, for every voxel of a grid of the given shape (i fastest) and
// voxel spacing (mm along i, j, k), the exact Euclidean distance in millimetres to the
// nearest voxel where features is true, or +Inf when there is none. It uses the separable
// lower-envelope algorithm of Felzenszwalb and Huttenlocher (Theory of Computing 8, 2012):
// three passes of a 1D squared-distance transform, linear in the voxel count, exact for
// anisotropic spacing (scipy's distance_transform_edt(~features, sampling=spacing)).
func DistanceTransform(features []bool, shape [3]int, spacing [3]float64) []float64 {
	d := make([]float64, len(features))
	for i, f := range features {
		if !f {
			d[i] = math.Inf(1)
		}
	}
	nx, ny, nz := shape[0], shape[1], shape[2]
	n := max(nx, ny, nz)
	f, out := make([]float64, n), make([]float64, n)
	v, z := make([]int, n), make([]float64, n+1)
	line := func(start, stride, count int, sp float64) {
		for q := 0; q < count; q++ {
			f[q] = d[start+q*stride]
		}
		edt1D(f[:count], out[:count], v, z, sp)
		for q := 0; q < count; q++ {
			d[start+q*stride] = out[q]
		}
	}
	for k := 0; k < nz; k++ {
		for j := 0; j < ny; j++ {
			line(nx*(j+ny*k), 1, nx, spacing[0])
		}
	}
	for k := 0; k < nz; k++ {
		for i := 0; i < nx; i++ {
			line(i+nx*ny*k, nx, ny, spacing[1])
		}
	}
	for j := 0; j < ny; j++ {
		for i := 0; i < nx; i++ {
			line(i+nx*j, nx*ny, nz, spacing[2])
		}
	}
	for i := range d {
		d[i] = math.Sqrt(d[i])
	}
	return d
}

// edt1D writes out[p] = min over q of (sp*(p-q))^2 + f[q] (squared distances; +Inf entries
// of f take no part). v and z are scratch of at least len(f) and len(f)+1 entries.
func edt1D(f, out []float64, v []int, z []float64, sp float64) {
	n := len(f)
	k := -1
	s2 := sp * sp
	// intersect returns where the parabolas rooted at q and r (q > r) meet, in index units.
	intersect := func(q, r int) float64 {
		return ((f[q] + s2*float64(q*q)) - (f[r] + s2*float64(r*r))) / (2 * s2 * float64(q-r))
	}
	for q := 0; q < n; q++ {
		if math.IsInf(f[q], 1) {
			continue
		}
		for k >= 0 {
			if s := intersect(q, v[k]); s > z[k] {
				break
			}
			k--
		}
		k++
		v[k] = q
		if k == 0 {
			z[k] = math.Inf(-1)
		} else {
			z[k] = intersect(q, v[k-1])
		}
		z[k+1] = math.Inf(1)
	}
	if k < 0 {
		for p := range out {
			out[p] = math.Inf(1)
		}
		return
	}
	j := 0
	for p := 0; p < n; p++ {
		for z[j+1] < float64(p) {
			j++
		}
		d := sp * float64(p-v[j])
		out[p] = d*d + f[v[j]]
	}
}

// HD95 returns the 95th percentile of the symmetric surface distances between pred and ref
// in millimetres, the published definition (medpy.metric.hd95, which the MedLSAM evaluation
// uses): the surfaces of both masks (Surface), the distance of every surface voxel of each
// mask to the nearest surface voxel of the other (DistanceTransform), both sets pooled, and
// the 95th percentile with linear interpolation between order statistics (numpy's
// default). It returns false when either mask is empty (the distance is undefined; medpy
// raises an error). The work is confined to the bounding box of the two masks, which holds
// every surface voxel, so the distances are exact.
func HD95(pred, ref []bool, shape [3]int, spacing [3]float64) (float64, bool) {
	box, ok := maskBox(pred, shape)
	rbox, rok := maskBox(ref, shape)
	if !ok || !rok {
		return 0, false
	}
	box = box.Union(rbox)
	var sub [3]int
	for a := 0; a < 3; a++ {
		sub[a] = box.Max[a] - box.Min[a] + 1
	}
	crop := func(m []bool) []bool {
		c := make([]bool, 0, sub[0]*sub[1]*sub[2])
		for k := box.Min[2]; k <= box.Max[2]; k++ {
			for j := box.Min[1]; j <= box.Max[1]; j++ {
				row := (j + shape[1]*k) * shape[0]
				c = append(c, m[row+box.Min[0]:row+box.Max[0]+1]...)
			}
		}
		return c
	}
	// The crop's faces may cut through a mask only where it touches the grid's border,
	// which Surface also treats as background, so the surfaces are the grid's.
	ps, rs := Surface(crop(pred), sub), Surface(crop(ref), sub)
	dr, dp := DistanceTransform(rs, sub, spacing), DistanceTransform(ps, sub, spacing)
	var all []float64
	for i := range ps {
		if ps[i] {
			all = append(all, dr[i])
		}
		if rs[i] {
			all = append(all, dp[i])
		}
	}
	return percentile(all, 95), true
}

// percentile returns the q-th percentile of a (not empty) with numpy's linear method.
func percentile(a []float64, q float64) float64 {
	slices.Sort(a)
	r := q / 100 * float64(len(a)-1)
	lo := int(math.Floor(r))
	if lo >= len(a)-1 {
		return a[len(a)-1]
	}
	return a[lo] + (r-float64(lo))*(a[lo+1]-a[lo])
}

// maskBox returns the bounding box of mask, and false when it is empty.
func maskBox(mask []bool, shape [3]int) (Box, bool) {
	b := Box{Min: shape, Max: [3]int{-1, -1, -1}}
	p := 0
	for k := 0; k < shape[2]; k++ {
		for j := 0; j < shape[1]; j++ {
			for i := 0; i < shape[0]; i++ {
				if mask[p] {
					b.Min = [3]int{min(b.Min[0], i), min(b.Min[1], j), min(b.Min[2], k)}
					b.Max = [3]int{max(b.Max[0], i), max(b.Max[1], j), max(b.Max[2], k)}
				}
				p++
			}
		}
	}
	return b, b.Max[0] >= 0
}

// SegScore is one organ's segmentation score. Dice is null when both masks are empty and
// HD95 when either is.
type SegScore struct {
	Label      int      `json:"label"`
	Name       string   `json:"name,omitempty"`
	Dice       *float64 `json:"dice"`
	HD95       *float64 `json:"hd95_mm"`
	PredVoxels int      `json:"pred_voxels"`
	RefVoxels  int      `json:"ref_voxels"`
}

// LabelMask returns the voxels of v equal to label (values rounded to the nearest integer).
func LabelMask(v *volume.Volume, label int) []bool {
	m := make([]bool, len(v.Data))
	want := float64(label)
	for i, x := range v.Data {
		m[i] = math.Round(float64(x)) == want
	}
	return m
}

// ScoreSegmentation scores the predicted label map pred against the reference label map ref
// for each label: Dice and HD95 (mm, through ref's spacing). The two maps must share the
// shape; the caller checks that their geometry agrees as it needs.
func ScoreSegmentation(pred, ref *volume.Volume, labels []int) ([]SegScore, error) {
	if err := pred.Validate(); err != nil {
		return nil, fmt.Errorf("eval: prediction: %w", err)
	}
	if err := ref.Validate(); err != nil {
		return nil, fmt.Errorf("eval: reference: %w", err)
	}
	if pred.Shape != ref.Shape {
		return nil, fmt.Errorf("eval: prediction shape %v differs from the reference's %v",
			pred.Shape, ref.Shape)
	}
	out := make([]SegScore, 0, len(labels))
	for _, l := range labels {
		p, r := LabelMask(pred, l), LabelMask(ref, l)
		s := SegScore{Label: l}
		for i := range p {
			if p[i] {
				s.PredVoxels++
			}
			if r[i] {
				s.RefVoxels++
			}
		}
		if d, ok := Dice(p, r); ok {
			s.Dice = &d
		}
		if h, ok := HD95(p, r, ref.Shape, ref.Spacing); ok {
			s.HD95 = &h
		}
		out = append(out, s)
	}
	return out, nil
}
