package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// writeInfoFixture writes a 4x3x2 volume with voxels 0..23 and the given affine.
func writeInfoFixture(t *testing.T, name string, aff volume.Affine, spacing [3]float64) string {
	t.Helper()
	v := &volume.Volume{Data: make([]float32, 24), Shape: [3]int{4, 3, 2}, Spacing: spacing,
		Affine: aff}
	for i := range v.Data {
		v.Data[i] = float32(i)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := nifti.Write(p, v, nifti.WriteOptions{Datatype: nifti.Int16}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInfo(t *testing.T) {
	lps := volume.Affine{{-0.5, 0, 0, 10}, {0, -0.5, 0, 20}, {0, 0, 2, -5}, {0, 0, 0, 1}}
	asl := volume.Affine{{0, 0, -1, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 0, 1}}
	cases := []struct {
		name    string
		aff     volume.Affine
		spacing [3]float64
		orient  string
	}{
		{"lps.nii.gz", lps, [3]float64{0.5, 0.5, 2}, "LPS"},
		{"asl.nii", asl, [3]float64{1, 1, 1}, "ASL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeInfoFixture(t, c.name, c.aff, c.spacing)
			var out, errb bytes.Buffer
			if rc := run([]string{"info", p}, &out, &errb); rc != 0 {
				t.Fatalf("exit %d: %s", rc, errb.String())
			}
			text := out.String()
			for _, want := range []string{p, "4 x 3 x 2", "int16", c.orient, "min 0, max 23",
				"mean 11.5"} {
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q:\n%s", want, text)
				}
			}

			out.Reset()
			if rc := run([]string{"info", "--json", p, p}, &out, &errb); rc != 0 {
				t.Fatalf("exit %d: %s", rc, errb.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("%d JSON lines, want 2", len(lines))
			}
			var got struct {
				Path        string        `json:"path"`
				Shape       [3]int        `json:"shape"`
				Datatype    string        `json:"datatype"`
				Spacing     [3]float64    `json:"spacing"`
				Affine      volume.Affine `json:"affine"`
				Orientation string        `json:"orientation"`
				Min, Max    float64
				Mean        float64
			}
			if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
				t.Fatal(err)
			}
			if got.Path != p || got.Shape != [3]int{4, 3, 2} || got.Datatype != "int16" ||
				got.Spacing != c.spacing || got.Affine != c.aff || got.Orientation != c.orient ||
				got.Min != 0 || got.Max != 23 || got.Mean != 11.5 {
				t.Errorf("JSON %+v", got)
			}
		})
	}
}

// TestInfoJSONKeys checks the keys scripts rely on, and that NaN and infinite voxels are
// left out of min, max and mean (JSON cannot hold them) and counted instead.
func TestInfoJSONKeys(t *testing.T) {
	v := &volume.Volume{Data: []float32{-2, float32(math.Inf(1)), 4, float32(math.NaN()),
		1, float32(math.Inf(-1))}, Shape: [3]int{3, 2, 1}, Spacing: [3]float64{1, 1, 1},
		Affine: volume.Identity()}
	p := filepath.Join(t.TempDir(), "nonfinite.nii")
	if err := nifti.Write(p, v, nifti.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"info", "--json", p}, &out, &errb); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	for _, k := range []string{"shape", "datatype", "spacing", "affine", "orientation", "min",
		"max", "mean", "nonfinite"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON lacks key %q: %s", k, out.String())
		}
	}
	if got["min"] != -2.0 || got["max"] != 4.0 || got["mean"] != 1.0 ||
		got["nonfinite"] != 3.0 || got["datatype"] != "float32" {
		t.Errorf("JSON %s", out.String())
	}
	out.Reset()
	if rc := run([]string{"info", p}, &out, &errb); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	if !strings.Contains(out.String(), "min -2, max 4, mean 1 over the finite voxels; 3 NaN") {
		t.Errorf("text output:\n%s", out.String())
	}
}

func TestInfoErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.nii")
	if err := os.WriteFile(bad, []byte("not a nifti file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := writeInfoFixture(t, "good.nii", volume.Identity(), [3]float64{1, 1, 1})
	cases := []struct {
		name string
		args []string
		rc   int
		want string
	}{
		{"bad-file", []string{"info", good, bad}, 1, bad},
		{"missing", []string{"info", filepath.Join(dir, "absent.nii")}, 1, "absent.nii"},
		{"no-args", []string{"info"}, 2, "no file"},
		{"bad-flag", []string{"info", "--nope", good}, 2, "nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			rc := run(c.args, &out, &errb)
			if rc != c.rc || !strings.Contains(errb.String()+out.String(), c.want) {
				t.Errorf("exit %d, stderr %q: want exit %d naming %q", rc, errb.String(), c.rc,
					c.want)
			}
		})
	}
}
