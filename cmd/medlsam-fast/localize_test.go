package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/phantom"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

func TestParseOrgans(t *testing.T) {
	names := filepath.Join(t.TempDir(), "names.json")
	os.WriteFile(names, []byte(`{"1": "spleen", "5": "liver"}`), 0o644)
	cases := []struct {
		args    []string
		names   string
		want    []localize.Organ
		wantErr string
	}{
		{[]string{"5", "spleen"}, names, []localize.Organ{{Label: 5, Name: "liver"},
			{Label: 1, Name: "spleen"}}, ""},
		{[]string{"LIVER", "7"}, names, []localize.Organ{{Label: 5, Name: "liver"},
			{Label: 7}}, ""},
		{[]string{"3"}, "", []localize.Organ{{Label: 3}}, ""},
		{[]string{"pancreas"}, names, nil, `organ "pancreas"`},
		{[]string{"liver"}, "", nil, "give --label-names"},
		{nil, names, nil, "no --organs"},
	}
	for _, c := range cases {
		got, err := parseOrgans(c.args, c.names)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("parseOrgans(%v): error %v, want one containing %q", c.args, err,
					c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseOrgans(%v): %v", c.args, err)
			continue
		}
		a, _ := json.Marshal(got)
		b, _ := json.Marshal(c.want)
		if !bytes.Equal(a, b) {
			t.Errorf("parseOrgans(%v) = %s, want %s", c.args, a, b)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"x": "liver"}`), 0o644)
	if _, err := parseOrgans([]string{"1"}, bad); err == nil ||
		!strings.Contains(err.Error(), bad) {
		t.Errorf("bad label-name key: error %v should name the file", err)
	}
}

func TestLocalizeUsage(t *testing.T) {
	cases := [][]string{
		{},        // no query, no --save-templates
		{"q.nii"}, // no templates
		{"--template", "a:b", "--templates-file", "s", "q.nii"}, // both
		{"--template", "a:b", "--mode", "XYZ", "q.nii"},
		{"a.nii", "b.nii", "--template", "a:b"},
		{"--template", "a:b", "--template-points", "p.json", "q.nii"},
		{"--template-points", "p.json", "--templates-file", "s", "q.nii"},
		{"--template", "a:b", "--resample", "cubic", "q.nii"},
	}
	for _, args := range cases {
		var out bytes.Buffer
		err := runLocalize(args, &out)
		if !errors.Is(err, errUsage) {
			t.Errorf("localize %v: %v, want a usage error", args, err)
		}
	}
}

// TestLocalizeTemplatePointsTiny runs the subcommand with the tiny models on a phantom: the
// template from a points file, the template set saved, then loaded for a second run that
// must give the same JSON.
func TestLocalizeTemplatePointsTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: tiny MedLAM over about 20 patches")
	}
	ph, err := phantom.Generate(phantom.Config{Shape: [3]int{80, 80, 70},
		Spacing: [3]float64{3, 3, 3}, Seed: 2, Noise: 20})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "ct.nii.gz")
	if err := nifti.Write(img, ph.Image, nifti.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	ext, err := ph.ExtremePoints(1)
	if err != nil {
		t.Fatal(err)
	}
	// Extreme points (i, j, k), rows min i, j, k then max: the file wants [k, j, i] rows
	// min k, j, i then max k, j, i.
	var rows [][3]int
	for _, r := range []int{2, 1, 0, 5, 4, 3} {
		p := ext[r]
		rows = append(rows, [3]int{p[2], p[1], p[0]})
	}
	doc := map[string]any{"version": 1, "templates": []any{map[string]any{
		"image": "ct.nii.gz", "organs": []any{map[string]any{"label": 1, "name": "spleen",
			"points": rows}}}}}
	b, _ := json.Marshal(doc)
	points := filepath.Join(dir, "points.json")
	os.WriteFile(points, b, 0o644)
	set := filepath.Join(dir, "set.mlts")
	var out1, out2 bytes.Buffer
	args := []string{"--models", "../../testdata/models", "--template-points", points,
		"--save-templates", set, img}
	if err := runLocalize(args, &out1); err != nil {
		if errors.Is(err, backend.ErrUnavailable) {
			t.Skipf("ONNX Runtime unavailable: %v", err)
		}
		t.Fatal(err)
	}
	args = []string{"--models", "../../testdata/models", "--templates-file", set, img}
	if err := runLocalize(args, &out2); err != nil {
		t.Fatal(err)
	}
	if out1.String() != out2.String() {
		t.Errorf("saved template set gives another result:\n%s\n%s", out1.String(),
			out2.String())
	}
	var res localize.Result
	if err := json.Unmarshal(out1.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Organs) != 1 || res.Organs[0].Name != "spleen" || res.Query != img {
		t.Errorf("result %+v", res)
	}
}

// TestLocalizeResampleReference runs localize with --resample reference on a phantom at
// 1.5 x 1.5 x 2.5 mm, saves the template set, and checks that a query prepared with the
// default resampling is refused with the flag to use.
func TestLocalizeResampleReference(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: tiny MedLAM over about 20 patches")
	}
	ph, err := phantom.Generate(phantom.Config{Shape: [3]int{120, 120, 90},
		Spacing: [3]float64{1.5, 1.5, 2.5}, Seed: 3, Noise: 20})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img, lab := filepath.Join(dir, "ct.nii.gz"), filepath.Join(dir, "labels.nii.gz")
	for p, v := range map[string]*volume.Volume{img: ph.Image, lab: ph.Labels} {
		if err := nifti.Write(p, v, nifti.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	set := filepath.Join(dir, "set.mlts")
	var out bytes.Buffer
	args := []string{"--models", "../../testdata/models", "--template", img + ":" + lab,
		"--organs", "1", "--resample", "Reference", "--save-templates", set, img}
	if err := runLocalize(args, &out); err != nil {
		if errors.Is(err, backend.ErrUnavailable) {
			t.Skipf("ONNX Runtime unavailable: %v", err)
		}
		t.Fatal(err)
	}
	var res localize.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Organs) != 1 {
		t.Fatalf("result %s: %v", out.String(), err)
	}
	args = []string{"--models", "../../testdata/models", "--templates-file", set, img}
	err = runLocalize(args, &out)
	if err == nil || !strings.Contains(err.Error(), "--resample reference") ||
		!strings.Contains(err.Error(), set) {
		t.Errorf("default resampling against a reference template set: %v; want an error "+
			"naming the set and the flag", err)
	}
}
