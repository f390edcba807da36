package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestPhantomThenResample(t *testing.T) {
	dir := t.TempDir()
	out, errs, code := runCmd(t, "phantom", "--shape", "40,36,30", "--spacing", "1.5,1.5,2.5", dir)
	if code != 0 {
		t.Fatalf("phantom: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "phantom_ct.nii.gz") {
		t.Fatalf("phantom output does not name the image: %q", out)
	}
	src := filepath.Join(dir, "phantom_labels.nii.gz")
	dst := filepath.Join(dir, "labels_3mm.nii.gz")
	_, errs, code = runCmd(t, "resample", "--labels", "--spacing", "3,3,3", src, dst)
	if code != 0 {
		t.Fatalf("resample: exit %d: %s", code, errs)
	}
	a, err := nifti.Read(src, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := nifti.Read(dst, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Volume.Spacing != [3]float64{3, 3, 3} {
		t.Errorf("spacing %v, want 3 mm", b.Volume.Spacing)
	}
	// Every output voxel centre keeps its world position: voxel (1,1,1) of the output lies at
	// input index (2, 2, 1.2), so the world points must agree.
	w := b.Volume.Affine.Apply([3]float64{1, 1, 1})
	want := a.Volume.Affine.Apply([3]float64{2, 2, 1.2})
	for i := range w {
		if d := w[i] - want[i]; d > 1e-3 || d < -1e-3 {
			t.Fatalf("world position of output voxel (1,1,1) = %v, want %v", w, want)
		}
	}
	// Nearest-neighbour resampling keeps only label values present in the input.
	present := map[float32]bool{}
	for _, x := range a.Volume.Data {
		present[x] = true
	}
	for _, x := range b.Volume.Data {
		if !present[x] {
			t.Fatalf("resampled labels contain %v, absent from the input", x)
		}
	}
	if volume.OrientationOf(b.Volume.Affine) != "LPS" {
		t.Errorf("orientation %s, want LPS", volume.OrientationOf(b.Volume.Affine))
	}
}

func TestResampleBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.nii.gz")
	if err := os.WriteFile(bad, []byte("not a nifti file"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.nii.gz")
	_, errs, code := runCmd(t, "resample", bad, out)
	if code != 1 || !strings.Contains(errs, "bad.nii.gz") {
		t.Fatalf("exit %d, stderr %q: want exit 1 and an error naming the file", code, errs)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("output left behind after a failed run: %v", err)
	}
	if _, _, code := runCmd(t, "resample", "--spacing", "3,3", bad, out); code != 2 {
		t.Fatalf("two spacings: exit %d, want 2 (usage)", code)
	}
}
