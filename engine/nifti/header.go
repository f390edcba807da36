package nifti

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Header sizes and minimum voxel offsets (header plus the 4-byte extension flag).
const (
	sizeofHdr1 = 348
	sizeofHdr2 = 540
)

// Datatype is a NIfTI datatype code.
type Datatype int16

// The datatypes Read accepts; Write accepts Uint8, Int16, Int32 and Float32.
const (
	Uint8   Datatype = 2
	Int16   Datatype = 4
	Int32   Datatype = 8
	Float32 Datatype = 16
	Float64 Datatype = 64
	Int8    Datatype = 256
	Uint16  Datatype = 512
	Uint32  Datatype = 768
)

var datatypeNames = map[Datatype]string{
	Uint8: "uint8", Int16: "int16", Int32: "int32", Float32: "float32", Float64: "float64",
	Int8: "int8", Uint16: "uint16", Uint32: "uint32",
	// Codes that exist in the standard but are not supported here, named for errors.
	1: "binary", 32: "complex64", 128: "rgb24", 1024: "int64", 1280: "uint64",
	1536: "float128", 1792: "complex128", 2048: "complex256", 2304: "rgba32",
}

// String returns the numpy-style name of d ("int16"), or "code N" for an unknown code.
func (d Datatype) String() string {
	if s, ok := datatypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("code %d", int(d))
}

// Size returns the bytes per voxel of a supported datatype, or 0 when d is unsupported.
func (d Datatype) Size() int {
	switch d {
	case Uint8, Int8:
		return 1
	case Int16, Uint16:
		return 2
	case Int32, Uint32, Float32:
		return 4
	case Float64:
		return 8
	}
	return 0
}

func (d Datatype) isInt() bool { return d != Float32 && d != Float64 }

// Extension is one NIfTI header extension, kept as read so that Write can copy it.
type Extension struct {
	// Code is the extension's ecode.
	Code int32
	// Data is the raw content after the 8-byte esize/ecode pair, padding included.
	Data []byte
}

// Header holds the fields of a NIfTI-1 or NIfTI-2 header, widened to the NIfTI-2 types
// (NIfTI-1 float32 values are stored exactly as float64). A Header returned by Read is
// owned by the caller; it is not safe for concurrent mutation.
type Header struct {
	// Version is 1 or 2.
	Version int
	// ByteOrder is the byte order of the file the header came from.
	ByteOrder binary.ByteOrder

	DimInfo    uint8
	Dim        [8]int64
	IntentP1   float64
	IntentP2   float64
	IntentP3   float64
	IntentCode int32
	IntentName string
	Datatype   Datatype
	Bitpix     int16
	SliceStart int64
	SliceEnd   int64
	SliceCode  int32
	// Pixdim[0] is qfac; Pixdim[1..3] the voxel size.
	Pixdim        [8]float64
	VoxOffset     int64
	SclSlope      float64
	SclInter      float64
	XYZTUnits     int32
	CalMax        float64
	CalMin        float64
	SliceDuration float64
	TOffset       float64
	Descrip       string
	AuxFile       string
	QformCode     int32
	SformCode     int32
	QuaternB      float64
	QuaternC      float64
	QuaternD      float64
	QoffsetX      float64
	QoffsetY      float64
	QoffsetZ      float64
	SrowX         [4]float64
	SrowY         [4]float64
	SrowZ         [4]float64

	// Extensions are the header extensions found between the header and vox_offset.
	Extensions []Extension
}

// Shape returns the three spatial sizes, with 1 for axes beyond dim[0].
func (h *Header) Shape() [3]int {
	s := [3]int{1, 1, 1}
	for a := 0; a < 3 && int64(a) < h.Dim[0]; a++ {
		s[a] = int(h.Dim[a+1])
	}
	return s
}

// cstring returns b up to its first NUL.
func cstring(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// sniffHeader reports the version and byte order from the first four bytes (sizeof_hdr).
func sniffHeader(b []byte) (version int, bo binary.ByteOrder, err error) {
	le := binary.LittleEndian.Uint32(b)
	be := binary.BigEndian.Uint32(b)
	switch {
	case le == sizeofHdr1:
		return 1, binary.LittleEndian, nil
	case be == sizeofHdr1:
		return 1, binary.BigEndian, nil
	case le == sizeofHdr2:
		return 2, binary.LittleEndian, nil
	case be == sizeofHdr2:
		return 2, binary.BigEndian, nil
	}
	return 0, nil, fmt.Errorf("sizeof_hdr = %d: want 348 (NIfTI-1) or 540 (NIfTI-2) "+
		"in either byte order", int32(le))
}

// fieldReader decodes fixed-offset header fields in one byte order.
type fieldReader struct {
	b  []byte
	bo binary.ByteOrder
}

func (r fieldReader) i16(off int) int16 { return int16(r.bo.Uint16(r.b[off:])) }
func (r fieldReader) i32(off int) int32 { return int32(r.bo.Uint32(r.b[off:])) }
func (r fieldReader) i64(off int) int64 { return int64(r.bo.Uint64(r.b[off:])) }
func (r fieldReader) f32(off int) float64 {
	return float64(math.Float32frombits(r.bo.Uint32(r.b[off:])))
}
func (r fieldReader) f64(off int) float64 { return math.Float64frombits(r.bo.Uint64(r.b[off:])) }
func (r fieldReader) str(off, n int) string {
	return cstring(r.b[off : off+n])
}

// parseHeader decodes a full header block (348 or 540 bytes) without validating it.
// It returns the magic string for validation.
func parseHeader(b []byte, version int, bo binary.ByteOrder) (*Header, string) {
	r := fieldReader{b, bo}
	h := &Header{Version: version, ByteOrder: bo}
	if version == 1 {
		h.DimInfo = b[39]
		for i := range h.Dim {
			h.Dim[i] = int64(r.i16(40 + 2*i))
		}
		h.IntentP1, h.IntentP2, h.IntentP3 = r.f32(56), r.f32(60), r.f32(64)
		h.IntentCode = int32(r.i16(68))
		h.Datatype = Datatype(r.i16(70))
		h.Bitpix = r.i16(72)
		h.SliceStart = int64(r.i16(74))
		for i := range h.Pixdim {
			h.Pixdim[i] = r.f32(76 + 4*i)
		}
		vo := r.f32(108)
		h.VoxOffset = voxOffsetInt(vo)
		h.SclSlope, h.SclInter = r.f32(112), r.f32(116)
		h.SliceEnd = int64(r.i16(120))
		h.SliceCode = int32(b[122])
		h.XYZTUnits = int32(b[123])
		h.CalMax, h.CalMin = r.f32(124), r.f32(128)
		h.SliceDuration, h.TOffset = r.f32(132), r.f32(136)
		h.Descrip = r.str(148, 80)
		h.AuxFile = r.str(228, 24)
		h.QformCode, h.SformCode = int32(r.i16(252)), int32(r.i16(254))
		h.QuaternB, h.QuaternC, h.QuaternD = r.f32(256), r.f32(260), r.f32(264)
		h.QoffsetX, h.QoffsetY, h.QoffsetZ = r.f32(268), r.f32(272), r.f32(276)
		for i := 0; i < 4; i++ {
			h.SrowX[i], h.SrowY[i], h.SrowZ[i] = r.f32(280+4*i), r.f32(296+4*i), r.f32(312+4*i)
		}
		h.IntentName = r.str(328, 16)
		return h, string(b[344:348])
	}
	h.Datatype = Datatype(r.i16(12))
	h.Bitpix = r.i16(14)
	for i := range h.Dim {
		h.Dim[i] = r.i64(16 + 8*i)
	}
	h.IntentP1, h.IntentP2, h.IntentP3 = r.f64(80), r.f64(88), r.f64(96)
	for i := range h.Pixdim {
		h.Pixdim[i] = r.f64(104 + 8*i)
	}
	h.VoxOffset = r.i64(168)
	h.SclSlope, h.SclInter = r.f64(176), r.f64(184)
	h.CalMax, h.CalMin = r.f64(192), r.f64(200)
	h.SliceDuration, h.TOffset = r.f64(208), r.f64(216)
	h.SliceStart, h.SliceEnd = r.i64(224), r.i64(232)
	h.Descrip = r.str(240, 80)
	h.AuxFile = r.str(320, 24)
	h.QformCode, h.SformCode = r.i32(344), r.i32(348)
	h.QuaternB, h.QuaternC, h.QuaternD = r.f64(352), r.f64(360), r.f64(368)
	h.QoffsetX, h.QoffsetY, h.QoffsetZ = r.f64(376), r.f64(384), r.f64(392)
	for i := 0; i < 4; i++ {
		h.SrowX[i], h.SrowY[i], h.SrowZ[i] = r.f64(400+8*i), r.f64(432+8*i), r.f64(464+8*i)
	}
	h.SliceCode = r.i32(496)
	h.XYZTUnits = r.i32(500)
	h.IntentCode = r.i32(504)
	h.IntentName = r.str(508, 16)
	h.DimInfo = b[524]
	return h, string(b[4:12])
}

// voxOffsetInt converts a NIfTI-1 float vox_offset to an integer, or -1 when it is not a
// finite whole number in range (the validator reports that).
func voxOffsetInt(v float64) int64 {
	if math.IsNaN(v) || v < 0 || v > 1<<53 || v != math.Trunc(v) {
		return -1
	}
	return int64(v)
}

// validate checks the header fields that Read relies on and returns the number of voxels
// and voxel bytes. Errors name the field; the caller adds the file name.
func (h *Header) validate(magic string, maxBytes int64) (nvox, nbytes int64, err error) {
	switch {
	case h.Version == 1 && magic == "ni1\x00":
		return 0, 0, fmt.Errorf("magic %q: separate .hdr/.img pairs are not supported", magic)
	case h.Version == 1 && magic != "n+1\x00":
		return 0, 0, fmt.Errorf("magic %q: want \"n+1\" for a NIfTI-1 file "+
			"(sizeof_hdr = 348)", magic)
	case h.Version == 2 && magic[:4] == "ni2\x00":
		return 0, 0, fmt.Errorf("magic %q: separate .hdr/.img pairs are not supported", magic)
	case h.Version == 2 && magic[:4] != "n+2\x00":
		return 0, 0, fmt.Errorf("magic %q: want \"n+2\" for a NIfTI-2 file "+
			"(sizeof_hdr = 540)", magic)
	case h.Version == 2 && magic[4:] != "\r\n\x1a\n":
		return 0, 0, fmt.Errorf("magic %q: NIfTI-2 end-of-line check bytes are corrupt", magic)
	}
	nd := h.Dim[0]
	if nd < 1 || nd > 7 {
		return 0, 0, fmt.Errorf("dim[0] = %d: want 1 to 7", nd)
	}
	nvox = 1
	for a := int64(1); a <= nd; a++ {
		d := h.Dim[a]
		if d <= 0 {
			return 0, 0, fmt.Errorf("dim[%d] = %d: must be positive", a, d)
		}
		if a > 3 && d != 1 {
			return 0, 0, fmt.Errorf("dim[%d] = %d: only one volume is supported "+
				"(dims beyond the third must be 1)", a, d)
		}
		if d > math.MaxInt64/nvox {
			return 0, 0, fmt.Errorf("dim[%d] = %d: voxel count overflows", a, d)
		}
		nvox *= d
	}
	size := int64(h.Datatype.Size())
	if size == 0 {
		return 0, 0, fmt.Errorf("datatype %d (%v) is not supported: want uint8, int8, "+
			"int16, uint16, int32, uint32, float32 or float64", int(h.Datatype), h.Datatype)
	}
	if int64(h.Bitpix) != 8*size {
		return 0, 0, fmt.Errorf("bitpix = %d does not match datatype %v (want %d)",
			h.Bitpix, h.Datatype, 8*size)
	}
	// The float32 output and the stored voxels both count against the cap.
	out := int64(4)
	if size > out {
		out = size
	}
	if nvox > maxBytes/out {
		return 0, 0, fmt.Errorf("dim: %v voxels of %v need %s, over the memory cap of "+
			"%d bytes (ReadOptions.MaxBytes)", h.Dim[1:nd+1], h.Datatype,
			bytesString(nvox, out), maxBytes)
	}
	for a := 1; a <= 3; a++ {
		p := h.Pixdim[a]
		if int64(a) > nd {
			// nibabel repairs unused axes: 0 becomes 1, negatives their absolute value.
			if p == 0 {
				p = 1
			}
			p = math.Abs(p)
			h.Pixdim[a] = p
		}
		if !(p > 0) || math.IsInf(p, 0) {
			return 0, 0, fmt.Errorf("pixdim[%d] = %v: voxel size must be positive and finite",
				a, p)
		}
	}
	minOff := int64(sizeofHdr1 + 4)
	if h.Version == 2 {
		minOff = sizeofHdr2 + 4
	}
	if h.VoxOffset < minOff {
		return 0, 0, fmt.Errorf("vox_offset = %s: before the end of the header (%d)",
			h.voxOffsetString(), minOff)
	}
	if _, _, err := h.scaling(); err != nil {
		return 0, 0, err
	}
	return nvox, nvox * size, nil
}

func (h *Header) voxOffsetString() string {
	if h.VoxOffset < 0 {
		return "not a non-negative whole number"
	}
	return fmt.Sprint(h.VoxOffset)
}

func bytesString(n, size int64) string {
	if n > math.MaxInt64/size {
		return "more than 2^63 bytes"
	}
	return fmt.Sprintf("%d bytes", n*size)
}

// scaling returns nibabel's (slope, inter) and whether scaling applies: a zero or
// non-finite slope means none; a valid slope with a non-finite intercept is an error.
func (h *Header) scaling() (slope, inter float64, err error) {
	slope, inter = h.SclSlope, h.SclInter
	if slope == 0 || math.IsNaN(slope) || math.IsInf(slope, 0) {
		return 1, 0, nil
	}
	if math.IsNaN(inter) || math.IsInf(inter, 0) {
		return 0, 0, fmt.Errorf("scl_inter = %v: must be finite when scl_slope = %v is set",
			inter, slope)
	}
	return slope, inter, nil
}
