package nifti

import (
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

type writeCase struct {
	name string
	dt   Datatype
	vol  func() *volume.Volume
}

// f32 rounds x to float32, as NIfTI-1 stores it.
func f32(x float64) float64 { return float64(float32(x)) }

// testVolume returns a volume with random voxels (integers for label datatypes) and the
// given affine, whose entries must be float32 values.
func testVolume(shape [3]int, aff volume.Affine, dt Datatype, seed int64) *volume.Volume {
	rng := rand.New(rand.NewSource(seed))
	n := shape[0] * shape[1] * shape[2]
	v := &volume.Volume{Data: make([]float32, n), Shape: shape, Affine: aff}
	for a := 0; a < 3; a++ {
		v.Spacing[a] = f32(math.Sqrt(aff[0][a]*aff[0][a] + aff[1][a]*aff[1][a] +
			aff[2][a]*aff[2][a]))
	}
	for i := range v.Data {
		switch dt {
		case Uint8:
			v.Data[i] = float32(rng.Intn(256))
		case Int16:
			v.Data[i] = float32(rng.Intn(65536) - 32768)
		case Int32:
			v.Data[i] = float32(rng.Int31n(1<<24) - 1<<23)
		default:
			v.Data[i] = float32(rng.NormFloat64() * 300)
		}
	}
	return v
}

func writeCases() []writeCase {
	c, s := f32(math.Cos(0.3)), f32(math.Sin(0.3))
	affs := []struct {
		name string
		a    volume.Affine
	}{
		{"ras", volume.Affine{{1.5, 0, 0, -10.25}, {0, 2, 0, 4}, {0, 0, 3, 90.5}, {0, 0, 0, 1}}},
		{"lps", volume.Affine{{-0.75, 0, 0, 120}, {0, -0.75, 0, 95.5}, {0, 0, 2.5, -300},
			{0, 0, 0, 1}}},
		{"permuted-flipped", volume.Affine{{0, 0, -2, 5}, {1.5, 0, 0, -7}, {0, 3, 0, 1},
			{0, 0, 0, 1}}},
		{"oblique", volume.Affine{{c, -s, 0, 1}, {s, c, 0, 2}, {0, 0, 1.25, 3}, {0, 0, 0, 1}}},
	}
	var out []writeCase
	for _, a := range affs {
		for _, dt := range []Datatype{Float32, Uint8, Int16, Int32} {
			a, dt := a, dt
			out = append(out, writeCase{a.name + "-" + dt.String(), dt, func() *volume.Volume {
				return testVolume([3]int{7, 6, 5}, a.a, dt, int64(dt))
			}})
		}
	}
	return out
}

// TestWriteRoundTrip writes and reads back: voxels, spacing and affine must be identical.
func TestWriteRoundTrip(t *testing.T) {
	for _, c := range writeCases() {
		for _, ext := range []string{".nii", ".nii.gz"} {
			t.Run(c.name+ext, func(t *testing.T) {
				v := c.vol()
				dir := t.TempDir()
				p := filepath.Join(dir, "out"+ext)
				if err := Write(p, v, WriteOptions{Datatype: c.dt}); err != nil {
					t.Fatal(err)
				}
				img, err := Read(p, ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				w := img.Volume
				if w.Shape != v.Shape || w.Spacing != v.Spacing || w.Affine != v.Affine {
					t.Fatalf("geometry %v %v %v, want %v %v %v", w.Shape, w.Spacing, w.Affine,
						v.Shape, v.Spacing, v.Affine)
				}
				if dt := img.Header.Datatype; dt != c.dt {
					t.Errorf("datatype %v, want %v", dt, c.dt)
				}
				for i := range v.Data {
					if w.Data[i] != v.Data[i] {
						t.Fatalf("voxel %d = %v, want %v", i, w.Data[i], v.Data[i])
					}
				}
				entries, _ := os.ReadDir(dir)
				if len(entries) != 1 {
					t.Errorf("directory holds %d entries, want only the output", len(entries))
				}
			})
		}
	}
}

// TestWriteKeepsLikeGeometry copies a source header's qform and sform when the affine is
// unchanged, and keeps its codes when it is not.
func TestWriteKeepsLikeGeometry(t *testing.T) {
	src := baseFixture(1, orders[1].bo, Int16)
	src.qcode, src.scode = 1, 4
	src.quat = [3]float64{0.1534, -0.4281, 0.2207}
	src.qoff = [3]float64{3, 4, 5}
	src.exts = []Extension{{Code: 6, Data: []byte("keep me")}}
	img, err := Read(src.save(t, "src"), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	like := img.Header
	for _, keep := range []bool{false, true} {
		p := filepath.Join(t.TempDir(), "labels.nii.gz")
		if err := Write(p, img.Volume, WriteOptions{Datatype: Int16, Like: like,
			KeepExtensions: keep}); err != nil {
			t.Fatal(err)
		}
		out, err := Read(p, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		h := out.Header
		if h.QformCode != 1 || h.SformCode != 4 || h.QuaternB != like.QuaternB ||
			h.QuaternC != like.QuaternC || h.QuaternD != like.QuaternD ||
			h.QoffsetX != like.QoffsetX || h.SrowX != like.SrowX || h.SrowZ != like.SrowZ ||
			h.Pixdim != like.Pixdim || h.XYZTUnits != like.XYZTUnits || h.Descrip != "fixture" {
			t.Errorf("geometry not kept: %+v\nsource %+v", h, like)
		}
		if out.Volume.Affine != img.Volume.Affine {
			t.Errorf("affine %v, want %v", out.Volume.Affine, img.Volume.Affine)
		}
		if n := len(h.Extensions); (n == 1) != keep {
			t.Errorf("keep=%v: %d extensions", keep, n)
		}
	}
	// A changed affine: sform takes it, codes come from the source.
	moved := img.Volume.Clone()
	moved.Affine[0][3] += 10
	p := filepath.Join(t.TempDir(), "moved.nii")
	if err := Write(p, moved, WriteOptions{Like: like}); err != nil {
		t.Fatal(err)
	}
	out, err := Read(p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Volume.Affine != moved.Affine || out.Header.SformCode != 4 ||
		out.Header.QformCode != 1 {
		t.Errorf("affine %v codes %d/%d", out.Volume.Affine, out.Header.QformCode,
			out.Header.SformCode)
	}
}

func TestWriteErrors(t *testing.T) {
	good := func() *volume.Volume {
		return testVolume([3]int{3, 2, 2}, volume.Identity(), Float32, 1)
	}
	cases := []struct {
		name string
		file string
		vol  func() *volume.Volume
		opt  WriteOptions
		want string
	}{
		{"extension", "out.img", good, WriteOptions{}, ".nii or .nii.gz"},
		{"range-uint8", "out.nii", good, WriteOptions{Datatype: Uint8}, "does not fit uint8"},
		{"nan-int16", "out.nii", func() *volume.Volume {
			v := good()
			for i := range v.Data {
				v.Data[i] = 1
			}
			v.Data[5] = float32(math.NaN())
			return v
		}, WriteOptions{Datatype: Int16}, "voxel (2, 1, 0) = NaN"},
		{"datatype", "out.nii", good, WriteOptions{Datatype: Float64}, "datatype float64"},
		{"invalid-volume", "out.nii", func() *volume.Volume {
			v := good()
			v.Data = v.Data[:3]
			return v
		}, WriteOptions{}, "voxels for shape"},
		{"singular-affine", "out.nii", func() *volume.Volume {
			v := good()
			v.Affine[0][0] = 0
			return v
		}, WriteOptions{}, "affine column 0"},
		{"nan-affine", "out.nii.gz", func() *volume.Volume {
			v := good()
			v.Affine[0][3] = math.NaN()
			return v
		}, WriteOptions{}, "affine[0][3] = NaN"},
		{"missing-dir", "nodir/out.nii", good, WriteOptions{}, "no such file"},
		{"huge-extensions", "out.nii", good, WriteOptions{KeepExtensions: true,
			Like: &Header{Extensions: []Extension{{Code: 6, Data: make([]byte, 1<<24)}}}},
			"extensions: 16777584 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, c.file)
			err := Write(p, c.vol(), c.opt)
			if err == nil || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), p) {
				t.Fatalf("error %v: want it to name %q and the file", err, c.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("failed write left %d entries", len(entries))
			}
		})
	}
}

// TestWriteAtomic checks that a failed Write leaves an existing file as it was and no
// temporary file behind, and that a successful one replaces the file whole.
func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.nii.gz")
	old := []byte("previous content")
	if err := os.WriteFile(p, old, 0o644); err != nil {
		t.Fatal(err)
	}
	v := testVolume([3]int{4, 3, 2}, volume.Identity(), Int16, 3)
	// Out of range for uint8: refused before anything is written.
	if err := Write(p, v, WriteOptions{Datatype: Uint8}); err == nil {
		t.Fatal("out-of-range write succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != string(old) {
		t.Fatalf("failed write changed the existing file to %q", b)
	}
	// The rename fails (the target is a non-empty directory) after the temporary file is
	// complete: it must be removed.
	sub := filepath.Join(dir, "taken.nii")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(sub, v, WriteOptions{Datatype: Int16}); err == nil ||
		!strings.Contains(err.Error(), sub) {
		t.Fatalf("write over a directory: error %v", err)
	}
	if err := Write(p, v, WriteOptions{Datatype: Int16}); err != nil {
		t.Fatal(err)
	}
	img, err := Read(p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range v.Data {
		if img.Volume.Data[i] != v.Data[i] {
			t.Fatalf("voxel %d = %v, want %v", i, img.Volume.Data[i], v.Data[i])
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 || names[0] != "out.nii.gz" || names[1] != "taken.nii" {
		t.Errorf("directory holds %q, want only out.nii.gz and taken.nii", names)
	}
}
