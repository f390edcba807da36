//go:build cuda

package gpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGatherRows: rows picked by an index list with repeats land in order, for a row size
// the 16-byte path takes and one it cannot, with guard bands around the output.
func TestGatherRows(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	rng := rand.New(rand.NewPCG(13, 14))
	for _, rowFloats := range []int{4 * 256, 13} {
		const rows = 9
		src := make([]float32, rows*rowFloats)
		for i := range src {
			src[i] = rng.Float32() + 1
		}
		idx := []int{3, 0, 8, 3, 3, 5, 1}
		flat := make([]float32, len(idx))
		for i, v := range idx {
			flat[i] = math.Float32frombits(uint32(int32(v)))
		}
		srcBuf := upload(t, d, s, src)
		idxBuf := upload(t, d, s, flat)
		out := newGuarded(t, d, s, 4*rowFloats*len(idx))
		if err := s.GatherRows(out.out, srcBuf, 4*rowFloats, idxBuf, len(idx)); err != nil {
			t.Fatal(err)
		}
		got := asFloats(out.read(t, d, s))
		for r, from := range idx {
			for i := range rowFloats {
				if g, w := got[r*rowFloats+i], src[from*rowFloats+i]; g != w {
					t.Fatalf("row of %d floats: dst row %d value %d = %v, want src row %d's %v",
						rowFloats, r, i, g, from, w)
				}
			}
		}
		if err := s.GatherRows(out.out, srcBuf, 4*rowFloats+2, idxBuf, len(idx)); err == nil {
			t.Error("a row size not a multiple of 4 was accepted")
		}
	}
}
