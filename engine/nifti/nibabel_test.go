package nifti

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// sharedCT is the real CT folder, reached relative to this package directory.
const sharedCT = "../../../shared/data/ct"

const python = "/usr/bin/python3"

// nibDump is what testdata/nib_dump.py writes.
type nibDump struct {
	Shape  []int        `json:"shape"`
	Affine [4][4]jfloat `json:"affine"`
	Header struct {
		Datatype   int       `json:"datatype"`
		Bitpix     int       `json:"bitpix"`
		QformCode  int32     `json:"qform_code"`
		SformCode  int32     `json:"sform_code"`
		XYZTUnits  int32     `json:"xyzt_units"`
		IntentCode int32     `json:"intent_code"`
		VoxOffset  int64     `json:"vox_offset"`
		SclSlope   jfloat    `json:"scl_slope"`
		SclInter   jfloat    `json:"scl_inter"`
		QuaternB   jfloat    `json:"quatern_b"`
		QuaternC   jfloat    `json:"quatern_c"`
		QuaternD   jfloat    `json:"quatern_d"`
		QoffsetX   jfloat    `json:"qoffset_x"`
		QoffsetY   jfloat    `json:"qoffset_y"`
		QoffsetZ   jfloat    `json:"qoffset_z"`
		CalMin     jfloat    `json:"cal_min"`
		CalMax     jfloat    `json:"cal_max"`
		Dim        [8]int64  `json:"dim"`
		Pixdim     [8]jfloat `json:"pixdim"`
		SrowX      [4]jfloat `json:"srow_x"`
		SrowY      [4]jfloat `json:"srow_y"`
		SrowZ      [4]jfloat `json:"srow_z"`
		Descrip    string    `json:"descrip"`
		Extensions [][2]any  `json:"extensions"`
	} `json:"header"`
}

// jfloat decodes a JSON number or one of the strings "nan", "inf", "-inf".
type jfloat float64

func (f *jfloat) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		switch s {
		case "nan":
			*f = jfloat(math.NaN())
		case "inf":
			*f = jfloat(math.Inf(1))
		case "-inf":
			*f = jfloat(math.Inf(-1))
		default:
			return fmt.Errorf("bad float %q", s)
		}
		return nil
	}
	var x float64
	err := json.Unmarshal(b, &x)
	*f = jfloat(x)
	return err
}

// requireNibabel skips the test when Debian's python3 with nibabel is absent.
func requireNibabel(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("skipping: %s not found, needed to compare with nibabel", python)
	}
	out, err := exec.Command(python, "-c", "import nibabel, numpy").CombinedOutput()
	if err != nil {
		t.Skipf("skipping: nibabel not importable by %s: %v %s", python, err, out)
	}
}

// nibRead is what nibabel reads from one file: header fields, affine and shape, and the
// voxels of get_fdata(dtype=float32).
type nibRead struct {
	dump *nibDump
	vox  []float32
}

// nibabelReadAll runs testdata/nib_dump.py once for all paths (starting Python and
// importing nibabel costs about a second, more than reading a small file) and returns
// nibabel's reading of each, in order.
func nibabelReadAll(t *testing.T, paths []string) []nibRead {
	t.Helper()
	requireNibabel(t)
	dir := t.TempDir()
	args := []string{"testdata/nib_dump.py"}
	for n, p := range paths {
		base := filepath.Join(dir, fmt.Sprint(n))
		args = append(args, p, base+".json", base+".f32")
	}
	if out, err := exec.Command(python, args...).CombinedOutput(); err != nil {
		t.Fatalf("nib_dump.py: %v\n%s", err, out)
	}
	res := make([]nibRead, len(paths))
	for n := range paths {
		base := filepath.Join(dir, fmt.Sprint(n))
		b, err := os.ReadFile(base + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var d nibDump
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		rb, err := os.ReadFile(base + ".f32")
		if err != nil {
			t.Fatal(err)
		}
		// The raw file is deleted now: the shared CT's is 300 MB.
		os.Remove(base + ".f32")
		vox := make([]float32, len(rb)/4)
		for i := range vox {
			vox[i] = math.Float32frombits(binary.LittleEndian.Uint32(rb[4*i:]))
		}
		res[n] = nibRead{&d, vox}
	}
	return res
}

// same compares floats exactly, NaN equal to NaN.
func same(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// compareWithNibabel reads path with Read and requires header fields, affine and voxels
// identical to nibabel's reading nr of the same file.
func compareWithNibabel(t *testing.T, path string, nr nibRead) {
	t.Helper()
	d, want := nr.dump, nr.vox
	img, err := Read(path, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, v := img.Header, img.Volume
	nh := &d.Header
	check := func(name string, got, want float64) {
		t.Helper()
		if !same(got, want) {
			t.Errorf("%s = %v, nibabel %v", name, got, want)
		}
	}
	if int(h.Datatype) != nh.Datatype || int(h.Bitpix) != nh.Bitpix || h.Dim != nh.Dim {
		t.Errorf("datatype/bitpix/dim = %d/%d/%v, nibabel %d/%d/%v", h.Datatype, h.Bitpix,
			h.Dim, nh.Datatype, nh.Bitpix, nh.Dim)
	}
	if h.QformCode != nh.QformCode || h.SformCode != nh.SformCode ||
		h.XYZTUnits != nh.XYZTUnits || h.IntentCode != nh.IntentCode ||
		h.VoxOffset != nh.VoxOffset || h.Descrip != nh.Descrip {
		t.Errorf("codes/units/intent/vox_offset/descrip = %d %d %d %d %d %q, nibabel %d %d "+
			"%d %d %d %q", h.QformCode, h.SformCode, h.XYZTUnits, h.IntentCode, h.VoxOffset,
			h.Descrip, nh.QformCode, nh.SformCode, nh.XYZTUnits, nh.IntentCode, nh.VoxOffset,
			nh.Descrip)
	}
	check("scl_slope", h.SclSlope, float64(nh.SclSlope))
	check("scl_inter", h.SclInter, float64(nh.SclInter))
	check("quatern_b", h.QuaternB, float64(nh.QuaternB))
	check("quatern_c", h.QuaternC, float64(nh.QuaternC))
	check("quatern_d", h.QuaternD, float64(nh.QuaternD))
	check("qoffset_x", h.QoffsetX, float64(nh.QoffsetX))
	check("qoffset_y", h.QoffsetY, float64(nh.QoffsetY))
	check("qoffset_z", h.QoffsetZ, float64(nh.QoffsetZ))
	check("cal_min", h.CalMin, float64(nh.CalMin))
	check("cal_max", h.CalMax, float64(nh.CalMax))
	for i := 0; i < 8; i++ {
		check(fmt.Sprintf("pixdim[%d]", i), h.Pixdim[i], float64(nh.Pixdim[i]))
	}
	for i := 0; i < 4; i++ {
		check(fmt.Sprintf("srow_x[%d]", i), h.SrowX[i], float64(nh.SrowX[i]))
		check(fmt.Sprintf("srow_y[%d]", i), h.SrowY[i], float64(nh.SrowY[i]))
		check(fmt.Sprintf("srow_z[%d]", i), h.SrowZ[i], float64(nh.SrowZ[i]))
	}
	if len(h.Extensions) != len(nh.Extensions) {
		t.Errorf("%d extensions, nibabel %d", len(h.Extensions), len(nh.Extensions))
	} else {
		for i, e := range h.Extensions {
			content, _ := hex.DecodeString(nh.Extensions[i][1].(string))
			if float64(e.Code) != nh.Extensions[i][0].(float64) ||
				!bytes.Equal(bytes.TrimRight(e.Data, "\x00"), content) {
				t.Errorf("extension %d differs from nibabel's", i)
			}
		}
	}
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			if !same(v.Affine[i][j], float64(d.Affine[i][j])) {
				t.Fatalf("affine %v, nibabel %v", v.Affine, d.Affine)
			}
		}
	}
	shape := [3]int{1, 1, 1}
	copy(shape[:], d.Shape)
	if v.Shape != shape {
		t.Fatalf("shape %v, nibabel %v", v.Shape, d.Shape)
	}
	if len(v.Data) != len(want) {
		t.Fatalf("%d voxels, nibabel %d", len(v.Data), len(want))
	}
	bad := 0
	for i, w := range want {
		g := v.Data[i]
		if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
			if bad < 5 {
				t.Errorf("voxel %d = %v (%#x), nibabel %v (%#x)", i, g,
					math.Float32bits(g), w, math.Float32bits(w))
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d voxels differ from nibabel", bad, len(want))
	}
}

// TestNibabelParityShared compares with nibabel on the real CT and its label map.
func TestNibabelParityShared(t *testing.T) {
	var paths []string
	for _, name := range []string{"abdomen_ct.nii.gz", "abdomen_ct_labels.nii.gz"} {
		p := filepath.Join(sharedCT, name)
		if _, err := os.Stat(p); err != nil {
			t.Skipf("skipping: shared data absent: %v", err)
		}
		paths = append(paths, p)
	}
	nib := nibabelReadAll(t, paths)
	for n, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) { compareWithNibabel(t, p, nib[n]) })
	}
	t.Run("labels-extension", func(t *testing.T) {
		img, err := Read(paths[1], ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(img.Header.Extensions) != 1 || 8+len(img.Header.Extensions[0].Data) != 12816 ||
			img.Header.VoxOffset != 13168 {
			t.Errorf("extensions %d, vox_offset %d", len(img.Header.Extensions),
				img.Header.VoxOffset)
		}
	})
}

// TestNibabelParityFixtures compares with nibabel on self-made files covering both byte
// orders, NIfTI-2, extensions, scaling in every precision path, qform and the fallback.
func TestNibabelParityFixtures(t *testing.T) {
	le, be := orders[0].bo, orders[1].bo
	oblique := [3]float64{0.1534, -0.4281, 0.2207}
	cases := []struct {
		name string
		make func() fixture
	}{
		{"v1-be-int16-scaled", func() fixture {
			f := baseFixture(1, be, Int16)
			f.slope, f.inter = 0.1, -1024.5
			return f
		}},
		{"v1-le-int32-scaled", func() fixture {
			f := baseFixture(1, le, Int32)
			f.slope, f.inter = 0.3, 7
			return f
		}},
		{"v1-le-uint32-slope", func() fixture {
			f := baseFixture(1, le, Uint32)
			f.slope = 1.1
			return f
		}},
		{"v1-be-int8-inter", func() fixture {
			f := baseFixture(1, be, Int8)
			f.slope, f.inter = 1, 0.3
			return f
		}},
		{"v1-le-uint16-overflow-f32", func() fixture {
			f := baseFixture(1, le, Uint16)
			f.slope, f.inter = 1e35, 0
			return f
		}},
		{"v1-le-float32-scaled", func() fixture {
			f := baseFixture(1, le, Float32)
			f.slope, f.inter = 2.5, -0.7
			return f
		}},
		{"v2-le-uint8-ext-scaled", func() fixture {
			f := baseFixture(2, le, Uint8)
			f.slope = 1.7
			f.exts = []Extension{{Code: 6, Data: []byte("parity")}}
			return f
		}},
		{"v2-be-float64-scaled", func() fixture {
			f := baseFixture(2, be, Float64)
			f.slope, f.inter = 3, 0.1
			return f
		}},
		{"v2-le-int16-double-slope", func() fixture {
			f := baseFixture(2, le, Int16)
			f.slope, f.inter = 0.123456789012345, 1e-3
			return f
		}},
		{"v1-be-qform-oblique-qfac", func() fixture {
			f := baseFixture(1, be, Int16)
			f.qcode, f.scode, f.quat, f.qoff = 1, 0, oblique, [3]float64{-90.5, 12.25, 30}
			f.pixdim[0] = -1
			f.exts = []Extension{{Code: 4, Data: bytes.Repeat([]byte("x"), 33)}}
			return f
		}},
		{"v2-le-qform-oblique", func() fixture {
			f := baseFixture(2, le, Float32)
			f.qcode, f.scode, f.quat, f.qoff = 2, 0, oblique, [3]float64{1.1, 2.2, 3.3}
			return f
		}},
		{"v1-le-fallback", func() fixture {
			f := baseFixture(1, le, Uint8)
			f.qcode, f.scode = 0, 0
			return f
		}},
		{"v1-le-4d-one-volume", func() fixture {
			f := baseFixture(1, le, Int16)
			f.dim = [8]int64{4, 5, 4, 3, 1, 1, 1, 1}
			return f
		}},
	}
	var names, paths []string
	for _, c := range cases {
		for _, gz := range []bool{false, true} {
			f := c.make()
			f.gz = gz
			names = append(names, fmt.Sprintf("%s-gz%v", c.name, gz))
			paths = append(paths, f.save(t, c.name))
		}
	}
	nib := nibabelReadAll(t, paths)
	for n, name := range names {
		t.Run(name, func(t *testing.T) { compareWithNibabel(t, paths[n], nib[n]) })
	}
}

// TestWriteNibabel checks that nibabel reads what Write produces: same affine and voxels.
func TestWriteNibabel(t *testing.T) {
	requireNibabel(t)
	cases := writeCases()
	vols := make([]*volume.Volume, len(cases))
	paths := make([]string, len(cases))
	dir := t.TempDir()
	for n, c := range cases {
		vols[n] = c.vol()
		paths[n] = filepath.Join(dir, c.name+".nii.gz")
		if err := Write(paths[n], vols[n], WriteOptions{Datatype: c.dt}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	nib := nibabelReadAll(t, paths)
	for n, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, p, d, vox := vols[n], paths[n], nib[n].dump, nib[n].vox
			for i := 0; i < 4; i++ {
				for j := 0; j < 4; j++ {
					if float64(d.Affine[i][j]) != v.Affine[i][j] {
						t.Fatalf("nibabel affine %v, want %v", d.Affine, v.Affine)
					}
				}
			}
			if len(vox) != len(v.Data) {
				t.Fatalf("nibabel read %d voxels, want %d", len(vox), len(v.Data))
			}
			for i, x := range v.Data {
				if vox[i] != x {
					t.Fatalf("voxel %d: nibabel %v, want %v", i, vox[i], x)
				}
			}
			// The derived qform must encode the same geometry to float32 precision.
			img, err := Read(p, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			qf, err := img.Header.QformAffine()
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				for j := 0; j < 4; j++ {
					if math.Abs(qf[i][j]-v.Affine[i][j]) > 1e-4*(1+math.Abs(v.Affine[i][j])) {
						t.Fatalf("qform %v, affine %v", qf, v.Affine)
					}
				}
			}
		})
	}
}
