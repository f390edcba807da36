//go:build cuda

package gpu

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// TestReorient: every permutation with every flip pattern, on an odd shape, equals
// engine/volume's Reorientation.Apply bit for bit, and writes nothing outside its output.
func TestReorient(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	rng := rand.New(rand.NewPCG(5, 6))
	shape := [3]int{19, 7, 13}
	src := randomCT(rng, shapeLen(shape))
	srcBuf := upload(t, d, s, src)
	v := &volume.Volume{Data: src, Shape: shape, Spacing: [3]float64{1, 1, 1}}
	for _, perm := range [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1},
		{2, 1, 0}} {
		for bits := range 8 {
			flip := [3]bool{bits&1 != 0, bits&2 != 0, bits&4 != 0}
			r := &volume.Reorientation{Perm: perm, Flip: flip, SrcShape: shape,
				DstShape: ReorientedShape(shape, perm)}
			want, err := r.Apply(v)
			if err != nil {
				t.Fatal(err)
			}
			out := newGuarded(t, d, s, 4*len(src))
			if err := s.Reorient(out.out, srcBuf, shape, perm, flip); err != nil {
				t.Fatal(err)
			}
			got := asFloats(out.read(t, d, s))
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want.Data[i]) {
					t.Fatalf("perm %v flip %v: voxel %d = %v, want %v", perm, flip, i, got[i],
						want.Data[i])
				}
			}
		}
	}
	if err := s.Reorient(srcBuf, srcBuf, shape, [3]int{0, 0, 1}, [3]bool{}); err == nil {
		t.Error("a repeated axis was accepted as a permutation")
	}
}

// TestCropPatchesAndGather: crops inside, across faces and outside an odd grid, and reads
// at points in and out of it, equal kernels.CropPatches and kernels.Gather, with guard bands
// around the crops.
func TestCropPatchesAndGather(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	rng := rand.New(rand.NewPCG(7, 8))
	dims := [3]int{45, 38, 51}
	grid := make([]float32, shapeLen(dims))
	for i := range grid {
		grid[i] = 0.5 + rng.Float32()
	}
	const edge, offset = 64, 64
	centres := [][3]int{{64 + 22, 64 + 19, 64 + 25}, {0, 0, 0}, {40, 200, 90},
		{64 + 44, 64 + 37, 64 + 50}}
	for range 9 {
		centres = append(centres, [3]int{rng.IntN(dims[0] + 128), rng.IntN(dims[1] + 128),
			rng.IntN(dims[2] + 128)})
	}
	vox := edge * edge * edge
	want := make([]float32, len(centres)*vox)
	if err := kernels.CropPatches(want, grid, dims, centres, offset, edge); err != nil {
		t.Fatal(err)
	}
	gridBuf := upload(t, d, s, grid)
	flat := make([]float32, 3*len(centres))
	for i, c := range centres {
		for a := range 3 {
			flat[3*i+a] = math.Float32frombits(uint32(int32(c[a])))
		}
	}
	cBuf := upload(t, d, s, flat) // int32 triples, bit-cast through float32
	out := newGuarded(t, d, s, 4*len(want))
	if err := s.CropPatches(out.out, gridBuf, dims, cBuf, len(centres), offset,
		edge); err != nil {
		t.Fatal(err)
	}
	got := out.read(t, d, s)
	for i := range want {
		if g := math.Float32frombits(binary.LittleEndian.Uint32(got[4*i:])); g != want[i] {
			t.Fatalf("patch %d voxel %d = %v, want %v", i/vox, i%vox, g, want[i])
		}
	}
	viaSlices := make([]float32, len(want))
	if err := d.CropPatches(viaSlices, grid, dims, centres, offset, edge); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if viaSlices[i] != want[i] {
			t.Fatalf("Device.CropPatches voxel %d = %v, want %v", i, viaSlices[i], want[i])
		}
	}

	var pts [][3]int
	for range 1000 {
		pts = append(pts, [3]int{rng.IntN(dims[0]+40) - 20, rng.IntN(dims[1]+40) - 20,
			rng.IntN(dims[2]+40) - 20})
	}
	vals, err := s.Gather(gridBuf, dims, pts, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantVals := make([]float32, len(pts))
	if err := kernels.Gather(wantVals, grid, dims, pts, 3); err != nil {
		t.Fatal(err)
	}
	for i := range pts {
		if vals[i] != wantVals[i] {
			t.Fatalf("point %v = %v, want %v", pts[i], vals[i], wantVals[i])
		}
	}
}

// TestMinMax: the device min/max equals kernels.MinMax, with NaNs ignored, and reports an
// all-NaN input.
func TestMinMax(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	rng := rand.New(rand.NewPCG(9, 10))
	v := randomCT(rng, 300001)
	v[17] = float32(math.NaN())
	b := upload(t, d, s, v)
	lo, hi, ok, err := s.MinMax(b, len(v))
	if err != nil {
		t.Fatal(err)
	}
	wlo, whi, wok := kernels.MinMax(v)
	if lo != wlo || hi != whi || ok != wok {
		t.Fatalf("min max %v %v %v, want %v %v %v", lo, hi, ok, wlo, whi, wok)
	}
	nan := []float32{float32(math.NaN()), float32(math.NaN())}
	if _, _, ok, err := s.MinMax(upload(t, d, s, nan), 2); err != nil || ok {
		t.Fatalf("all NaN: ok %v, err %v", ok, err)
	}
}
