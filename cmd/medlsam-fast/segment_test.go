package main

import (
	"encoding/json"
	"os"
	"path/filepath"
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
