package nifti

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/internal/gunzip"
)

// DefaultMaxBytes is the voxel memory cap Read uses when ReadOptions.MaxBytes is zero.
const DefaultMaxBytes int64 = 8 << 30

// maxDeflateRatio bounds how many bytes a deflate stream can expand to per input byte
// (1032:1 in the best case for the format); it lets Read refuse a small .nii.gz that
// promises a huge image before allocating for it.
const maxDeflateRatio = 1032

// chunkVoxels is the number of voxels converted per chunk.
const chunkVoxels = 1 << 18

// ReadOptions tunes Read.
type ReadOptions struct {
	// MaxBytes caps the memory Read allocates: the float32 output and the stored voxels
	// must each fit in it, the extensions count against it with the voxels, and a .nii.gz
	// larger than it is streamed from disk rather than loaded whole. Zero or less means
	// DefaultMaxBytes.
	MaxBytes int64
	// Voxels, when set, supplies the float32 voxel buffer of n values that Read fills
	// (after the size checks), instead of a new slice: the GPU pipeline passes pinned
	// memory so that the voxels are decoded straight into what is copied to the device. It
	// must return exactly n values; an error from it ends the read.
	Voxels func(n int) ([]float32, error)
	// HeaderOnly stops after the header and extensions, checked as for a full read: the
	// Image's Volume has Shape, Spacing and Affine but no Data. A .nii.gz is then inflated
	// only as far as its header and extensions.
	HeaderOnly bool
}

// maxBytes returns the memory cap opt sets.
func maxBytes(opt ReadOptions) int64 {
	if opt.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return opt.MaxBytes
}

// Image is a decoded NIfTI file: its header and its voxels as a float32 Volume with the
// spacing pixdim[1..3] and nibabel's best affine. The caller owns both.
type Image struct {
	Header *Header
	Volume *volume.Volume
}

// Read decodes the NIfTI-1 or NIfTI-2 file at path (.nii or .nii.gz, recognised by its
// content) into float32 voxels after scl_slope/scl_inter scaling, bit for bit what nibabel's
// get_fdata(dtype=float32) returns.
//
// Read refuses, with an error naming the file and the field: empty and truncated files,
// corrupt gzip streams, a sizeof_hdr other than 348 or 540, a wrong magic, dim[0] outside
// 1..7, non-positive dims, more than one volume, voxel counts that overflow or exceed the
// cap, unsupported datatypes, bitpix not matching the datatype, zero, negative or
// non-finite pixdim[1..3] (nibabel repairs those), vox_offset before the end of the
// header or beyond the file, malformed extensions, data shorter than the header promises,
// and a chosen sform or qform with a NaN or infinite entry or a quaternion that is not a
// unit quaternion. Invalid qform/sform codes are treated as 0 and a qfac other than -1 as
// 1, as nibabel does.
func Read(path string, opt ReadOptions) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nifti: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("nifti: %w", err)
	}
	var ra io.ReaderAt = f
	var magic [2]byte
	n, _ := f.ReadAt(magic[:], 0)
	if n == 2 && magic[0] == 0x1f && magic[1] == 0x8b && st.Size() <= maxBytes(opt) &&
		!opt.HeaderOnly {
		// The compressed bytes are read once into memory: the inflater's fast path for
		// in-memory input beats a buffered file reader by a wide margin. A file larger
		// than the memory cap is streamed instead, so the cap bounds this buffer too.
		buf := make([]byte, st.Size())
		if _, err := io.ReadFull(f, buf); err != nil {
			return nil, fmt.Errorf("nifti: %s: %w", path, err)
		}
		ra = bytes.NewReader(buf)
	}
	img, err := decode(ra, st.Size(), opt)
	if err != nil {
		return nil, fmt.Errorf("nifti: %s: %w", path, err)
	}
	return img, nil
}

// gzipError marks an error of the gzip decoder (corrupt or truncated compressed data), as
// opposed to a stream that ends cleanly too early.
type gzipError struct{ err error }

func (e *gzipError) Error() string { return "corrupt or truncated gzip stream: " + e.err.Error() }
func (e *gzipError) Unwrap() error { return e.err }

type gzipReader struct{ r *gunzip.Reader }

func (g gzipReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		err = &gzipError{err}
	}
	return n, err
}

// readFull reads len(b) bytes of what; a clean early end becomes an error naming what.
func readFull(r io.Reader, b []byte, what string) error {
	n, err := io.ReadFull(r, b)
	if err == nil {
		return nil
	}
	var ge *gzipError
	if errors.As(err, &ge) {
		return err
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%s: file ends after %d of %d bytes", what, n, len(b))
	}
	return err
}

// decode reads a whole image from ra (size bytes).
func decode(ra io.ReaderAt, size int64, opt ReadOptions) (*Image, error) {
	maxBytes := maxBytes(opt)
	if size == 0 {
		return nil, errors.New("empty file")
	}
	var magic [2]byte
	n, _ := ra.ReadAt(magic[:], 0)
	gz := n == 2 && magic[0] == 0x1f && magic[1] == 0x8b
	var stream io.Reader
	if gz {
		var src io.Reader
		if br, ok := ra.(*bytes.Reader); ok && br.Size() == size {
			if _, err := br.Seek(0, io.SeekStart); err != nil {
				return nil, err
			}
			src = br
		} else {
			src = bufio.NewReaderSize(io.NewSectionReader(ra, 0, size), 1<<17)
		}
		zr, err := gunzip.NewReader(src)
		if err != nil {
			return nil, &gzipError{err}
		}
		defer zr.Close()
		stream = gzipReader{zr}
	} else {
		stream = io.NewSectionReader(ra, 0, size)
	}

	// Header: sizeof_hdr first, which gives the version and byte order.
	hb := make([]byte, sizeofHdr2)
	if err := readFull(stream, hb[:4], "sizeof_hdr"); err != nil {
		return nil, err
	}
	version, bo, err := sniffHeader(hb)
	if err != nil {
		return nil, err
	}
	hsize := sizeofHdr1
	if version == 2 {
		hsize = sizeofHdr2
	}
	if err := readFull(stream, hb[4:hsize], "header"); err != nil {
		return nil, err
	}
	h, hmagic := parseHeader(hb[:hsize], version, bo)
	nvox, nbytes, err := h.validate(hmagic, maxBytes)
	if err != nil {
		return nil, err
	}
	if !validXform(h.QformCode) {
		h.QformCode = 0
	}
	if !validXform(h.SformCode) {
		h.SformCode = 0
	}
	if h.Pixdim[0] != 1 && h.Pixdim[0] != -1 {
		h.Pixdim[0] = 1
	}
	aff, err := h.BestAffine()
	if err != nil {
		return nil, err
	}

	// Bounds before any large allocation.
	extLen := h.VoxOffset - int64(hsize) - 4
	if extLen > maxBytes-nbytes {
		return nil, fmt.Errorf("vox_offset = %d: %d bytes of extensions exceed the memory "+
			"cap with the voxels", h.VoxOffset, extLen)
	}
	if !gz {
		if h.VoxOffset > size {
			return nil, fmt.Errorf("vox_offset = %d: beyond the end of the file (%d bytes)",
				h.VoxOffset, size)
		}
		if nbytes > size-h.VoxOffset {
			return nil, fmt.Errorf("data: %d voxel bytes promised by dim and datatype from "+
				"vox_offset %d, but the file has %d", nbytes, h.VoxOffset, size-h.VoxOffset)
		}
	} else if size <= math.MaxInt64/maxDeflateRatio {
		bound := size*maxDeflateRatio + (1 << 16)
		if h.VoxOffset > bound {
			return nil, fmt.Errorf("vox_offset = %d: beyond what %d bytes of gzip can hold",
				h.VoxOffset, size)
		}
		if nbytes > bound-h.VoxOffset {
			return nil, fmt.Errorf("data: %d voxel bytes promised by dim and datatype from "+
				"vox_offset %d cannot come from %d bytes of gzip", nbytes, h.VoxOffset, size)
		}
	}

	// Extension flag and extensions, read through a buffer that grows only as data arrives.
	var flag [4]byte
	if err := readFull(stream, flag[:], "extension flag"); err != nil {
		return nil, err
	}
	var ext bytes.Buffer
	if extLen > 0 {
		m, err := io.CopyN(&ext, stream, extLen)
		if err != nil {
			var ge *gzipError
			if errors.As(err, &ge) {
				return nil, err
			}
			return nil, fmt.Errorf("vox_offset = %d: beyond the end of the data (%d bytes "+
				"after the header)", h.VoxOffset, int64(hsize)+4+m)
		}
	}
	if flag[0] != 0 {
		if h.Extensions, err = parseExtensions(ext.Bytes(), bo, int64(hsize)+4); err != nil {
			return nil, err
		}
	}

	vol := &volume.Volume{
		Shape:   h.Shape(),
		Spacing: [3]float64{h.Pixdim[1], h.Pixdim[2], h.Pixdim[3]},
		Affine:  aff,
	}
	if opt.HeaderOnly {
		return &Image{Header: h, Volume: vol}, nil
	}
	slope, inter, _ := h.scaling()
	plan := planScaling(h.Datatype, slope, inter)
	swap := bo != nativeOrder && h.Datatype.Size() > 1
	if opt.Voxels == nil {
		vol.Data = make([]float32, nvox)
	} else {
		if vol.Data, err = opt.Voxels(int(nvox)); err != nil {
			return nil, err
		}
		if int64(len(vol.Data)) != nvox {
			return nil, fmt.Errorf("the voxel buffer holds %d values for %d voxels",
				len(vol.Data), nvox)
		}
	}
	if gz {
		err = readStream(stream, vol.Data, h.Datatype, swap, &plan)
	} else {
		err = readAt(ra, h.VoxOffset, vol.Data, h.Datatype, swap, &plan)
	}
	if err != nil {
		return nil, err
	}
	if gz {
		// Read a little past the voxels so that the gzip checksum of an ordinary file is
		// verified; a long trailer is left unread.
		if _, err := io.CopyN(io.Discard, stream, 1<<16); err != nil && err != io.EOF {
			return nil, err
		}
	}
	return &Image{Header: h, Volume: vol}, nil
}

// parseExtensions splits the extension area into extensions as nibabel does (while 16 or
// more bytes remain); start is the file offset of b, for error messages.
func parseExtensions(b []byte, bo binary.ByteOrder, start int64) (
	[]Extension, error) {
	var exts []Extension
	off := 0
	for len(b)-off >= 16 {
		esize := int64(int32(bo.Uint32(b[off:])))
		ecode := int32(bo.Uint32(b[off+4:]))
		if esize < 8 || esize > int64(len(b)-off) {
			return nil, fmt.Errorf("extension %d: esize = %d at byte %d: want 8 to %d "+
				"(the bytes left before vox_offset)", len(exts), esize, start+int64(off),
				len(b)-off)
		}
		data := append([]byte(nil), b[off+8:off+int(esize)]...)
		exts = append(exts, Extension{Code: ecode, Data: data})
		off += int(esize)
	}
	return exts, nil
}

// readStream decodes the voxels from a sequential stream: one goroutine inflates chunks
// while the caller converts the previous one. Float32 voxels are read straight into out.
// Inflate (internal/gunzip, the system zlib) is single-threaded and still most of a .nii.gz
// read; a block index (as rapidgzip builds) would let several cores inflate one file.
func readStream(r io.Reader, out []float32, dt Datatype, swap bool, plan *scalePlan) error {
	if dt == Float32 {
		if err := readFull(r, float32Bytes(out), "data"); err != nil {
			return err
		}
		if !swap && plan.none() {
			return nil
		}
		return parallelRanges(len(out), chunkVoxels, func(lo, hi int) error {
			convertChunk(out[lo:hi], float32Bytes(out[lo:hi]), dt, swap, plan)
			return nil
		})
	}
	size := dt.Size()
	type chunk struct {
		buf []byte
		off int
		err error
	}
	const nbuf = 3
	free := make(chan []byte, nbuf)
	for i := 0; i < nbuf; i++ {
		free <- alignedBytes(chunkVoxels * size)
	}
	full := make(chan chunk, nbuf)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(full)
		for off := 0; off < len(out); off += chunkVoxels {
			var buf []byte
			select {
			case buf = <-free:
			case <-done:
				return
			}
			m := min(chunkVoxels, len(out)-off)
			err := readFull(r, buf[:m*size], "data")
			if err != nil {
				err = fmt.Errorf("data: voxel %d of %d: %w", off, len(out), err)
			}
			select {
			case full <- chunk{buf, off, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range full {
		if c.err != nil {
			return c.err
		}
		m := min(chunkVoxels, len(out)-c.off)
		convertChunk(out[c.off:c.off+m], c.buf, dt, swap, plan)
		free <- c.buf
	}
	return nil
}

// readAt decodes the voxels of an uncompressed file with parallel positioned reads.
func readAt(ra io.ReaderAt, off int64, out []float32, dt Datatype, swap bool,
	plan *scalePlan) error {
	size := dt.Size()
	return parallelRanges(len(out), chunkVoxels, func(lo, hi int) error {
		var buf []byte
		if dt != Float32 {
			buf = alignedBytes(min(chunkVoxels, hi-lo) * size)
		}
		for a := lo; a < hi; a += chunkVoxels {
			b := min(a+chunkVoxels, hi)
			raw := buf
			if dt == Float32 {
				raw = float32Bytes(out[a:b])
			}
			raw = raw[:(b-a)*size]
			// A ReaderAt may report io.EOF along with a full read that ends the input.
			n, err := ra.ReadAt(raw, off+int64(a)*int64(size))
			if err != nil && !(err == io.EOF && n == len(raw)) {
				return fmt.Errorf("data: voxel %d: %w", a, err)
			}
			if dt == Float32 && !swap && plan.none() {
				continue
			}
			convertChunk(out[a:b], raw, dt, swap, plan)
		}
		return nil
	})
}
