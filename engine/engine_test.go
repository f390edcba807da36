package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/phantom"
)

const tinyDir = "../testdata/models"

var quiet = localize.Config{Logger: slog.New(slog.DiscardHandler)}

// writeModel writes a dummy model file and its manifest of the given kind into dir.
func writeModel(t *testing.T, dir, file, kind string) {
	t.Helper()
	data := []byte("not a network: " + file)
	sum := sha256.Sum256(data)
	if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
		t.Fatal(err)
	}
	man := backend.Manifest{Contract: backend.ContractVersion, Model: kind, File: file,
		SHA256: hex.EncodeToString(sum[:])}
	b, _ := json.Marshal(man)
	if err := os.WriteFile(filepath.Join(dir, file+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeOpener opens every file as a backend.Fake and records the paths.
func fakeOpener(opened *[]string) Opener {
	return func(path string, man *backend.Manifest) (backend.Model, error) {
		*opened = append(*opened, filepath.Base(path))
		in := []backend.TensorInfo{{Name: localize.InputPatch, Shape: []int64{-1, 1, 64, 64,
			64}, Type: backend.Float32}}
		out := []backend.TensorInfo{{Name: localize.OutputPosition, Shape: []int64{-1, 3},
			Type: backend.Float32}}
		return backend.NewFake(in, out, nil), nil
	}
}

func TestOpenFindsModels(t *testing.T) {
	cases := []struct {
		name    string
		files   [][2]string // file, manifest model
		model   string
		backend string
		opened  []string
		wantErr string
	}{
		{"default", [][2]string{{"medlam.onnx", "medlam"},
			{"medlam-encoder.onnx", "medlam-encoder"}}, "", "", []string{"medlam.onnx",
			"medlam-encoder.onnx"}, ""},
		{"only prefix", [][2]string{{"medlam_tiny.onnx", "medlam"},
			{"medlam_tiny-encoder.onnx", "medlam-encoder"}, {"sam.onnx", "sam-encoder"}}, "",
			"", []string{"medlam_tiny.onnx", "medlam_tiny-encoder.onnx"}, ""},
		{"no encoder", [][2]string{{"m.onnx", "medlam"}}, "m", "", []string{"m.onnx"}, ""},
		{"none", [][2]string{{"sam.onnx", "sam-encoder"}}, "", "", nil,
			"holds no MedLAM model"},
		{"several", [][2]string{{"a.onnx", "medlam"}, {"b.onnx", "medlam"}}, "", "", nil,
			"several MedLAM models (a, b)"},
		{"wrong kind", [][2]string{{"x.onnx", "medlam-encoder"}}, "x", "", nil,
			`is a "medlam-encoder" model`},
		{"wrong encoder", [][2]string{{"x.onnx", "medlam"}, {"x-encoder.onnx", "sam-decoder"}},
			"x", "", nil, `is a "sam-decoder" model`},
		{"missing", nil, "medlam", "", nil, "medlam.onnx"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range c.files {
				writeModel(t, dir, f[0], f[1])
			}
			var opened []string
			e, err := Open(dir, Options{ModelName: c.model, Open: fakeOpener(&opened),
				Localize: quiet})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(opened, c.opened) {
				t.Errorf("opened %v, want %v", opened, c.opened)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			if err := e.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
	_, err := Open(t.TempDir(), Options{Backend: "tpu"})
	if !errors.Is(err, backend.ErrUnavailable) || !strings.Contains(err.Error(), `"tpu"`) {
		t.Errorf("unknown backend: error %v", err)
	}
}

// tinyEngine opens the committed tiny MedLAM on ONNX Runtime, or skips.
func tinyEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := Open(tinyDir, Options{Localize: quiet})
	if errors.Is(err, backend.ErrUnavailable) {
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestEngineTinyPhantom runs the Go API end to end on a phantom written as NIfTI files:
// templates from the label map and from a points file holding the same points must give the
// same template set and the same boxes, and a query must be localised from its file and
// from memory alike; a closed Engine refuses work.
func TestEngineTinyPhantom(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: tiny MedLAM over about 20 patches")
	}
	e := tinyEngine(t)
	if man, err := backend.LoadManifest(filepath.Join(tinyDir, "medlam_tiny.onnx")); err != nil ||
		e.ModelSHA256() != man.SHA256 {
		t.Fatalf("engine model digest %s, manifest %v (%v)", e.ModelSHA256(), man, err)
	}
	ph, err := phantom.Generate(phantom.Config{Shape: [3]int{96, 90, 80},
		Spacing: [3]float64{3, 3, 3}, Seed: 5, Noise: 20})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	imgPath, labPath := filepath.Join(dir, "ct.nii.gz"), filepath.Join(dir, "labels.nii.gz")
	if err := nifti.Write(imgPath, ph.Image, nifti.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nifti.Write(labPath, ph.Labels, nifti.WriteOptions{Datatype: nifti.Uint8}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	organs := []localize.Organ{{Label: 2, Name: "kidney_right"}}
	ts, err := e.BuildTemplates(ctx, []TemplateInput{{ImagePath: imgPath, LabelsPath: labPath}},
		organs)
	if err != nil {
		t.Fatal(err)
	}
	// The phantom is RAS at 3 mm: grid (z, y, x) = (k, j, flipped i).
	rows := slicesClone(ts.Organs[0].TemplatePoints[0])
	n := ph.Image.Shape[0]
	for r := range rows {
		rows[r][2] = n - 1 - rows[r][2]
	}
	rows[2], rows[5] = rows[5], rows[2] // min i is the LAS max x
	doc := localize.TemplatePoints{Version: 1, Templates: []localize.TemplatePointSet{{
		Image: "ct.nii.gz", Organs: []localize.OrganPointSet{{Label: 2,
			Name: "kidney_right", Points: rows}}}}}
	b, _ := json.Marshal(doc)
	pointsPath := filepath.Join(dir, "points.json")
	if err := os.WriteFile(pointsPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fromPoints, err := e.BuildTemplatesFromPoints(ctx, pointsPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	fromPoints.Templates = ts.Templates // the image's name is the same file
	if !reflect.DeepEqual(fromPoints, ts) {
		t.Errorf("template set from points differs:\n%+v\n%+v", fromPoints.Organs, ts.Organs)
	}
	fromFile, err := e.Localize(ctx, ts, imgPath)
	if err != nil {
		t.Fatal(err)
	}
	fromMem, err := e.LocalizeVolume(ctx, ts, ph.Image, imgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFile, fromMem) {
		t.Errorf("file and memory queries differ:\n%+v\n%+v", fromFile, fromMem)
	}
	if len(fromFile.Organs) != 1 || fromFile.Organs[0].Label != 2 ||
		fromFile.ModelSHA256 != e.ModelSHA256() {
		t.Errorf("result %+v", fromFile)
	}
	lo, hi, err := ph.Box(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kidney_right: box %v, truth %v-%v (random tiny weights)", fromFile.Organs[0].Box,
		lo, hi)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Localize(ctx, ts, imgPath); !errors.Is(err, ErrClosed) {
		t.Errorf("Localize after Close: %v", err)
	}
}

func slicesClone(p [][3]int) [][3]int { return append([][3]int(nil), p...) }
