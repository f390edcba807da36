package localize

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// TestPrepareReference checks that Reference resampling runs the reference kernels on the
// LAS volume, on the CPU whatever the kernels given, and records itself on the grid.
func TestPrepareReference(t *testing.T) {
	rpi, err := volumeRPI(11, 9, 7)
	if err != nil {
		t.Fatal(err)
	}
	las, _, err := rpi.Reorient(volume.Canonical)
	if err != nil {
		t.Fatal(err)
	}
	f := [3]float64{0.5, 0.5, 0.5} // 1.5 mm to 3 mm

	rec := &recKernels{}
	g, err := PrepareWith(Config{Kernels: rec, Resampling: Reference}, rpi, "ct.nii.gz", Image)
	if err != nil {
		t.Fatal(err)
	}
	shape, _ := kernels.ZoomShape(las.Shape, f)
	want := make([]float32, shape[0]*shape[1]*shape[2])
	if err := kernels.ZoomCubic(want, shape, las.Data, las.Shape); err != nil {
		t.Fatal(err)
	}
	if err := kernels.NormalizeHU(want, want); err != nil {
		t.Fatal(err)
	}
	if g.Vol.Shape != shape || !reflect.DeepEqual(g.Vol.Data, want) {
		t.Errorf("image: shape %v, want scipy's %v, or other values", g.Vol.Shape, shape)
	}
	if g.Resampling() != Reference {
		t.Errorf("grid says %s resampling", g.Resampling())
	}
	if rec.calls["trilinear"] != 0 || rec.calls["nearest"] != 0 || rec.calls["hu"] != 1 {
		t.Errorf("kernel calls %v: want only the HU map on the given kernels", rec.calls)
	}

	lab, err := volumeRPI(11, 9, 7)
	if err != nil {
		t.Fatal(err)
	}
	for i := range lab.Data {
		lab.Data[i] = float32(i / 40 % 3)
	}
	lasLab, _, err := lab.Reorient(volume.Canonical)
	if err != nil {
		t.Fatal(err)
	}
	gl, err := PrepareWith(Config{Resampling: Reference}, lab, "labels.nii.gz", Labels)
	if err != nil {
		t.Fatal(err)
	}
	shape, _ = kernels.ScaleShape(las.Shape, f)
	want = make([]float32, shape[0]*shape[1]*shape[2])
	if err := kernels.ResampleLabelsOneHot(want, shape, lasLab.Data, lasLab.Shape, f); err != nil {
		t.Fatal(err)
	}
	if gl.Vol.Shape != shape || !reflect.DeepEqual(gl.Vol.Data, want) {
		t.Errorf("labels: shape %v, want torch's %v, or other values", gl.Vol.Shape, shape)
	}
	// Boxes map back with the nominal ratio, as the reference does.
	if g.ratio != [3]float64{2, 2, 2} || gl.ratio != g.ratio {
		t.Errorf("ratios %v and %v, want 2 along every axis", g.ratio, gl.ratio)
	}

	if _, err := PrepareWith(Config{Resampling: "cubic"}, rpi, "ct.nii.gz", Image); err == nil ||
		!strings.Contains(err.Error(), `"cubic"`) {
		t.Errorf("unknown resampling: error %v", err)
	}
}

// templateSetHeaderOf returns the JSON header of a saved template set.
func templateSetHeaderOf(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint32(raw[len(templateSetMagic):])
	start := len(templateSetMagic) + 4
	var h map[string]any
	if err := json.NewDecoder(bytes.NewReader(raw[start : start+int(n)])).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestTemplateSetResampling checks that a template set records the resampling of its
// templates, keeps the old file format for Linear ones, and that queries must match it.
func TestTemplateSetResampling(t *testing.T) {
	net := fakeNet(t)
	s := scene{dims: [3]int{80, 80, 80}}
	prep := func(v *volume.Volume, name string, k Kind, r Resampling) *Grid {
		g, err := PrepareWith(Config{Resampling: r}, v, name, k)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	img, lab := s.image(t).Vol, s.labels(t).Vol
	for _, r := range []Resampling{Linear, Reference} {
		t.Run(string(r), func(t *testing.T) {
			ts, err := BuildTemplateSet(context.Background(), net, []Template{{
				Image:  prep(img, "image.nii.gz", Image, r),
				Labels: prep(lab, "labels.nii.gz", Labels, r)}}, sceneOrganList, quiet)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "set.mlts")
			if err := ts.Save(path); err != nil {
				t.Fatal(err)
			}
			h := templateSetHeaderOf(t, path)
			wantVersion, wantField := 1.0, false
			if r == Reference {
				wantVersion, wantField = 2, true
			}
			if _, has := h["resampling"]; h["version"] != wantVersion || has != wantField {
				t.Errorf("header version %v, resampling field %v: want %v, %v", h["version"],
					has, wantVersion, wantField)
			}
			back, err := LoadTemplateSet(path, net.ModelSHA256)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ts, back) {
				t.Error("template set changed through Save and Load")
			}

			other := Linear
			if r == Linear {
				other = Reference
			}
			q := prep(img, "query.nii.gz", Image, other)
			_, err = Locate(context.Background(), net, back, q, quiet)
			if err == nil || !strings.Contains(err.Error(), "--resample "+string(r)) ||
				!strings.Contains(err.Error(), "query.nii.gz") {
				t.Errorf("query prepared with %s: error %v should name the query and the "+
					"flag value", other, err)
			}
			if _, err := Locate(context.Background(), net, back,
				prep(img, "query.nii.gz", Image, r), quiet); err != nil {
				t.Errorf("query prepared alike: %v", err)
			}

			_, err = BuildTemplateSet(context.Background(), net, []Template{
				{Image: prep(img, "a.nii.gz", Image, r), Labels: prep(lab, "la.nii.gz", Labels, r)},
				{Image: prep(img, "b.nii.gz", Image, other),
					Labels: prep(lab, "lb.nii.gz", Labels, other)},
			}, sceneOrganList, quiet)
			if err == nil || !strings.Contains(err.Error(), "b.nii.gz") {
				t.Errorf("templates prepared differently: error %v should name the odd one", err)
			}
		})
	}
}

// rewriteHeader returns the saved set at path with its JSON header passed through edit.
func rewriteHeader(t *testing.T, path string, edit func(h map[string]any)) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := templateSetHeaderOf(t, path)
	edit(h)
	hdr, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	start := len(templateSetMagic) + 4
	old := int(binary.LittleEndian.Uint32(raw[len(templateSetMagic):]))
	out := append([]byte(templateSetMagic), binary.LittleEndian.AppendUint32(nil,
		uint32(len(hdr)))...)
	out = append(out, hdr...)
	return append(out, raw[start+old:]...)
}

// TestTemplateSetResamplingHeader checks the file rules: the version follows the
// resampling, an explicit "linear" is Linear, and headers that break the rule or name an
// unknown resampling are refused.
func TestTemplateSetResamplingHeader(t *testing.T) {
	net := fakeNet(t)
	ts := buildSet(t, net, WPL, 4, 0)
	dir := t.TempDir()
	path := filepath.Join(dir, "set.mlts")
	if err := ts.Save(path); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(h map[string]any)
		want string // "" for a file that loads
	}{
		{"explicit linear", func(h map[string]any) { h["resampling"] = "linear" }, ""},
		{"reference in version 1", func(h map[string]any) { h["resampling"] = "reference" },
			"format version 1 does not match"},
		{"linear in version 2", func(h map[string]any) { h["version"] = 2 },
			"format version 2 does not match"},
		{"unknown", func(h map[string]any) { h["resampling"] = "cubic" }, `"cubic"`},
		{"version 3", func(h map[string]any) { h["version"] = 3 }, "reads 1 to 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := filepath.Join(dir, "edited.mlts")
			if err := os.WriteFile(bad, rewriteHeader(t, path, c.edit), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := LoadTemplateSet(bad, net.ModelSHA256)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := got.CheckResampling(""); err != nil {
					t.Errorf("explicit linear set refuses linear queries: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), bad) {
				t.Errorf("error %v, want one naming the file and containing %q", err, c.want)
			}
		})
	}
}
