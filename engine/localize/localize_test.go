package localize

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
)

// scene is a textured body (values in [0.1, 1)) with two box organs, shifted by d voxels
// (z, y, x) inside a 3 mm LAS volume of dims (z, y, x).
type scene struct {
	dims [3]int
	d    [3]int
}

var sceneTexture = newTexture(7, [3]int{80, 80, 80})

// organs of the scene in texture coordinates (z, y, x), inclusive.
var sceneOrgans = []struct {
	label  int
	lo, hi [3]int
}{
	{1, [3]int{30, 30, 28}, [3]int{44, 40, 36}},
	{2, [3]int{20, 44, 40}, [3]int{50, 52, 50}},
}

func (s scene) image(t testing.TB) *Grid {
	v := lasVolume(t, s.dims[2], s.dims[1], s.dims[0], func(z, y, x int) float32 {
		return sceneTexture.at(z-s.d[0], y-s.d[1], x-s.d[2])
	})
	return prepare(t, v, "image.nii.gz", Image)
}

func (s scene) labels(t testing.TB) *Grid {
	v := lasVolume(t, s.dims[2], s.dims[1], s.dims[0], func(z, y, x int) float32 {
		p := [3]int{z - s.d[0], y - s.d[1], x - s.d[2]}
		for _, o := range sceneOrgans {
			in := true
			for a := 0; a < 3; a++ {
				in = in && p[a] >= o.lo[a] && p[a] <= o.hi[a]
			}
			if in {
				return float32(o.label)
			}
		}
		return 0
	})
	return prepare(t, v, "labels.nii.gz", Labels)
}

var sceneOrganList = []Organ{{Label: 1, Name: "one"}, {Label: 2, Name: "two"}}

func buildSet(t testing.TB, net *Network, mode Mode, batch, interval int) *TemplateSet {
	s := scene{dims: [3]int{80, 80, 80}}
	ts, err := BuildTemplateSet(context.Background(), net,
		[]Template{{Image: s.image(t), Labels: s.labels(t)}}, sceneOrganList,
		Config{Mode: mode, BatchSize: batch, SliceInterval: interval, Logger: quiet.Logger})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestTemplateSetBatchAndFile(t *testing.T) {
	net := fakeNet(t)
	for _, mode := range []Mode{WPL, SPL} {
		t.Run(string(mode), func(t *testing.T) {
			a := buildSet(t, net, mode, 1, 0)
			b := buildSet(t, net, mode, 5, 0)
			if !reflect.DeepEqual(a, b) {
				t.Fatal("template sets differ between batch sizes 1 and 5")
			}
			wantPts := 12
			if mode == SPL {
				wantPts = 6 * (6 + 6) // extents 14 and 30 at interval 2: 6 chunks each
			}
			if a.NumPoints() != wantPts {
				t.Errorf("%d points, want %d", a.NumPoints(), wantPts)
			}
			path := filepath.Join(t.TempDir(), "set.mlts")
			if err := a.Save(path); err != nil {
				t.Fatal(err)
			}
			c, err := LoadTemplateSet(path, net.ModelSHA256)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, c) {
				t.Error("template set changed through Save and Load")
			}
			if _, err := LoadTemplateSet(path, "another"); !errors.Is(err, ErrOtherModel) {
				t.Errorf("loading with another model: %v, want ErrOtherModel", err)
			}
			raw, _ := os.ReadFile(path)
			for _, cut := range []int{3, 20, len(raw) - 4} {
				bad := filepath.Join(t.TempDir(), "bad.mlts")
				os.WriteFile(bad, raw[:cut], 0o644)
				if _, err := LoadTemplateSet(bad, ""); err == nil ||
					!strings.Contains(err.Error(), bad) {
					t.Errorf("truncated to %d bytes: error %v should name the file", cut, err)
				}
			}
		})
	}
}

func TestTemplateMissingOrgan(t *testing.T) {
	s := scene{dims: [3]int{80, 80, 80}}
	_, err := BuildTemplateSet(context.Background(), fakeNet(t),
		[]Template{{Image: s.image(t), Labels: s.labels(t)}},
		[]Organ{{Label: 1, Name: "one"}, {Label: 9, Name: "pancreas"}}, Config{})
	if err == nil || !strings.Contains(err.Error(), "pancreas") ||
		!strings.Contains(err.Error(), "labels.nii.gz") {
		t.Errorf("error %v should name the absent organ and the label file", err)
	}
}

// quiet is the default configuration with logs discarded.
var quiet = Config{Logger: slog.New(slog.DiscardHandler)}.withDefaults()

// TestRefineRecoversShift starts the refinement at known offsets from each organ's true
// points in a shifted query and checks it returns to them within a voxel.
func TestRefineRecoversShift(t *testing.T) {
	net := fakeNet(t)
	ts := buildSet(t, net, WPL, 4, 0)
	shifts := [][3]int{{5, -3, 7}}
	// The fake's coarse features sample the patch on a 4- and 2-voxel grid, so they match
	// only when the start is off by multiples of 4; the real network's behaviour at other
	// offsets is checked with the ONNX model.
	starts := [][3]int{{8, -4, 12}, {-12, 16, -8}, {20, 0, -20}}
	for _, d := range shifts {
		q := scene{dims: [3]int{80, 80, 80}, d: d}.image(t)
		for _, e := range starts {
			res := &Points{}
			for _, o := range ts.Organs {
				for _, p := range o.TemplatePoints[0] {
					res.Initial = append(res.Initial, [3]int{p[0] + d[0] + Pad + e[0],
						p[1] + d[1] + Pad + e[1], p[2] + d[2] + Pad + e[2]})
				}
			}
			if err := refine(context.Background(), hostSteps(net, ts, q, quiet), q, quiet,
				res); err != nil {
				t.Fatal(err)
			}
			i := 0
			for _, o := range ts.Organs {
				for _, p := range o.TemplatePoints[0] {
					want := [3]int{p[0] + d[0] + Pad, p[1] + d[1] + Pad, p[2] + d[2] + Pad}
					for a := 0; a < 3; a++ {
						if diff := res.Final[i][a] - want[a]; diff < -1 || diff > 1 {
							t.Errorf("shift %v start %v: organ %v point %d: got %v, want %v",
								d, e, o.Organ, i, res.Final[i], want)
							break
						}
					}
					i++
				}
			}
		}
	}
}

// TestLocalizeDeterministic runs the whole query twice with batch sizes 1 and 7 and
// checks identical results, and different seeds draw different crops.
func TestLocalizeDeterministic(t *testing.T) {
	net := fakeNet(t)
	ts := buildSet(t, net, SPL, 8, 8) // z extents 14 and 30: 1 and 3 chunks
	q := scene{dims: [3]int{80, 80, 80}, d: [3]int{2, -3, 4}}.image(t)
	ctx := context.Background()
	r1, p1, err := Localize(ctx, net, ts, q, Config{BatchSize: 1, Seed: 3, Logger: quiet.Logger})
	if err != nil {
		t.Fatal(err)
	}
	r7, p7, err := Localize(ctx, net, ts, q, Config{BatchSize: 7, Seed: 3, Logger: quiet.Logger})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r1, r7) || !reflect.DeepEqual(p1, p7) {
		t.Error("results differ between batch sizes 1 and 7")
	}
	p2 := &Points{}
	cfg4 := Config{Seed: 4, Logger: quiet.Logger}.withDefaults()
	if err := coarse(ctx, hostSteps(net, nil, q, cfg4), q, cfg4, p2); err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(p1.CoarseCentres, p2.CoarseCentres) {
		t.Error("seeds 3 and 4 drew the same coarse crops")
	}
	if len(r1.Organs) != 2 || len(r1.Organs[0].Chunks) != 0 || len(r1.Organs[1].Chunks) != 3 {
		t.Fatalf("SPL result: %+v; want 2 organs, of 1 and 3 chunks", r1.Organs)
	}
	for _, o := range r1.Organs {
		if !o.Box.Valid() {
			t.Errorf("organ %v: invalid box %v", o.Organ, o.Box)
		}
		for a := 0; a < 3; a++ {
			if o.Box.Min[a] < 0 || o.Box.Max[a] >= r1.Shape[a] {
				t.Errorf("organ %v: box %v not clipped to %v", o.Organ, o.Box, r1.Shape)
			}
		}
	}
	other := *net
	other.ModelSHA256 = "other"
	if _, _, err := Localize(context.Background(), &other, ts, q, Config{}); !errors.Is(err,
		ErrOtherModel) {
		t.Errorf("query with another model: %v, want ErrOtherModel", err)
	}
}

// TestBoxesMapBack checks the mapping of refined points to the query file's grid through
// the reorientation and the resampling, on a query stored RPI at 1.5 mm.
func TestBoxesMapBack(t *testing.T) {
	ts := &TemplateSet{Mode: WPL, Organs: []OrganPoints{{Organ: Organ{Label: 1}, Chunks: 1}}}
	// A 40 x 30 x 20 (i, j, k) RPI volume at 1.5 mm: i towards Right, j Posterior,
	// k Inferior. Its LAS grid flips all three axes; the 3 mm grid halves them.
	v, err := volumeRPI(40, 30, 20)
	if err != nil {
		t.Fatal(err)
	}
	g := prepare(t, v, "rpi.nii.gz", Image)
	if d := g.Dims(); d != [3]int{10, 15, 20} {
		t.Fatalf("3 mm grid %v, want [10 15 20]", d)
	}
	// Refined rows in the padded (z, y, x) frame: box z 2..7, y 3..9, x 4..30 (x beyond
	// the grid's 20 to exercise clipping).
	rows := [][3]int{{2, 5, 5}, {4, 3, 5}, {4, 5, 4}, {7, 5, 5}, {4, 9, 5}, {4, 5, 30}}
	for i := range rows {
		for a := 0; a < 3; a++ {
			rows[i][a] += Pad
		}
	}
	r, err := Boxes(ts, g, &Points{Final: rows}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// LAS 3 mm (x, y, z) = (4..30, 3..9, 2..7) -> LAS 1.5 mm (8..60, 6..18, 4..14) ->
	// RPI: i = 39 - x, j = 29 - y, k = 19 - z.
	want := eval.Box{Min: [3]int{0, 29 - 18, 19 - 14}, Max: [3]int{39 - 8, 29 - 6, 19 - 4}}
	if got := r.Organs[0].Box; got != want || !r.Organs[0].Clipped {
		t.Errorf("box %v clipped %v, want %v clipped", got, r.Organs[0].Clipped, want)
	}
	w := r.Organs[0].World
	// World x of voxel i is 1.5*i (R+), y is -1.5*j, z is -1.5*k.
	if w.Min[0] != 0 || w.Max[0] != 1.5*31 || w.Min[1] != -1.5*23 || w.Max[2] != -1.5*5 {
		t.Errorf("world box %+v", w)
	}
}

// TestTemplateLabelsOtherGrid: a label map whose grid differs from its image's, in shape or
// in position, is refused naming both files, even where the resampled grids agree.
func TestTemplateLabelsOtherGrid(t *testing.T) {
	s := scene{dims: [3]int{80, 80, 80}}
	img := s.image(t)
	shifted := *s.labels(t)
	shifted.srcAffine[0][3] += 6 // two voxels along x
	smaller := *scene{dims: [3]int{80, 80, 79}}.labels(t)
	for _, tc := range []struct {
		name   string
		labels *Grid
		ok     bool
	}{
		{"same grid", s.labels(t), true},
		{"shifted", &shifted, false},
		{"other shape", &smaller, false},
	} {
		_, err := BuildTemplateSet(context.Background(), fakeNet(t),
			[]Template{{Image: img, Labels: tc.labels}}, sceneOrganList, quiet)
		if tc.ok != (err == nil) {
			t.Errorf("%s: error %v", tc.name, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "labels.nii.gz") ||
			!strings.Contains(err.Error(), "image.nii.gz")) {
			t.Errorf("%s: error %v should name both files", tc.name, err)
		}
	}
}
