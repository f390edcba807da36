// Package medlamgolden checks a runtime's MedLAM outputs against torch's, as summarised in
// testdata/models/medlam_tiny_golden.json by models/medlam.py. Tests of every runtime that
// runs the tiny MedLAM model (ONNX Runtime, the native CPU network) share it.
package medlamgolden

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// File is the golden file's content.
type File struct {
	ModelSHA256 string `json:"model_sha256"`
	Batch       int    `json:"batch"`
	Tolerance   struct {
		Rel float64 `json:"rel"`
		Abs float64 `json:"abs"`
	} `json:"tolerance"`
	Outputs map[string]struct {
		Shape  []int64     `json:"shape"`
		Sum    []float64   `json:"sum"`
		AbsSum []float64   `json:"abs_sum"`
		SqSum  []float64   `json:"sq_sum"`
		Values [][]float64 `json:"values"` // position only: every value
		Centre [][]float64 `json:"centre"` // features: channels at the centre voxel
		Row0   [][]float64 `json:"row0"`   // features: [b,0,0,0,:8]
	} `json:"outputs"`
}

// Names are the outputs the golden file summarises, in contract order.
var Names = []string{"position", "feature0", "feature1", "feature2"}

// Load reads the golden file at path and checks it was made for the model with digest sha.
func Load(path, sha string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var g File
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if g.ModelSHA256 != sha {
		return nil, fmt.Errorf("%s is for model %.12s, the model is %.12s", path,
			g.ModelSHA256, sha)
	}
	if g.Batch < 1 || g.Batch > 8 || g.Tolerance.Rel <= 0 {
		return nil, fmt.Errorf("%s: batch %d, tolerance %v out of range", path, g.Batch,
			g.Tolerance)
	}
	return &g, nil
}

// Patch is the golden input, as models/medlam.py golden_patch defines it:
// float32(0.5 + 0.3 sin(0.1i + 0.2j + 0.3k + 0.5b) + 0.2 cos(0.013ij - 0.021k(b+1))),
// evaluated in float64, i, j, k along axes 2, 3, 4.
func Patch(batch int) backend.Tensor {
	const e = 64
	data := make([]float32, batch*e*e*e)
	for b := range batch {
		for i := range e {
			for j := range e {
				for k := range e {
					fi, fj, fk, fb := float64(i), float64(j), float64(k), float64(b)
					v := 0.5 + 0.3*math.Sin(0.1*fi+0.2*fj+0.3*fk+0.5*fb) +
						0.2*math.Cos(0.013*fi*fj-0.021*fk*(fb+1))
					data[((b*e+i)*e+j)*e+k] = float32(v)
				}
			}
		}
	}
	return backend.Tensor{Name: "patch", Shape: []int64{int64(batch), 1, e, e, e}, Data: data}
}

// Compare returns one line per value of outs (the outputs Names, in order, for Patch(g.Batch))
// that lies outside the golden tolerance of torch's, and nil when all agree. Sums are
// compared relative to the sum of magnitudes, which bounds the accumulated rounding of
// either side.
func (g *File) Compare(outs []backend.Tensor) []string {
	var bad []string
	rel, abs := g.Tolerance.Rel, g.Tolerance.Abs
	near := func(what string, got, want, tol float64) {
		if !(math.Abs(got-want) <= tol) {
			bad = append(bad, fmt.Sprintf("%s = %.7g, torch %.7g (tolerance %.3g)", what, got,
				want, tol))
		}
	}
	if len(outs) != len(Names) {
		return []string{fmt.Sprintf("%d outputs, want %d", len(outs), len(Names))}
	}
	for i, name := range Names {
		want, ok := g.Outputs[name]
		if !ok {
			return append(bad, fmt.Sprintf("golden file has no output %q", name))
		}
		o := outs[i]
		if fmt.Sprint(o.Shape) != fmt.Sprint(want.Shape) {
			return append(bad, fmt.Sprintf("%s shape %v, golden %v", name, o.Shape, want.Shape))
		}
		per := len(o.Data) / g.Batch
		for b := range g.Batch {
			s := o.Data[b*per : (b+1)*per]
			var sum, asum, sq float64
			for _, v := range s {
				sum += float64(v)
				asum += math.Abs(float64(v))
				sq += float64(v) * float64(v)
			}
			near(fmt.Sprintf("%s[%d] sum", name, b), sum, want.Sum[b], rel*want.AbsSum[b]+abs)
			near(fmt.Sprintf("%s[%d] abs_sum", name, b), asum, want.AbsSum[b],
				rel*want.AbsSum[b]+abs)
			near(fmt.Sprintf("%s[%d] sq_sum", name, b), sq, want.SqSum[b], rel*want.SqSum[b]+abs)
			if name == "position" {
				for k, w := range want.Values[b] {
					near(fmt.Sprintf("position[%d,%d]", b, k), float64(s[k]), w, rel*math.Abs(w)+abs)
				}
				continue
			}
			ch, e := int(o.Shape[1]), int(o.Shape[2])
			vox := e * e * e
			c := e / 2
			centre := (c*e+c)*e + c
			for k := 0; k < ch && k < len(want.Centre[b]); k++ {
				w := want.Centre[b][k]
				near(fmt.Sprintf("%s[%d,%d,centre]", name, b, k), float64(s[k*vox+centre]), w,
					rel*math.Abs(w)+abs)
			}
			for k, w := range want.Row0[b] {
				near(fmt.Sprintf("%s[%d,0,0,0,%d]", name, b, k), float64(s[k]), w,
					rel*math.Abs(w)+abs)
			}
		}
	}
	return bad
}
