package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

func writeVol(t *testing.T, path string, shape [3]int, fill func(i, j, k int) float32) {
	t.Helper()
	v, err := volume.New(shape, [3]float64{1.5, 1.5, 3})
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < shape[2]; k++ {
		for j := 0; j < shape[1]; j++ {
			for i := 0; i < shape[0]; i++ {
				v.Data[v.Index(i, j, k)] = fill(i, j, k)
			}
		}
	}
	if err := nifti.Write(path, v, nifti.WriteOptions{Datatype: nifti.Int16}); err != nil {
		t.Fatal(err)
	}
}

// TestEval scores a prediction that covers half of a cube and a box shifted by one voxel.
func TestEval(t *testing.T) {
	dir := t.TempDir()
	shape := [3]int{10, 10, 6}
	ref, pred := filepath.Join(dir, "ref.nii.gz"), filepath.Join(dir, "pred.nii.gz")
	in := func(i, j, k int) bool { return i >= 2 && i <= 5 && j >= 2 && j <= 5 && k >= 1 && k <= 4 }
	writeVol(t, ref, shape, func(i, j, k int) float32 {
		if in(i, j, k) {
			return 3
		}
		return 0
	})
	writeVol(t, pred, shape, func(i, j, k int) float32 {
		if in(i, j, k) && i <= 3 {
			return 3
		}
		return 0
	})
	loc := localize.Result{Shape: shape, Organs: []localize.OrganBox{{
		Organ:     localize.Organ{Label: 3, Name: "cube"},
		BoxOnGrid: localize.BoxOnGrid{Box: eval.Box{Min: [3]int{3, 2, 1}, Max: [3]int{6, 5, 4}}},
	}}}
	b, _ := json.Marshal(loc)
	boxes := filepath.Join(dir, "boxes.json")
	if err := os.WriteFile(boxes, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runCmd(t, "eval", "--mask", pred, "--boxes", boxes, ref)
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	var rep evalReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	// Half the cube: Dice 2*32/(32+64) = 2/3.
	if len(rep.Masks) != 1 || rep.Masks[0].Label != 3 || *rep.Masks[0].Dice != 2.0/3 ||
		rep.Masks[0].HD95 == nil || *rep.Masks[0].HD95 <= 0 {
		t.Errorf("masks: %s", out)
	}
	// Box shifted by one voxel (1.5 mm) along i: faces i differ by 1.5 mm each -> WD 0.5.
	if len(rep.Boxes) != 1 || *rep.Boxes[0].WD != 0.5 {
		t.Errorf("boxes: %s", out)
	}
	if _, _, code := runCmd(t, "eval", ref); code != 2 {
		t.Errorf("eval without --mask or --boxes: exit %d, want 2", code)
	}
	other := filepath.Join(dir, "other.nii.gz")
	writeVol(t, other, [3]int{10, 10, 5}, func(i, j, k int) float32 { return 0 })
	if _, errs, code := runCmd(t, "eval", "--mask", other, ref); code != 1 {
		t.Errorf("shape mismatch: exit %d (%s), want 1", code, errs)
	}
}

func TestPresentLabels(t *testing.T) {
	for _, tc := range []struct {
		data []float32
		want []int
	}{
		{[]float32{0, 0}, []int{}},
		{[]float32{3, 1, 0, 3, 2.6}, []int{1, 3}},
		{[]float32{-2, 1e9, 5, 1e20}, []int{5, 1000000000}},
	} {
		got := presentLabels(tc.data)
		if !slices.Equal(got, tc.want) {
			t.Errorf("presentLabels(%v) = %v, want %v", tc.data, got, tc.want)
		}
	}
}
