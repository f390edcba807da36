package nifti

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// fixture describes a small NIfTI file built independently of the package's writer, in
// either version and byte order.
type fixture struct {
	version int
	bo      binary.ByteOrder
	dt      Datatype
	dim     [8]int64
	pixdim  [8]float64
	slope   float64
	inter   float64
	qcode   int32
	scode   int32
	quat    [3]float64
	qoff    [3]float64
	srow    [3][4]float64
	exts    []Extension
	gz      bool
	// values are stored in order, one per voxel; nil means the default pattern.
	values []float64
	// voxOffset overrides the computed vox_offset when non-zero.
	voxOffset int64
}

// baseFixture is a 5x4x3 image with an oblique-free sform, qform and scaling disabled.
func baseFixture(version int, bo binary.ByteOrder, dt Datatype) fixture {
	return fixture{
		version: version, bo: bo, dt: dt,
		dim:    [8]int64{3, 5, 4, 3, 1, 1, 1, 1},
		pixdim: [8]float64{1, 0.75, 1.5, 2.5, 1, 1, 1, 1},
		scode:  1,
		srow: [3][4]float64{
			{-0.75, 0, 0, 12.5}, {0, 1.5, 0, -30.25}, {0, 0, 2.5, 7},
		},
	}
}

// patternValues returns n deterministic values that exercise the range of dt, extremes
// included.
func patternValues(dt Datatype, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		switch dt {
		case Float32:
			v[i] = float64(float32(float64(i%37)*0.37 - 5.125))
		case Float64:
			v[i] = float64(i%41)*1.0000000001 - 17.3
		default:
			lo, hi := intRange(dt)
			span := hi - lo + 1
			v[i] = lo + math.Mod(float64(uint64(i)*2654435761), span)
		}
	}
	if dt.isInt() && n >= 2 {
		v[0], v[1] = intRange(dt)
	}
	return v
}

func (f *fixture) nvox() int {
	n := 1
	for a := int64(1); a <= f.dim[0]; a++ {
		n *= int(f.dim[a])
	}
	return n
}

func (f *fixture) vals() []float64 {
	if f.values != nil {
		return f.values
	}
	return patternValues(f.dt, f.nvox())
}

// encode returns the file's bytes.
func (f fixture) encode() []byte {
	hsize := 348
	if f.version == 2 {
		hsize = 540
	}
	var ext bytes.Buffer
	for _, e := range f.exts {
		n := (8 + len(e.Data) + 15) / 16 * 16
		var p [8]byte
		f.bo.PutUint32(p[:], uint32(n))
		f.bo.PutUint32(p[4:], uint32(e.Code))
		ext.Write(p[:])
		ext.Write(e.Data)
		ext.Write(make([]byte, n-8-len(e.Data)))
	}
	off := int64(hsize + 4 + ext.Len())
	if f.voxOffset != 0 {
		off = f.voxOffset
	}
	b := make([]byte, hsize+4)
	bo := f.bo
	i16 := func(o int, v int64) { bo.PutUint16(b[o:], uint16(int16(v))) }
	i32 := func(o int, v int64) { bo.PutUint32(b[o:], uint32(int32(v))) }
	i64 := func(o int, v int64) { bo.PutUint64(b[o:], uint64(v)) }
	f32 := func(o int, v float64) { bo.PutUint32(b[o:], math.Float32bits(float32(v))) }
	f64 := func(o int, v float64) { bo.PutUint64(b[o:], math.Float64bits(v)) }
	size := f.dt.Size()
	if size == 0 {
		size = 4
	}
	if f.version == 1 {
		i32(0, 348)
		for i, d := range f.dim {
			i16(40+2*i, d)
		}
		i16(70, int64(f.dt))
		i16(72, int64(8*size))
		for i, p := range f.pixdim {
			f32(76+4*i, p)
		}
		f32(108, float64(off))
		f32(112, f.slope)
		f32(116, f.inter)
		b[123] = 10
		copy(b[148:], "fixture")
		i16(252, int64(f.qcode))
		i16(254, int64(f.scode))
		for i := 0; i < 3; i++ {
			f32(256+4*i, f.quat[i])
			f32(268+4*i, f.qoff[i])
		}
		for r := 0; r < 3; r++ {
			for c := 0; c < 4; c++ {
				f32(280+16*r+4*c, f.srow[r][c])
			}
		}
		copy(b[344:], "n+1\x00")
	} else {
		i32(0, 540)
		copy(b[4:], "n+2\x00\r\n\x1a\n")
		i16(12, int64(f.dt))
		i16(14, int64(8*size))
		for i, d := range f.dim {
			i64(16+8*i, d)
		}
		for i, p := range f.pixdim {
			f64(104+8*i, p)
		}
		i64(168, off)
		f64(176, f.slope)
		f64(184, f.inter)
		copy(b[240:], "fixture")
		i32(344, int64(f.qcode))
		i32(348, int64(f.scode))
		for i := 0; i < 3; i++ {
			f64(352+8*i, f.quat[i])
			f64(376+8*i, f.qoff[i])
		}
		for r := 0; r < 3; r++ {
			for c := 0; c < 4; c++ {
				f64(400+32*r+8*c, f.srow[r][c])
			}
		}
		i32(500, 10)
	}
	if len(f.exts) > 0 {
		b[hsize] = 1
	}
	b = append(b, ext.Bytes()...)
	if int64(len(b)) < off {
		b = append(b, make([]byte, off-int64(len(b)))...)
	}
	for _, x := range f.vals() {
		var p [8]byte
		switch f.dt {
		case Uint8:
			p[0] = uint8(x)
		case Int8:
			p[0] = uint8(int8(x))
		case Int16, Uint16:
			bo.PutUint16(p[:], uint16(int64(x)))
		case Int32, Uint32:
			bo.PutUint32(p[:], uint32(int64(x)))
		case Float32:
			bo.PutUint32(p[:], math.Float32bits(float32(x)))
		case Float64:
			bo.PutUint64(p[:], math.Float64bits(x))
		default:
			bo.PutUint32(p[:], uint32(int64(x)))
		}
		b = append(b, p[:size]...)
	}
	if !f.gz {
		return b
	}
	return gzipBytes(b)
}

func gzipBytes(b []byte) []byte {
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(b)
	w.Close()
	return z.Bytes()
}

// save writes f to a temporary file and returns its path.
func (f fixture) save(t testing.TB, name string) string {
	t.Helper()
	if f.gz {
		name += ".nii.gz"
	} else {
		name += ".nii"
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, f.encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var orders = []struct {
	name string
	bo   binary.ByteOrder
}{{"le", binary.LittleEndian}, {"be", binary.BigEndian}}

var allTypes = []Datatype{Uint8, Int8, Int16, Uint16, Int32, Uint32, Float32, Float64}
