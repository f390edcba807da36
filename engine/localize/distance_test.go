package localize

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/native"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/ort"
	"github.com/medlsam-fast/medlsam-fast/engine/phantom"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// startDistances are the refinement starts of the distance table, in voxels along each
// axis (a start at distance r is the true point plus (r, -r, r) or (-r, r, -r)).
var startDistances = []int{0, 5, 10, 20}

// midModelEnv names a MedLAM model (NAME.onnx with its manifest) to tabulate besides the
// tiny one, e.g. a base-width-8 export (see the package documentation).
const midModelEnv = "MEDLSAM_MEDLAM_MODEL"

// distanceSource is a template volume with labels, and the shift (i, j, k voxels) of the
// query derived from it.
type distanceSource struct {
	name     string
	img, lab *volume.Volume
	shape    [3]int
	shift    [3]int
}

// TestRefineDistanceTable tabulates, for the tiny model (and the model named by
// $MEDLSAM_MEDLAM_MODEL when set), how many of the template points of two organs the
// refinement brings back within a voxel when started 0, 5, 10 and 20 voxels per axis from
// them, on a shifted copy of the shared CT and of a phantom (engine/phantom), each its own
// template. It asserts what holds for random weights: every point started on the truth
// stays within a voxel. The rest is logged (the table in doc.go).
func TestRefineDistanceTable(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 168 refinement patches per model")
	}
	nets := map[string]*Network{"tiny": tinyNet(t)}
	if p := os.Getenv(midModelEnv); p != "" {
		nets[p] = openNet(t, p)
	}
	var sources []distanceSource
	if img, lab, err := readCTData(); err == nil {
		sources = append(sources, distanceSource{"ct", img, lab, [3]int{130, 110, 124},
			[3]int{6, 5, 9}})
	} else {
		t.Logf("shared CT absent, phantom only: %v", err)
	}
	ph, err := phantom.Generate(phantom.Config{Shape: [3]int{120, 110, 100},
		Spacing: [3]float64{3, 3, 3}, Seed: 3, Noise: 20})
	if err != nil {
		t.Fatal(err)
	}
	sources = append(sources, distanceSource{"phantom", ph.Image, ph.Labels,
		[3]int{128, 116, 110}, [3]int{6, 5, 9}})
	organs := []Organ{{Label: 2, Name: "kidney_right"}, {Label: 1, Name: "spleen"}}
	for name, net := range nets {
		for _, src := range sources {
			tab := distanceRow(t, net, src, organs)
			var cells []string
			for _, r := range startDistances {
				cells = append(cells, fmt.Sprintf("%d: %d/%d (worst %d)", r, tab[r][0],
					tab[r][1], tab[r][2]))
			}
			t.Logf("model %s, %s: within a voxel by start distance: %s", name, src.name,
				strings.Join(cells, ", "))
			if tab[0][0] != tab[0][1] {
				t.Errorf("model %s, %s: only %d of %d points started on the truth stayed "+
					"within a voxel", name, src.name, tab[0][0], tab[0][1])
			}
		}
	}
}

// distanceRow returns, per start distance, {points within a voxel, points, worst error}.
func distanceRow(t *testing.T, net *Network, src distanceSource,
	organs []Organ) map[int][3]int {
	tmpl := prepare(t, src.img, src.name+" template", Image)
	ts, err := BuildTemplateSet(context.Background(), net, []Template{{Image: tmpl,
		Labels: prepare(t, src.lab, src.name+" labels", Labels)}}, organs, quiet)
	if err != nil {
		t.Fatal(err)
	}
	q := prepare(t, derived(src.img, src.shape, src.shift, false), src.name+" query", Image)
	d := lasShift(t, tmpl, q)
	var truth [][3]int
	for _, p := range templatePointList(ts) {
		truth = append(truth, [3]int{p[0] + d[0] + Pad, p[1] + d[1] + Pad, p[2] + d[2] + Pad})
	}
	// All starts of all distances in one refinement call (one point per start).
	res := &Points{}
	var dist []int
	var want [][3]int
	for _, r := range startDistances {
		dirs := [][3]int{{1, -1, 1}, {-1, 1, -1}}
		if r == 0 {
			dirs = dirs[:1]
		}
		for _, dir := range dirs {
			for _, tp := range truth {
				res.Initial = append(res.Initial, [3]int{tp[0] + r*dir[0], tp[1] + r*dir[1],
					tp[2] + r*dir[2]})
				dist = append(dist, r)
				want = append(want, tp)
			}
		}
	}
	rep := repeatSet(ts, len(res.Initial)/ts.NumPoints())
	if err := refine(context.Background(), hostSteps(net, rep, q, quiet), q, quiet, res); err != nil {
		t.Fatal(err)
	}
	out := map[int][3]int{}
	for i, f := range res.Final {
		e := 0
		for a := 0; a < 3; a++ {
			e = max(e, abs(f[a]-want[i][a]))
		}
		c := out[dist[i]]
		if e <= 1 {
			c[0]++
		}
		c[1]++
		c[2] = max(c[2], e)
		out[dist[i]] = c
	}
	return out
}

// repeatSet returns a template set whose points are ts's points n times over (kernels and
// positions repeated), for refining several starts of every point in one call.
func repeatSet(ts *TemplateSet, n int) *TemplateSet {
	r := *ts
	r.Organs = nil
	r.Positions = nil
	r.Kernels = [3][]float32{}
	for i := 0; i < n; i++ {
		for _, o := range ts.Organs {
			o.First += i * ts.NumPoints()
			r.Organs = append(r.Organs, o)
		}
		r.Positions = append(r.Positions, ts.Positions...)
		for s := 0; s < 3; s++ {
			r.Kernels[s] = append(r.Kernels[s], ts.Kernels[s]...)
		}
	}
	return &r
}

// openNet opens NAME.onnx and NAME-encoder.onnx (when present) in ONNX Runtime, or skips.
func openNet(t testing.TB, path string) *Network {
	t.Helper()
	opt := ort.Options{BatchInvariant: true}
	full, err := ort.Open(path, opt)
	if errors.Is(err, backend.ErrUnavailable) {
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { full.Close() })
	return &Network{Full: full, ModelSHA256: full.Manifest().SHA256}
}

// openNative opens the MedLAM model at path on the native CPU runtime (engine/native).
func openNative(t testing.TB, path string) *Network {
	t.Helper()
	m, err := native.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &Network{Full: m, ModelSHA256: m.Manifest().SHA256}
}

// readCTData reads the shared CT and its labels, or returns why it cannot.
func readCTData() (img, lab *volume.Volume, err error) {
	for _, p := range []string{ctPath, labelsPath} {
		if _, err := os.Stat(p); err != nil {
			return nil, nil, err
		}
	}
	a, err := readNifti(ctPath)
	if err != nil {
		return nil, nil, err
	}
	b, err := readNifti(labelsPath)
	return a, b, err
}

func readNifti(path string) (*volume.Volume, error) {
	f, err := nifti.Read(path, nifti.ReadOptions{})
	if err != nil {
		return nil, err
	}
	return f.Volume, nil
}
