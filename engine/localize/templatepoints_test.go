package localize

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sixRows is a valid chunk of six [k, j, i] rows.
var sixRows = [][3]int{{2, 5, 6}, {4, 1, 6}, {4, 5, 0}, {9, 5, 6}, {4, 8, 6}, {4, 5, 11}}

func pointsJSON(t *testing.T, tp any) string {
	t.Helper()
	b, err := json.Marshal(tp)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReadTemplatePointsErrors(t *testing.T) {
	organ := func(label int, name string, pts [][3]int) map[string]any {
		return map[string]any{"label": label, "name": name, "points": pts}
	}
	tmpl := func(img string, organs ...map[string]any) map[string]any {
		return map[string]any{"image": img, "organs": organs}
	}
	swapped := append([][3]int{}, sixRows...)
	swapped[0], swapped[3] = swapped[3], swapped[0]
	cases := []struct {
		name, text, want string
	}{
		{"not json", "{", "unexpected EOF"},
		{"version", `{"version": 2, "templates": []}`, "version 2"},
		{"no template", `{"version": 1, "templates": []}`, "templates: 0 entries"},
		{"unknown field", `{"version": 1, "templatez": []}`, "unknown field"},
		{"no image", pointsJSON(t, map[string]any{"version": 1,
			"templates": []any{tmpl("", organ(1, "a", sixRows))}}), "no image"},
		{"five rows", pointsJSON(t, map[string]any{"version": 1,
			"templates": []any{tmpl("a.nii", organ(1, "a", sixRows[:5]))}}),
			"points: 5 rows"},
		{"negative", pointsJSON(t, map[string]any{"version": 1, "templates": []any{
			tmpl("a.nii", organ(1, "a", [][3]int{{-1, 0, 0}, {0, 0, 0}, {0, 0, 0},
				{0, 0, 0}, {0, 0, 0}, {0, 0, 0}}))}}), "points[0]: point [-1 0 0]"},
		{"min beyond max", pointsJSON(t, map[string]any{"version": 1,
			"templates": []any{tmpl("a.nii", organ(1, "a", swapped))}}),
			"row 0 (min along k) is at 9"},
		{"label zero", pointsJSON(t, map[string]any{"version": 1,
			"templates": []any{tmpl("a.nii", organ(0, "a", sixRows))}}), "label 0"},
		{"twice", pointsJSON(t, map[string]any{"version": 1, "templates": []any{
			tmpl("a.nii", organ(1, "a", sixRows), organ(1, "b", sixRows))}}),
			"listed twice"},
		{"both", pointsJSON(t, map[string]any{"version": 1, "templates": []any{
			tmpl("a.nii", map[string]any{"label": 1, "points": sixRows,
				"chunks": [][][3]int{sixRows}})}}), "exactly one of"},
		{"seven chunks", pointsJSON(t, map[string]any{"version": 1, "templates": []any{
			tmpl("a.nii", map[string]any{"label": 1, "chunks": [][][3]int{sixRows, sixRows,
				sixRows, sixRows, sixRows, sixRows, sixRows}})}}), "chunks: 7 entries"},
		{"organ missing", pointsJSON(t, map[string]any{"version": 1, "templates": []any{
			tmpl("a.nii", organ(1, "a", sixRows), organ(2, "b", sixRows)),
			tmpl("b.nii", organ(1, "a", sixRows))}}), "organ label 2 of templates[0]"},
		{"extra organ", pointsJSON(t, map[string]any{"version": 1, "templates": []any{
			tmpl("a.nii", organ(1, "a", sixRows)),
			tmpl("b.nii", organ(1, "a", sixRows), organ(3, "c", sixRows))}}),
			"absent from templates[0]"},
		{"chunk count", pointsJSON(t, map[string]any{"version": 1, "templates": []any{
			tmpl("a.nii", organ(1, "a", sixRows)),
			tmpl("b.nii", map[string]any{"label": 1, "name": "a",
				"chunks": [][][3]int{sixRows, sixRows}})}}), "2 chunks, templates[0] has 1"},
		{"name", pointsJSON(t, map[string]any{"version": 1, "templates": []any{
			tmpl("a.nii", organ(1, "a", sixRows)), tmpl("b.nii", organ(1, "z", sixRows))}}),
			`name "z"`},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".json")
			if err := os.WriteFile(p, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadTemplatePoints(p)
			if err == nil {
				t.Fatalf("no error for %s", c.text)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q should name the file and contain %q", err, c.want)
			}
		})
	}
}

// TestTemplatePointsMatchLabels gives the scene's label-derived points (WPL and SPL) back
// through a points file and checks the template set is the same one.
func TestTemplatePointsMatchLabels(t *testing.T) {
	net := fakeNet(t)
	s := scene{dims: [3]int{80, 80, 80}}
	img := s.image(t)
	for _, mode := range []Mode{WPL, SPL} {
		t.Run(string(mode), func(t *testing.T) {
			want := buildSet(t, net, mode, 4, 8)
			// The scene is a 3 mm LAS volume, so file [k, j, i] is grid (z, y, x).
			doc := TemplatePoints{Version: 1, Templates: []TemplatePointSet{{
				Image: "image.nii.gz"}}}
			for _, o := range want.Organs {
				op := OrganPointSet{Label: o.Label, Name: o.Name}
				pts := o.TemplatePoints[0]
				if mode == WPL {
					op.Points = pts
				} else {
					for c := 0; c < o.Chunks; c++ {
						op.Chunks = append(op.Chunks, pts[6*c:6*c+6])
					}
				}
				doc.Templates[0].Organs = append(doc.Templates[0].Organs, op)
			}
			p := filepath.Join(t.TempDir(), "points.json")
			if err := os.WriteFile(p, []byte(pointsJSON(t, doc)), 0o644); err != nil {
				t.Fatal(err)
			}
			tp, err := ReadTemplatePoints(p)
			if err != nil {
				t.Fatal(err)
			}
			if tp.Mode() != mode {
				t.Errorf("mode %v, want %v", tp.Mode(), mode)
			}
			if got := tp.ImagePath(0); got != filepath.Join(filepath.Dir(p), "image.nii.gz") {
				t.Errorf("image path %s", got)
			}
			tmpl, err := tp.Template(0, img)
			if err != nil {
				t.Fatal(err)
			}
			got, err := BuildTemplateSet(context.Background(), net, []Template{tmpl},
				tp.Organs(), Config{Mode: tp.Mode(), BatchSize: 3, SliceInterval: 8,
					Logger: quiet.Logger})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("template set from points differs from the label-derived one:\n"+
					"%+v\n%+v", got.Organs, want.Organs)
			}
		})
	}
}

// TestTemplatePointsReoriented maps rows given on an RPI file at 1.5 mm to the 3 mm LAS grid:
// each row must land on the grid voxel whose source is nearest, in the grid's row order.
func TestTemplatePointsReoriented(t *testing.T) {
	v, err := volumeRPI(40, 30, 20)
	if err != nil {
		t.Fatal(err)
	}
	g := prepare(t, v, "rpi.nii.gz", Image)
	// [k, j, i] rows: min k, j, i then max k, j, i of an organ in the file.
	rows := [][3]int{{2, 10, 20}, {8, 4, 20}, {8, 10, 6}, {16, 10, 20}, {8, 26, 20},
		{8, 10, 38}}
	dst := make([][3]int, 6)
	if err := g.rowsFromSource(rows, dst); err != nil {
		t.Fatal(err)
	}
	// RPI -> LAS flips i (R to L) and j (P to A) and keeps k; each grid row must still be
	// the extreme along its own grid axis.
	for a := 0; a < 3; a++ {
		if dst[a][a] > dst[3+a][a] {
			t.Errorf("axis %d: min row %v beyond max row %v", a, dst[a], dst[3+a])
		}
	}
	for r, p := range dst {
		back := g.toSource([3]int{p[0] + Pad, p[1] + Pad, p[2] + Pad})
		found := false
		for _, src := range rows {
			ijk := [3]int{src[2], src[1], src[0]}
			ok := true
			for a := 0; a < 3; a++ {
				ok = ok && abs(back[a]-ijk[a]) <= 1 // 3 mm grid over 1.5 mm voxels
			}
			found = found || ok
		}
		if !found {
			t.Errorf("grid row %d %v maps back to %v, none of the given points", r, p, back)
		}
	}
	if err := g.rowsFromSource([][3]int{{2, 10, 40}, {8, 4, 20}, {8, 10, 6}, {16, 10, 20},
		{8, 26, 20}, {8, 10, 38}}, dst); err == nil ||
		!strings.Contains(err.Error(), "outside the image's grid") {
		t.Errorf("point outside the grid: error %v", err)
	}
}
