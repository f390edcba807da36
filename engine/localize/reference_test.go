package localize

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// awkwardPair writes an image and a label map on an RPI grid of uneven spacing (0.77, 0.9,
// 1.25 mm) and odd sizes, so that zoom's rounding, the corner-aligned grid and torch's
// half-pixel grid all matter: a smooth HU field from below -1000 to above 1500 with noise,
// and blocky labels 0 to 3.
func awkwardPair(t *testing.T, dir string) (img, lab string) {
	t.Helper()
	shape := [3]int{53, 47, 31}
	spacing := [3]float64{0.77, 0.9, 1.25}
	mk := func() *volume.Volume {
		v, err := volume.New(shape, spacing)
		if err != nil {
			t.Fatal(err)
		}
		v.Affine[0][0], v.Affine[1][1] = -spacing[0], -spacing[1]
		v.Affine[2][2] = -spacing[2]
		return v
	}
	r := rand.New(rand.NewPCG(5, 6))
	iv, lv := mk(), mk()
	for k := range shape[2] {
		for j := range shape[1] {
			for i := range shape[0] {
				x, y, z := float64(i)/9, float64(j)/7, float64(k)/5
				iv.Data[iv.Index(i, j, k)] = float32(250 + 1400*math.Sin(x+0.5*y)*math.Cos(z-y) +
					60*r.NormFloat64())
				lv.Data[lv.Index(i, j, k)] = float32((i/6 + 2*(j/5) + 3*(k/4)) % 4)
			}
		}
	}
	img, lab = filepath.Join(dir, "awkward_ct.nii.gz"), filepath.Join(dir, "awkward_labels.nii.gz")
	for p, v := range map[string]*volume.Volume{img: iv, lab: lv} {
		if err := nifti.Write(p, v, nifti.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return img, lab
}

// referencePrepared runs testdata/reference_preprocess.py on a file and returns its output
// in C order (z, y, x), its shape and, for labels, its near-tie mask.
func referencePrepared(t *testing.T, python, kind, path string) ([]float32, [3]int, []byte) {
	t.Helper()
	prefix := filepath.Join(t.TempDir(), "ref")
	cmd := exec.Command(python, filepath.Join("testdata", "reference_preprocess.py"), kind,
		path, prefix)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference preprocessing of %s: %v: %s", path, err, out)
	}
	var meta struct {
		Shape [3]int `json:"shape"`
	}
	b, err := os.ReadFile(prefix + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(prefix + ".f32")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]float32, len(raw)/4)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	tie, _ := os.ReadFile(prefix + ".tie")
	return data, meta.Shape, tie
}

// TestReferencePreprocessing compares Prepare with Reference resampling against the
// reference implementation's preprocessing, run in Python with nibabel, scipy and torch
// (testdata/reference_preprocess.py), on the bundled phantom and on an awkward grid.
// Images must agree within float32 rounding; label maps everywhere except where torch's
// argmax is decided by float rounding between two equally weighted labels.
func TestReferencePreprocessing(t *testing.T) {
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c",
		"import nibabel, scipy, torch").CombinedOutput(); err != nil {
		t.Skipf("reference preprocessing unavailable (%s: %v: %s)", python, err, out)
	}
	awkImg, awkLab := awkwardPair(t, t.TempDir())
	phantom := filepath.Join("..", "..", "testdata", "phantom")
	for _, c := range []struct{ name, img, lab string }{
		{"phantom", filepath.Join(phantom, "phantom_ct.nii.gz"),
			filepath.Join(phantom, "phantom_labels.nii.gz")},
		{"awkward", awkImg, awkLab},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []struct {
				kind string
				path string
				kk   Kind
			}{{"image", c.img, Image}, {"labels", c.lab, Labels}} {
				f, err := nifti.Read(k.path, nifti.ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				g, err := PrepareWith(Config{Resampling: Reference}, f.Volume, k.path, k.kk)
				if err != nil {
					t.Fatal(err)
				}
				want, shape, tie := referencePrepared(t, python, k.kind, k.path)
				if g.Dims() != shape {
					t.Fatalf("%s: grid %v (z, y, x), the reference's %v", k.kind, g.Dims(), shape)
				}
				worst, differ, ties := 0.0, 0, 0
				for i, w := range want {
					d := math.Abs(float64(g.Vol.Data[i] - w))
					if k.kk == Image {
						worst = max(worst, d)
						continue
					}
					ties += int(tie[i])
					if d != 0 {
						differ++
						if tie[i] == 0 {
							t.Errorf("labels: voxel %d is %v, the reference's %v (no tie)", i,
								g.Vol.Data[i], w)
						}
					}
				}
				if k.kk == Labels {
					t.Logf("labels %v: %d voxels differ, at some of %d near ties", shape,
						differ, ties)
				} else if t.Logf("image %v: worst difference %.2g", shape, worst); worst > 1e-5 {
					t.Errorf("image: worst difference %.3g (values in [0, 1])", worst)
				}
			}
		})
	}
}
