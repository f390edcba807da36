package nifti

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/internal/atomicfile"
)

// WriteOptions tunes Write.
type WriteOptions struct {
	// Datatype of the stored voxels: Float32 (the default when zero), or Uint8, Int16 or
	// Int32 for label maps, whose values are rounded half to even and must fit the type.
	Datatype Datatype
	// Like is the header of the image the volume derives from. Its qform/sform codes,
	// units, intent, description and aux_file are kept; when its best affine equals the
	// volume's affine its qform and sform are copied unchanged.
	Like *Header
	// KeepExtensions copies Like's extensions into the output.
	KeepExtensions bool
}

// Write stores v at path as a single-file NIfTI-1 image, gzip-compressed when path ends in
// ".nii.gz" and raw when it ends in ".nii". The file appears atomically: Write writes a
// temporary file in the same directory, syncs it and renames it over path, and removes the
// temporary file on any error.
//
// The sform holds v.Affine (rounded to float32, as NIfTI-1 stores it) and the qform the
// closest rotation, zooms and qfac derived from it, so nibabel reads v.Affine back. Write
// does not modify v or opt.Like.
func Write(path string, v *volume.Volume, opt WriteOptions) error {
	if err := write(path, v, opt); err != nil {
		return fmt.Errorf("nifti: write %s: %w", path, err)
	}
	return nil
}

func write(path string, v *volume.Volume, opt WriteOptions) error {
	gz := strings.HasSuffix(path, ".nii.gz")
	if !gz && !strings.HasSuffix(path, ".nii") {
		return errors.New("file name must end in .nii or .nii.gz")
	}
	if err := v.Validate(); err != nil {
		return err
	}
	for r := 0; r < 3; r++ {
		for c := 0; c < 4; c++ {
			if x := v.Affine[r][c]; math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("affine[%d][%d] = %v: must be finite", r, c, x)
			}
		}
	}
	h, err := outputHeader(v, opt)
	if err != nil {
		return err
	}
	if err := checkRange(v, h.Datatype); err != nil {
		return err
	}
	hdr := encodeHeader1(h)

	return atomicfile.Write(path, func(f io.Writer) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		var w io.Writer = bw
		var zw *gzip.Writer
		if gz {
			zw = gzip.NewWriter(bw)
			w = zw
		}
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		if err := writeVoxels(w, v.Data, h.Datatype); err != nil {
			return err
		}
		if zw != nil {
			if err := zw.Close(); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
}

// outputHeader builds the NIfTI-1 header for v.
func outputHeader(v *volume.Volume, opt WriteOptions) (*Header, error) {
	dt := opt.Datatype
	if dt == 0 {
		dt = Float32
	}
	switch dt {
	case Float32, Uint8, Int16, Int32:
	default:
		return nil, fmt.Errorf("datatype %v: Write supports float32, uint8, int16, int32", dt)
	}
	for a, n := range v.Shape {
		if n > math.MaxInt16 {
			return nil, fmt.Errorf("dim[%d] = %d: NIfTI-1 allows at most %d", a+1, n,
				math.MaxInt16)
		}
	}
	h := &Header{Version: 1, ByteOrder: binary.LittleEndian, Datatype: dt,
		Bitpix: int16(8 * dt.Size()), SclSlope: 1, XYZTUnits: 2}
	h.Dim = [8]int64{3, int64(v.Shape[0]), int64(v.Shape[1]), int64(v.Shape[2]), 1, 1, 1, 1}
	h.Pixdim = [8]float64{1, v.Spacing[0], v.Spacing[1], v.Spacing[2], 1, 1, 1, 1}
	like := opt.Like
	if like != nil {
		h.DimInfo = like.DimInfo
		h.IntentCode, h.IntentName = like.IntentCode, like.IntentName
		h.IntentP1, h.IntentP2, h.IntentP3 = like.IntentP1, like.IntentP2, like.IntentP3
		h.XYZTUnits = like.XYZTUnits
		h.Descrip, h.AuxFile = like.Descrip, like.AuxFile
		h.TOffset = like.TOffset
		if opt.KeepExtensions {
			h.Extensions = like.Extensions
			size := sizeofHdr1 + 4
			for _, e := range h.Extensions {
				size += extDiskSize(e)
			}
			// vox_offset is a float32 in NIfTI-1: past 2^24 it cannot hold every offset.
			if size > 1<<24 {
				return nil, fmt.Errorf("extensions: %d bytes put vox_offset past 2^24, "+
					"which NIfTI-1's float32 vox_offset cannot hold exactly", size)
			}
		}
	}
	if like != nil && sameGeometry32(like, v) {
		h.QformCode, h.SformCode = like.QformCode, like.SformCode
		h.QuaternB, h.QuaternC, h.QuaternD = like.QuaternB, like.QuaternC, like.QuaternD
		h.QoffsetX, h.QoffsetY, h.QoffsetZ = like.QoffsetX, like.QoffsetY, like.QoffsetZ
		h.SrowX, h.SrowY, h.SrowZ = like.SrowX, like.SrowY, like.SrowZ
		h.Pixdim[0] = like.Pixdim[0]
		return h, nil
	}
	scode, qcode := int32(2), int32(2)
	if like != nil && like.SformCode > 0 {
		scode = like.SformCode
	}
	if like != nil && like.QformCode > 0 {
		qcode = like.QformCode
	}
	a := v.Affine
	h.SformCode = scode
	h.SrowX, h.SrowY, h.SrowZ = a[0], a[1], a[2]
	if err := h.setQform(a, qcode); err != nil {
		return nil, err
	}
	// The voxel size is the volume's spacing, not the affine's column norms.
	h.Pixdim[1], h.Pixdim[2], h.Pixdim[3] = v.Spacing[0], v.Spacing[1], v.Spacing[2]
	h.QuaternB, h.QuaternC, h.QuaternD = shrinkQuaternion32(h.QuaternB, h.QuaternC, h.QuaternD)
	return h, nil
}

// sameGeometry32 reports whether like's geometry can be copied unchanged: its best affine
// equals v's, its pixdim equals v's spacing, and every geometry field survives NIfTI-1's
// float32 storage.
func sameGeometry32(like *Header, v *volume.Volume) bool {
	aff, err := like.BestAffine()
	if err != nil || aff != v.Affine {
		return false
	}
	vals := []float64{like.QuaternB, like.QuaternC, like.QuaternD, like.QoffsetX,
		like.QoffsetY, like.QoffsetZ, like.Pixdim[0]}
	for a := 0; a < 3; a++ {
		if like.Pixdim[a+1] != v.Spacing[a] {
			return false
		}
		vals = append(vals, like.Pixdim[a+1])
	}
	vals = append(vals, like.SrowX[:]...)
	vals = append(vals, like.SrowY[:]...)
	vals = append(vals, like.SrowZ[:]...)
	for _, x := range vals {
		if float64(float32(x)) != x {
			return false
		}
	}
	return true
}

// checkRange verifies that every voxel of v fits datatype dt after rounding.
func checkRange(v *volume.Volume, dt Datatype) error {
	if dt == Float32 {
		return nil
	}
	lo, hi := intRange(dt)
	return parallelRanges(len(v.Data), 1<<20, func(a, b int) error {
		for i := a; i < b; i++ {
			x := math.RoundToEven(float64(v.Data[i]))
			if !(x >= lo && x <= hi) {
				nx, ny := v.Shape[0], v.Shape[1]
				return fmt.Errorf("voxel (%d, %d, %d) = %v does not fit %v (%v to %v)",
					i%nx, i/nx%ny, i/(nx*ny), v.Data[i], dt, lo, hi)
			}
		}
		return nil
	})
}

// writeVoxels encodes data as little-endian dt in chunks.
func writeVoxels(w io.Writer, data []float32, dt Datatype) error {
	size := dt.Size()
	buf := make([]byte, chunkVoxels*size)
	le := binary.LittleEndian
	for off := 0; off < len(data); off += chunkVoxels {
		src := data[off:min(off+chunkVoxels, len(data))]
		b := buf[:len(src)*size]
		switch dt {
		case Float32:
			for i, x := range src {
				le.PutUint32(b[4*i:], math.Float32bits(x))
			}
		case Uint8:
			for i, x := range src {
				b[i] = uint8(math.RoundToEven(float64(x)))
			}
		case Int16:
			for i, x := range src {
				le.PutUint16(b[2*i:], uint16(int16(math.RoundToEven(float64(x)))))
			}
		case Int32:
			for i, x := range src {
				le.PutUint32(b[4*i:], uint32(int32(math.RoundToEven(float64(x)))))
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// encodeHeader1 encodes h as a little-endian NIfTI-1 header, extension flag and extensions,
// with vox_offset set to where the voxels start.
func encodeHeader1(h *Header) []byte {
	extSize := 0
	for _, e := range h.Extensions {
		extSize += extDiskSize(e)
	}
	voxOffset := sizeofHdr1 + 4 + extSize
	b := make([]byte, voxOffset)
	le := binary.LittleEndian
	i16 := func(off int, v int64) { le.PutUint16(b[off:], uint16(int16(v))) }
	f32 := func(off int, v float64) { le.PutUint32(b[off:], math.Float32bits(float32(v))) }
	le.PutUint32(b[0:], sizeofHdr1)
	b[38] = 'r'
	b[39] = h.DimInfo
	for i, d := range h.Dim {
		i16(40+2*i, d)
	}
	f32(56, h.IntentP1)
	f32(60, h.IntentP2)
	f32(64, h.IntentP3)
	i16(68, int64(h.IntentCode))
	i16(70, int64(h.Datatype))
	i16(72, int64(h.Bitpix))
	i16(74, h.SliceStart)
	for i, p := range h.Pixdim {
		f32(76+4*i, p)
	}
	f32(108, float64(voxOffset))
	f32(112, h.SclSlope)
	f32(116, h.SclInter)
	i16(120, h.SliceEnd)
	b[122] = byte(h.SliceCode)
	b[123] = byte(h.XYZTUnits)
	f32(124, h.CalMax)
	f32(128, h.CalMin)
	f32(132, h.SliceDuration)
	f32(136, h.TOffset)
	copy(b[148:148+79], h.Descrip)
	copy(b[228:228+23], h.AuxFile)
	i16(252, int64(h.QformCode))
	i16(254, int64(h.SformCode))
	f32(256, h.QuaternB)
	f32(260, h.QuaternC)
	f32(264, h.QuaternD)
	f32(268, h.QoffsetX)
	f32(272, h.QoffsetY)
	f32(276, h.QoffsetZ)
	for i := 0; i < 4; i++ {
		f32(280+4*i, h.SrowX[i])
		f32(296+4*i, h.SrowY[i])
		f32(312+4*i, h.SrowZ[i])
	}
	copy(b[328:328+15], h.IntentName)
	copy(b[344:], "n+1\x00")
	if len(h.Extensions) > 0 {
		b[348] = 1
	}
	off := sizeofHdr1 + 4
	for _, e := range h.Extensions {
		n := extDiskSize(e)
		le.PutUint32(b[off:], uint32(n))
		le.PutUint32(b[off+4:], uint32(e.Code))
		copy(b[off+8:], e.Data)
		off += n
	}
	return b
}

// extDiskSize is an extension's esize: 8 bytes of esize/ecode plus its data, padded to a
// multiple of 16.
func extDiskSize(e Extension) int { return (8 + len(e.Data) + 15) / 16 * 16 }
