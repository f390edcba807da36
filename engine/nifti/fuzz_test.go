package nifti

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// fuzzCap is the voxel memory cap of the fuzz target: a decoded image may not exceed it.
const fuzzCap = 1 << 22

// FuzzRead feeds arbitrary bytes to the decoder, which must return an image or an error,
// never panic, and never decode more than the cap. Seeds: valid files of several kinds and
// damaged copies of them.
func FuzzRead(f *testing.F) {
	le, be := binary.LittleEndian, binary.BigEndian
	seeds := []fixture{
		baseFixture(1, le, Int16),
		baseFixture(1, be, Float64),
		baseFixture(2, le, Uint8),
		baseFixture(2, be, Int32),
		baseFixture(1, be, Uint16),
		baseFixture(2, le, Float32),
	}
	seeds[0].exts = []Extension{{Code: 6, Data: []byte("seed")}}
	seeds[1].slope, seeds[1].inter = 2, 1
	seeds[2].qcode, seeds[2].scode = 1, 0
	seeds[2].quat = [3]float64{0.1, 0.2, 0.3}
	seeds[3].dim = [8]int64{4, 5, 4, 3, 1, 1, 1, 1}
	// A qform-only NIfTI-1 file with qfac -1, and a NIfTI-2 file with two extensions and
	// scaling, so that mutations reach the quaternion and extension code in both versions.
	seeds[4].qcode, seeds[4].scode, seeds[4].pixdim[0] = 2, 0, -1
	seeds[4].quat, seeds[4].qoff = [3]float64{0.5, -0.5, 0.5}, [3]float64{1, 2, 3}
	seeds[5].exts = []Extension{{Code: 4, Data: []byte("afni")}, {Code: 6, Data: []byte("c")}}
	seeds[5].slope, seeds[5].inter = 0.5, -3
	for _, s := range seeds {
		for _, gz := range []bool{false, true} {
			s.gz = gz
			b := s.encode()
			f.Add(b)
			f.Add(b[:len(b)/2])
			d := append([]byte(nil), b...)
			d[len(d)/3] ^= 0x55
			f.Add(d)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := decode(bytes.NewReader(b), int64(len(b)), ReadOptions{MaxBytes: fuzzCap})
		if err != nil {
			if img != nil {
				t.Fatal("image and error both returned")
			}
			return
		}
		v := img.Volume
		if err := v.Validate(); err != nil {
			t.Fatalf("invalid volume: %v", err)
		}
		if int64(len(v.Data))*4 > fuzzCap {
			t.Fatalf("%d voxels decoded past the cap", len(v.Data))
		}
	})
}
