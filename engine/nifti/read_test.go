package nifti

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// TestReadFixtures reads every datatype in both byte orders, both versions, with and
// without extensions, raw and gzip, 3D and 4D with one volume.
func TestReadFixtures(t *testing.T) {
	for _, version := range []int{1, 2} {
		for _, o := range orders {
			for _, dt := range allTypes {
				for _, withExt := range []bool{false, true} {
					for _, gz := range []bool{false, true} {
						name := fmt.Sprintf("v%d-%s-%v-ext%v-gz%v", version, o.name, dt,
							withExt, gz)
						t.Run(name, func(t *testing.T) {
							f := baseFixture(version, o.bo, dt)
							f.gz = gz
							if withExt {
								f.exts = []Extension{
									{Code: 6, Data: []byte("a comment")},
									{Code: 4, Data: bytes.Repeat([]byte{0xab}, 40)},
								}
								f.dim = [8]int64{4, 5, 4, 3, 1, 1, 1, 1}
							}
							checkFixture(t, f)
						})
					}
				}
			}
		}
	}
}

func checkFixture(t *testing.T, f fixture) {
	t.Helper()
	img, err := Read(f.save(t, "img"), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := img.Volume
	if v.Shape != [3]int{5, 4, 3} {
		t.Errorf("shape %v", v.Shape)
	}
	if v.Spacing != [3]float64{0.75, 1.5, 2.5} {
		t.Errorf("spacing %v", v.Spacing)
	}
	want := volume.Affine{f.srow[0], f.srow[1], f.srow[2], {0, 0, 0, 1}}
	if v.Affine != want {
		t.Errorf("affine %v, want %v", v.Affine, want)
	}
	if img.Header.Datatype != f.dt || img.Header.Version != f.version {
		t.Errorf("datatype %v version %d", img.Header.Datatype, img.Header.Version)
	}
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, x := range f.vals() {
		if got := v.Data[i]; got != float32(x) {
			t.Fatalf("voxel %d = %v, want %v", i, got, float32(x))
		}
	}
	if len(img.Header.Extensions) != len(f.exts) {
		t.Fatalf("%d extensions, want %d", len(img.Header.Extensions), len(f.exts))
	}
	for i, e := range f.exts {
		got := img.Header.Extensions[i]
		if got.Code != e.Code || !bytes.Equal(bytes.TrimRight(got.Data, "\x00"), e.Data) {
			t.Errorf("extension %d = %d %q, want %d %q", i, got.Code, got.Data, e.Code, e.Data)
		}
	}
}

// TestReadScaling checks scl_slope/scl_inter on values whose scaled results are exact.
func TestReadScaling(t *testing.T) {
	cases := []struct {
		dt           Datatype
		slope, inter float64
		in           []float64
		want         []float32
	}{
		{Int16, 2, -3, []float64{-5, 0, 7}, []float32{-13, -3, 11}},
		{Uint8, 0.5, 0, []float64{0, 3, 255}, []float32{0, 1.5, 127.5}},
		{Int32, 1, 1024, []float64{-1024, 1, 1 << 30}, []float32{0, 1025, 1<<30 + 1024}},
		{Float32, -1, 0.5, []float64{1, -2, 0.25}, []float32{-0.5, 2.5, 0.25}},
		{Float64, 4, 1, []float64{0.25, -1, 3}, []float32{2, -3, 13}},
		{Int16, 0, 100, []float64{-5, 0, 7}, []float32{-5, 0, 7}},               // slope 0: none
		{Uint16, math.NaN(), 5, []float64{1, 2, 65535}, []float32{1, 2, 65535}}, // NaN: none
	}
	for _, c := range cases {
		for _, version := range []int{1, 2} {
			name := fmt.Sprintf("v%d-%v-%v-%v", version, c.dt, c.slope, c.inter)
			t.Run(name, func(t *testing.T) {
				f := baseFixture(version, orders[version-1].bo, c.dt)
				f.dim = [8]int64{3, 3, 1, 1, 1, 1, 1, 1}
				f.slope, f.inter, f.values = c.slope, c.inter, c.in
				img, err := Read(f.save(t, "s"), ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for i, w := range c.want {
					if img.Volume.Data[i] != w {
						t.Errorf("voxel %d = %v, want %v", i, img.Volume.Data[i], w)
					}
				}
			})
		}
	}
}

// TestReadAffineChoice checks sform over qform over the fallback, as nibabel chooses.
func TestReadAffineChoice(t *testing.T) {
	s := [3][4]float64{{0, -2, 0, 10}, {1, 0, 0, -4}, {0, 0, 3, 8}}
	// Quaternion (w, b, c, d) = (cos 45°, 0, 0, sin 45°): 90° about z.
	q := [3]float64{0, 0, math.Sqrt(0.5)}
	cases := []struct {
		name         string
		qcode, scode int32
		qfac         float64
		want         volume.Affine
		tol          float64
	}{
		{"sform", 1, 2, 1, volume.Affine{s[0], s[1], s[2], {0, 0, 0, 1}}, 0},
		{"qform", 1, 0, 1, volume.Affine{
			{0, -1.5, 0, 1}, {0.75, 0, 0, 2}, {0, 0, 2.5, 3}, {0, 0, 0, 1}}, 1e-7},
		{"qform-qfac", 1, 0, -1, volume.Affine{
			{0, -1.5, 0, 1}, {0.75, 0, 0, 2}, {0, 0, -2.5, 3}, {0, 0, 0, 1}}, 1e-7},
		{"invalid-sform-code", 2, 9, 1, volume.Affine{
			{0, -1.5, 0, 1}, {0.75, 0, 0, 2}, {0, 0, 2.5, 3}, {0, 0, 0, 1}}, 1e-7},
		{"fallback", 0, 0, 1, volume.Affine{
			{-0.75, 0, 0, 1.5}, {0, 1.5, 0, -2.25}, {0, 0, 2.5, -2.5}, {0, 0, 0, 1}}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := baseFixture(1, orders[0].bo, Int16)
			f.qcode, f.scode, f.srow, f.quat, f.qoff = c.qcode, c.scode, s, q, [3]float64{1, 2, 3}
			f.pixdim[0] = c.qfac
			img, err := Read(f.save(t, "a"), ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 4; i++ {
				for j := 0; j < 4; j++ {
					if d := math.Abs(img.Volume.Affine[i][j] - c.want[i][j]); d > c.tol {
						t.Fatalf("affine %v, want %v", img.Volume.Affine, c.want)
					}
				}
			}
		})
	}
}

// TestReadErrors feeds broken files and checks that the error names the file and field.
func TestReadErrors(t *testing.T) {
	le := orders[0].bo
	base := func() fixture { return baseFixture(1, le, Int16) }
	v2 := func() fixture { return baseFixture(2, le, Int16) }
	put16 := func(off int, v int16) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint16(b[off:], uint16(v)); return b }
	}
	putF32 := func(off int, v float32) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint32(b[off:], math.Float32bits(v)); return b }
	}
	cases := []struct {
		name   string
		fx     func() fixture
		mutate func([]byte) []byte // applied to the raw (uncompressed) bytes
		gz     bool
		max    int64
		want   string
	}{
		{"empty", base, func([]byte) []byte { return nil }, false, 0, "empty file"},
		{"short", base, func(b []byte) []byte { return b[:2] }, false, 0, "sizeof_hdr"},
		{"sizeof_hdr", base, func(b []byte) []byte { le.PutUint32(b, 349); return b },
			false, 0, "sizeof_hdr = 349"},
		{"truncated-header", base, func(b []byte) []byte { return b[:200] }, false, 0,
			"header: file ends"},
		{"magic", base, func(b []byte) []byte { copy(b[344:], "abcd"); return b }, false, 0,
			"magic"},
		{"pair-magic", base, func(b []byte) []byte { copy(b[344:], "ni1\x00"); return b },
			false, 0, "pairs"},
		{"nifti2-magic", func() fixture { return baseFixture(2, le, Int16) },
			func(b []byte) []byte { copy(b[4:], "n+1\x00"); return b }, false, 0, "magic"},
		{"dim0-zero", base, put16(40, 0), false, 0, "dim[0] = 0"},
		{"dim0-eight", base, put16(40, 8), false, 0, "dim[0] = 8"},
		{"dim-negative", base, put16(44, -4), false, 0, "dim[2] = -4"},
		{"dim-zero", base, put16(46, 0), false, 0, "dim[3] = 0"},
		{"volumes", base, func(b []byte) []byte {
			le.PutUint16(b[40:], 4)
			le.PutUint16(b[48:], 2)
			return b
		}, false, 0, "dim[4] = 2"},
		{"overflow", func() fixture { return baseFixture(2, le, Int16) },
			func(b []byte) []byte {
				for i := 1; i <= 3; i++ {
					le.PutUint64(b[16+8*i:], 1<<40)
				}
				return b
			}, false, 0, "overflows"},
		{"cap", base, func(b []byte) []byte {
			for i := 1; i <= 3; i++ {
				le.PutUint16(b[40+2*i:], 30000)
			}
			return b
		}, false, 0, "memory cap"},
		{"small-cap", base, nil, false, 100, "memory cap"},
		{"datatype", base, put16(70, 32), false, 0, "datatype 32 (complex64)"},
		{"datatype-unknown", base, put16(70, 3), false, 0, "datatype 3"},
		{"bitpix", base, put16(72, 8), false, 0, "bitpix = 8"},
		{"pixdim-zero", base, putF32(80, 0), false, 0, "pixdim[1] = 0"},
		{"pixdim-negative", base, putF32(84, -1), false, 0, "pixdim[2] = -1"},
		{"pixdim-nan", base, putF32(88, float32(math.NaN())), false, 0, "pixdim[3] = NaN"},
		{"pixdim-inf", base, putF32(88, float32(math.Inf(1))), false, 0, "pixdim[3] = +Inf"},
		{"vox_offset-low", base, putF32(108, 100), false, 0, "vox_offset = 100"},
		{"vox_offset-fraction", base, putF32(108, 352.5), false, 0, "vox_offset"},
		{"vox_offset-beyond", base, putF32(108, 1e6), false, 0, "vox_offset = 1000000"},
		{"vox_offset-beyond-gz", base, putF32(108, 1e6), true, 0, "vox_offset = 1000000"},
		{"data-short", base, func(b []byte) []byte { return b[:len(b)-3] }, false, 0, "data"},
		{"data-short-gz", base, func(b []byte) []byte { return b[:len(b)-3] }, true, 0,
			"data"},
		{"scl_inter", base, func(b []byte) []byte {
			le.PutUint32(b[112:], math.Float32bits(2))
			le.PutUint32(b[116:], math.Float32bits(float32(math.Inf(1))))
			return b
		}, false, 0, "scl_inter"},
		{"quaternion", base, func(b []byte) []byte {
			le.PutUint16(b[252:], 1)
			le.PutUint16(b[254:], 0)
			le.PutUint32(b[256:], math.Float32bits(0.9))
			le.PutUint32(b[260:], math.Float32bits(0.9))
			return b
		}, false, 0, "quatern_b"},
		{"quatern-nan", base, func(b []byte) []byte {
			le.PutUint16(b[252:], 1)
			le.PutUint16(b[254:], 0)
			le.PutUint32(b[260:], math.Float32bits(float32(math.NaN())))
			return b
		}, false, 0, "quatern_c = NaN"},
		{"qoffset-inf", base, func(b []byte) []byte {
			le.PutUint16(b[252:], 2)
			le.PutUint16(b[254:], 0)
			le.PutUint32(b[276:], math.Float32bits(float32(math.Inf(-1))))
			return b
		}, false, 0, "qoffset_z = -Inf"},
		{"srow-nan", base, putF32(304, float32(math.NaN())), false, 0, "srow_y[2] = NaN"},
		{"srow-inf-v2", func() fixture { return baseFixture(2, le, Int16) },
			func(b []byte) []byte {
				le.PutUint64(b[400+32+8*3:], math.Float64bits(math.Inf(1)))
				return b
			}, false, 0, "srow_y[3] = +Inf"},
		{"v2-eol-bytes", v2, func(b []byte) []byte { b[9] = 'x'; return b }, false, 0,
			"end-of-line"},
		{"v2-dim-negative", v2, func(b []byte) []byte {
			le.PutUint64(b[16+8*3:], uint64(1<<64-7))
			return b
		}, false, 0, "dim[3] = -7"},
		{"v2-vox_offset-negative", v2, func(b []byte) []byte {
			le.PutUint64(b[168:], uint64(1<<64-600))
			return b
		}, false, 0, "vox_offset = not a non-negative whole number"},
		{"v2-vox_offset-ext-cap", v2, func(b []byte) []byte {
			le.PutUint64(b[168:], 1<<40)
			return b
		}, false, 0, "exceed the memory cap"},
		{"v2-vox_offset-beyond-gz", v2, func(b []byte) []byte {
			le.PutUint64(b[168:], 1<<30)
			return b
		}, true, 0, "vox_offset = 1073741824: beyond what"},
		{"esize", func() fixture {
			f := base()
			f.exts = []Extension{{Code: 6, Data: []byte("abc")}}
			return f
		}, func(b []byte) []byte { le.PutUint32(b[352:], 4); return b }, false, 0, "esize = 4"},
		{"esize-beyond", func() fixture {
			f := base()
			f.exts = []Extension{{Code: 6, Data: []byte("abc")}}
			return f
		}, func(b []byte) []byte { le.PutUint32(b[352:], 64); return b }, false, 0,
			"esize = 64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.fx()
			b := f.encode()
			if c.mutate != nil {
				b = c.mutate(b)
			}
			name := "bad.nii"
			if c.gz && len(b) > 0 {
				b = gzipBytes(b)
				name += ".gz"
			}
			p := filepath.Join(t.TempDir(), name)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Read(p, ReadOptions{MaxBytes: c.max})
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, p) ||
				!strings.HasPrefix(msg, "nifti: ") {
				t.Errorf("error %q: want it to name %q and the file", msg, c.want)
			}
		})
	}
}

// TestReadCorruptGzip damages the compressed stream itself.
func TestReadCorruptGzip(t *testing.T) {
	good := baseFixture(1, orders[0].bo, Float32)
	good.gz = true
	z := good.encode()
	cases := []struct {
		name   string
		mutate func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"no-trailer", func(b []byte) []byte { return b[:len(b)-6] }},
		{"bad-crc", func(b []byte) []byte { b[len(b)-6] ^= 0xff; return b }},
		{"bad-header", func(b []byte) []byte { b[3] = 0xff; return b[:12] }},
		{"garbage", func(b []byte) []byte {
			for i := 10; i < len(b)-8; i++ {
				b[i] = byte(i * 7)
			}
			return b
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mutate(append([]byte(nil), z...))
			p := filepath.Join(t.TempDir(), "bad.nii.gz")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Read(p, ReadOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
			if !strings.Contains(err.Error(), "gzip") && !strings.Contains(err.Error(), "ends") {
				t.Errorf("error %q does not say the gzip stream is bad", err)
			}
		})
	}
}

// TestQformAffineNonFinite calls QformAffine on headers Read would refuse: it must return
// an error naming the field, never panic.
func TestQformAffineNonFinite(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name string
		set  func(h *Header)
		want string
	}{
		{"quatern_b", func(h *Header) { h.QuaternB = nan }, "quatern_b = NaN"},
		{"quatern_d", func(h *Header) { h.QuaternD = -inf }, "quatern_d = -Inf"},
		{"qoffset_y", func(h *Header) { h.QoffsetY = nan }, "qoffset_y = NaN"},
		{"pixdim", func(h *Header) { h.Pixdim[2] = inf }, "pixdim[2] = +Inf"},
		{"not-unit", func(h *Header) { h.QuaternB, h.QuaternC = 0.8, 0.8 }, "unit quaternion"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &Header{Version: 1, QformCode: 1, Pixdim: [8]float64{1, 1, 1, 1}}
			c.set(h)
			if _, err := h.QformAffine(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
			if _, err := h.BestAffine(); err == nil {
				t.Fatal("BestAffine accepted the header")
			}
		})
	}
}

// TestReadStreamedGzip reads .nii.gz files larger than MaxBytes (random voxels do not
// compress) whose voxels fit within it: Read streams them from disk instead of loading the
// compressed bytes whole.
func TestReadStreamedGzip(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for _, dt := range []Datatype{Float32, Float64} {
		f := baseFixture(2, orders[1].bo, dt)
		f.gz = true
		f.dim = [8]int64{3, 20, 20, 10, 1, 1, 1, 1}
		f.exts = []Extension{{Code: 6, Data: []byte("streamed")}}
		f.values = make([]float64, f.nvox())
		for i := range f.values {
			// Random bits with the exponent's top bit clear: finite, and incompressible.
			if dt == Float32 {
				f.values[i] = float64(math.Float32frombits(rng.Uint32() &^ (1 << 30)))
			} else {
				f.values[i] = math.Float64frombits(rng.Uint64() &^ (1 << 62))
			}
		}
		p := f.save(t, "streamed")
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		limit := int64(dt.Size()*f.nvox()) + 100
		if st.Size() <= limit {
			t.Fatalf("fixture of %d bytes does not exceed the cap %d", st.Size(), limit)
		}
		img, err := Read(p, ReadOptions{MaxBytes: limit})
		if err != nil {
			t.Fatalf("%v: %v", dt, err)
		}
		for i, x := range f.vals() {
			if img.Volume.Data[i] != float32(x) {
				t.Fatalf("%v: voxel %d = %v, want %v", dt, i, img.Volume.Data[i], x)
			}
		}
	}
}

func TestReadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent.nii")
	if _, err := Read(p, ReadOptions{}); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error %v", err)
	}
}

// TestReadLarge exercises the chunked and parallel paths with more than one chunk.
func TestReadLarge(t *testing.T) {
	for _, dt := range []Datatype{Int16, Float32, Float64} {
		for _, gz := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v-gz%v", dt, gz), func(t *testing.T) {
				f := baseFixture(1, orders[1].bo, dt)
				f.dim = [8]int64{3, 97, 83, 71, 1, 1, 1, 1}
				f.gz = gz
				img, err := Read(f.save(t, "large"), ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for i, x := range f.vals() {
					if img.Volume.Data[i] != float32(x) {
						t.Fatalf("voxel %d = %v, want %v", i, img.Volume.Data[i], float32(x))
					}
				}
			})
		}
	}
}

// eofAtEnd is an io.ReaderAt that reports io.EOF with every read reaching the end of its
// data, as the io.ReaderAt contract allows.
type eofAtEnd struct{ b []byte }

func (r eofAtEnd) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[off:])
	if off+int64(n) == int64(len(r.b)) {
		return n, io.EOF
	}
	return n, nil
}

// TestDecodeReaderAtEOF reads an uncompressed file through a ReaderAt that returns io.EOF
// with the last full read: the voxels must decode, and a truncated file must still fail.
func TestDecodeReaderAtEOF(t *testing.T) {
	for _, dt := range []Datatype{Int16, Float32} {
		f := baseFixture(1, orders[0].bo, dt)
		b := f.encode()
		img, err := decode(eofAtEnd{b}, int64(len(b)), ReadOptions{})
		if err != nil {
			t.Fatalf("%v: %v", dt, err)
		}
		for i, x := range f.vals() {
			if img.Volume.Data[i] != float32(x) {
				t.Fatalf("%v: voxel %d = %v, want %v", dt, i, img.Volume.Data[i], x)
			}
		}
		short := b[:len(b)-1]
		if _, err := decode(eofAtEnd{short}, int64(len(short)), ReadOptions{}); err == nil {
			t.Fatalf("%v: truncated data accepted", dt)
		}
	}
}

// TestReadIntoCallerBuffer: with ReadOptions.Voxels, the voxels land in the caller's
// buffer (gzip and plain, scaled), equal to a plain Read; a buffer of the wrong length and
// an error of the supplier end the read with an error naming the file.
func TestReadIntoCallerBuffer(t *testing.T) {
	for _, gz := range []bool{false, true} {
		f := baseFixture(1, orders[0].bo, Int16)
		f.gz = gz
		f.dim = [8]int64{3, 7, 5, 3, 1, 1, 1, 1}
		f.slope, f.inter = 2, -1000
		f.values = make([]float64, f.nvox())
		for i := range f.values {
			f.values[i] = float64(i*37%400 - 200)
		}
		p := f.save(t, fmt.Sprint("caller-", gz))
		want, err := Read(p, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]float32, 2*f.nvox())
		var asked int
		img, err := Read(p, ReadOptions{Voxels: func(n int) ([]float32, error) {
			asked = n
			return buf[:n], nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		if asked != f.nvox() || &img.Volume.Data[0] != &buf[0] {
			t.Fatalf("gz %v: asked for %d values (want %d); data in the caller's buffer: %v",
				gz, asked, f.nvox(), &img.Volume.Data[0] == &buf[0])
		}
		for i := range want.Volume.Data {
			if buf[i] != want.Volume.Data[i] {
				t.Fatalf("gz %v: voxel %d = %v, want %v", gz, i, buf[i], want.Volume.Data[i])
			}
		}
		_, err = Read(p, ReadOptions{Voxels: func(n int) ([]float32, error) {
			return buf[:n-1], nil
		}})
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("gz %v: short buffer: %v", gz, err)
		}
		boom := errors.New("no pinned memory")
		if _, err := Read(p, ReadOptions{Voxels: func(int) ([]float32, error) {
			return nil, boom
		}}); !errors.Is(err, boom) {
			t.Errorf("gz %v: supplier error: %v", gz, err)
		}
	}
}

// TestReadHeaderOnly: the geometry and header of a header-only read equal a full read's,
// with no voxels, for plain and gzip files; a broken header is still refused.
func TestReadHeaderOnly(t *testing.T) {
	for _, gz := range []bool{false, true} {
		f := baseFixture(1, orders[1].bo, Float32)
		f.gz = gz
		f.dim = [8]int64{3, 9, 4, 6, 1, 1, 1, 1}
		f.exts = []Extension{{Code: 6, Data: []byte("kept")}}
		f.values = make([]float64, f.nvox())
		p := f.save(t, fmt.Sprint("header-", gz))
		full, err := Read(p, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := Read(p, ReadOptions{HeaderOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		v, w := hdr.Volume, full.Volume
		if v.Data != nil || v.Shape != w.Shape || v.Spacing != w.Spacing ||
			v.Affine != w.Affine || len(hdr.Header.Extensions) != 1 ||
			hdr.Header.Datatype != full.Header.Datatype {
			t.Errorf("gz %v: header-only %+v %+v, full %+v", gz, hdr.Header, v, w)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.nii")
	if err := os.WriteFile(bad, make([]byte, 40), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(bad, ReadOptions{HeaderOnly: true}); err == nil {
		t.Error("a truncated header was accepted")
	}
}
