//go:build cuda

package gpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// TestZoomCubic: the device zoom equals kernels.ZoomCubic bit for bit (both compute in
// float64 with every product rounded, in the same order; the CPU oracle's own tests hold it
// to scipy) on down- and up-sampling, odd sizes, a single-voxel axis and a factor whose last
// face scipy zeroes; the stream form writes nothing outside its output.
func TestZoomCubic(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	rng := rand.New(rand.NewPCG(15, 16))
	for _, c := range []struct {
		src [3]int
		f   [3]float64
	}{
		{[3]int{37, 29, 13}, [3]float64{0.77 / 3, 0.9 / 3, 2.5 / 3}},
		{[3]int{11, 9, 7}, [3]float64{2.3, 1.7, 3}},
		{[3]int{1, 23, 5}, [3]float64{1, 0.5, 1.5}},
		{[3]int{130, 61, 17}, [3]float64{0.68 / 3, 1, 1.25}},
		{[3]int{257, 131, 61}, [3]float64{0.77 / 3, 0.77 / 3, 2.5 / 3}},
	} {
		dstShape, err := kernels.ZoomShape(c.src, c.f)
		if err != nil {
			t.Fatal(err)
		}
		src := randomCT(rng, shapeLen(c.src))
		want := make([]float32, shapeLen(dstShape))
		if err := kernels.ZoomCubic(want, dstShape, src, c.src); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(want))
		if err := d.ZoomCubic(got, dstShape, src, c.src); err != nil {
			t.Fatal(err)
		}
		srcBuf := upload(t, d, s, src)
		out := newGuarded(t, d, s, 4*len(want))
		ws := testAlloc(t, d, ZoomCubicWorkspace(dstShape, c.src))
		h, err := d.AllocHost(ZoomCubicTablesBytes(dstShape))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ZoomCubic(out.out, srcBuf, dstShape, c.src, ws, h); err != nil {
			t.Fatal(err)
		}
		viaStream := asFloats(out.read(t, d, s)) // read synchronises: h may go
		h.Close()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) ||
				math.Float32bits(viaStream[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%v -> %v: voxel %d = %v (slices), %v (stream), want %v", c.src,
					dstShape, i, got[i], viaStream[i], want[i])
			}
		}
	}
}
