package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/ort"
)

// TestSegmentBoxes runs segment standalone on a boxes file with the tiny SAM models.
func TestSegmentBoxes(t *testing.T) {
	if _, err := ort.FindLibrary(""); err != nil {
		t.Skipf("ONNX Runtime library not found (%v); run bash build/install-onnxruntime.sh",
			err)
	}
	dir := t.TempDir()
	shape := [3]int{64, 56, 6}
	q := filepath.Join(dir, "q.nii.gz")
	writeVol(t, q, shape, func(i, j, k int) float32 { return float32((i*7+j*3)%900) - 300 })
	loc := localize.Result{Shape: shape, Organs: []localize.OrganBox{
		{Organ: localize.Organ{Label: 4, Name: "a"},
			BoxOnGrid: localize.BoxOnGrid{Box: eval.Box{Min: [3]int{5, 5, 1}, Max: [3]int{30, 30, 2}}}},
		{Organ: localize.Organ{Label: 7, Name: "b"},
			BoxOnGrid: localize.BoxOnGrid{Box: eval.Box{Min: [3]int{20, 20, 2}, Max: [3]int{50, 40, 4}}}},
	}}
	b, _ := json.Marshal(loc)
	boxes := filepath.Join(dir, "boxes.json")
	if err := os.WriteFile(boxes, b, 0o644); err != nil {
		t.Fatal(err)
	}
	models := filepath.Join("..", "..", "testdata", "models")
	out, errs, code := runCmd(t, "segment", "--boxes", boxes, "--models", models,
		"--sam-name", "sam_tiny", "--threads", "2", "--per-organ", "-d", dir, q)
	if code != 0 {
		t.Fatalf("segment: exit %d: %s", code, errs)
	}
	var rep segmentReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	s := rep.Queries[0].Segmentation
	if s.SlicesEncoded != 4 || s.DecoderCalls != 4 || s.BoxesDecoded != 5 ||
		len(rep.Queries[0].Output) != 3 {
		t.Errorf("report: %s", out)
	}
	m, err := nifti.Read(rep.Queries[0].Output[0], nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Volume.Shape != shape {
		t.Errorf("mask shape %v, want %v", m.Volume.Shape, shape)
	}
	for i, v := range m.Volume.Data {
		if v != 0 && v != 4 && v != 7 {
			t.Fatalf("voxel %d has label %v", i, v)
		}
	}
}

// TestSegmentBadInput checks that bad queries and boxes files are refused with the right exit
// code and a message naming the problem, and that no mask is left behind.
func TestSegmentBadInput(t *testing.T) {
	_, ortErr := ort.FindLibrary("")
	dir := t.TempDir()
	shape := [3]int{32, 30, 4}
	q := filepath.Join(dir, "q.nii.gz")
	writeVol(t, q, shape, func(i, j, k int) float32 { return float32(i*j) - 200 })
	other := filepath.Join(dir, "sub", "q.nii.gz")
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	writeVol(t, other, shape, func(i, j, k int) float32 { return 0 })
	writeBoxes := func(name string, boxes ...eval.Box) string {
		r := localize.Result{Shape: shape}
		for n, b := range boxes {
			r.Organs = append(r.Organs, localize.OrganBox{Organ: localize.Organ{Label: n + 1},
				BoxOnGrid: localize.BoxOnGrid{Box: b}})
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	outside := writeBoxes("outside.json", eval.Box{Min: [3]int{1, 1, 1}, Max: [3]int{8, 8, 9}})
	garbled := filepath.Join(dir, "garbled.json")
	if err := os.WriteFile(garbled, []byte(`{"shape": [32, 30`), 0o644); err != nil {
		t.Fatal(err)
	}
	models := filepath.Join("..", "..", "testdata", "models")
	for _, tc := range []struct {
		name    string
		args    []string
		needORT bool
		code    int
		want    string
	}{
		{"same mask twice", []string{"--boxes", outside, q, other}, false, 2, "exactly one"},
		{"same mask twice, templates", []string{"--templates-file", "t", q, other}, false, 2,
			"would both write"},
		{"box outside", []string{"--boxes", outside, q}, true, 1, "outside.json"},
		{"garbled boxes", []string{"--boxes", garbled, q}, true, 1, "garbled.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needORT && ortErr != nil {
				t.Skipf("ONNX Runtime library not found (%v)", ortErr)
			}
			outDir := filepath.Join(t.TempDir(), "masks")
			args := append([]string{"segment", "--models", models, "--sam-name", "sam_tiny",
				"--threads", "2", "--backend", "cpu", "--kernels", "cpu", "-d", outDir},
				tc.args...)
			_, errs, code := runCmd(t, args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, tc.code,
					tc.want)
			}
			if left, _ := filepath.Glob(filepath.Join(outDir, "*")); len(left) > 0 {
				t.Errorf("files left behind: %v", left)
			}
		})
	}
}
