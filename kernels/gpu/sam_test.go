//go:build cuda

package gpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// randomWindow returns n windowed grey values, uniform over 0..255 (never all zero).
func randomWindow(rng *rand.Rand, n int) []uint8 {
	v := make([]uint8, n)
	for i := range v {
		v[i] = uint8(rng.IntN(256))
	}
	return v
}

// uploadBytes copies data into a new device buffer.
func uploadBytes(t testing.TB, d *Device, s *Stream, data []byte) *Buffer {
	t.Helper()
	b, err := d.Alloc(max(len(data), 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	h, err := d.AllocHost(max(len(data), 1))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	copy(h.Bytes(), data)
	if err := s.CopyToDevice(b, h, len(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	return b
}

var samCases = []struct {
	name   string
	shape  [3]int
	slices []int
}{
	{"odd up", [3]int{37, 29, 5}, []int{4, 0, 4}},
	{"ct", [3]int{512, 512, 3}, []int{2, 1}},
	{"odd down", [3]int{1531, 1103, 2}, []int{1}},
	{"wide", [3]int{2048, 97, 1}, []int{0}},
	{"one voxel", [3]int{1, 1, 2}, []int{1, 0}},
}

// TestSAMPreprocess drives the device op into guarded outputs. Tolerance: float32 output
// equal to kernels.SAMPreprocess bit for bit (same taps, same float32 sums, no
// contraction); half output equal to that value rounded to nearest even, bit for bit.
func TestSAMPreprocess(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	rng := rand.New(rand.NewPCG(41, 43))
	for _, tc := range samCases {
		win := randomWindow(rng, shapeLen(tc.shape))
		want := make([]float32, len(tc.slices)*3*samPlane)
		if err := kernels.SAMPreprocess(want, win, tc.shape, tc.slices); err != nil {
			t.Fatal(err)
		}
		in := uploadBytes(t, d, s, win)
		ws, err := d.Alloc(SAMPreprocessWorkspace(tc.shape[0], tc.shape[1]))
		if err != nil {
			t.Fatal(err)
		}
		for _, half := range []bool{false, true} {
			name := tc.name + map[bool]string{false: "/f32", true: "/f16"}[half]
			t.Run(name, func(t *testing.T) {
				size := map[bool]int{false: 4, true: 2}[half]
				g := newGuarded(t, d, s, size*len(want))
				if err := s.SAMPreprocess(g.out, half, in, tc.shape, tc.slices, ws); err != nil {
					t.Fatal(err)
				}
				got := g.read(t, d, s)
				for i, w := range want {
					if half {
						h := binary.LittleEndian.Uint16(got[2*i:])
						if h != toHalf(w) {
							t.Fatalf("value %d: got half %#04x, want %#04x (%v)", i, h,
								toHalf(w), w)
						}
						continue
					}
					v := math.Float32frombits(binary.LittleEndian.Uint32(got[4*i:]))
					if math.Float32bits(v) != math.Float32bits(w) {
						t.Fatalf("value %d: got %v, want %v", i, v, w)
					}
				}
			})
		}
		_ = ws.Close()
	}
}

func TestSAMPreprocessRefuses(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	b := testAlloc(t, d, 1<<20)
	big := testAlloc(t, d, 3*4*samPlane)
	tests := []struct {
		name   string
		dst    *Buffer
		shape  [3]int
		slices []int
	}{
		{"slice beyond", big, [3]int{8, 8, 2}, []int{2}},
		{"negative slice", big, [3]int{8, 8, 2}, []int{-1}},
		{"dst too small", b, [3]int{8, 8, 2}, []int{0}},
		{"zero edge", big, [3]int{0, 8, 2}, []int{0}},
		{"edge too large", big, [3]int{20000, 1, 1}, []int{0}},
	}
	for _, tc := range tests {
		if err := s.SAMPreprocess(tc.dst, false, b, tc.shape, tc.slices, b); !errors.Is(err,
			ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", tc.name, err)
		}
	}
	small, err := b.View(0, 16)
	if err != nil {
		t.Fatal(err)
	}
	err = s.SAMPreprocess(big, false, b, [3]int{8, 8, 2}, []int{0}, small)
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("small workspace: got %v, want ErrInvalid", err)
	}
}

// TestSAMPreprocessSlices checks the batch path (one native call), twice so that the
// second round reuses pooled buffers.
func TestSAMPreprocessSlices(t *testing.T) {
	d := openDevice(t)
	rng := rand.New(rand.NewPCG(47, 53))
	shape, slices := [3]int{301, 257, 7}, []int{6, 2, 3, 2}
	win := randomWindow(rng, shapeLen(shape))
	want := make([]float32, len(slices)*3*samPlane)
	if err := kernels.SAMPreprocess(want, win, shape, slices); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		got := make([]float32, len(want))
		if err := d.SAMPreprocess(got, win, shape, slices); err != nil {
			t.Fatal(err)
		}
		half := make([]uint16, len(want))
		if err := d.SAMPreprocessHalf(half, win, shape, slices); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] || half[i] != toHalf(want[i]) {
				t.Fatalf("round %d: value %d: got %v / %#04x, want %v", round, i, got[i],
					half[i], want[i])
			}
		}
	}
	if err := d.SAMPreprocess(make([]float32, 5), win, shape, slices); err == nil {
		t.Error("a dst of the wrong length was accepted")
	}
	if err := d.SAMPreprocess(want, win, shape, []int{0, 1, 2, 7}); err == nil {
		t.Error("a slice beyond the volume was accepted")
	}
}

// maskCase is one slice's decoder output.
type maskCase struct {
	h, w, lowRes int
	logits       []float32
	labels       []int16
}

func randomMasks(rng *rand.Rand, h, w, lowRes, masks int) maskCase {
	c := maskCase{h: h, w: w, lowRes: lowRes, logits: make([]float32, masks*lowRes*lowRes)}
	for i := range c.logits {
		c.logits[i] = float32(rng.NormFloat64() * 4)
	}
	for m := range masks {
		c.labels = append(c.labels, int16(m+1+rng.IntN(3)))
	}
	if masks >= 2 { // an exact duplicate: the earlier mask must win every tie
		copy(c.logits[(masks-1)*lowRes*lowRes:], c.logits[:lowRes*lowRes])
	}
	return c
}

func randomLabels(rng *rand.Rand, n int) []int16 {
	v := make([]int16, n)
	for i := range v {
		v[i] = int16(rng.IntN(5))
	}
	return v
}

// ambiguous reports whether pixel (r, c) of a slice is one where a one-ulp difference of a
// sigmoid may flip the reference's decision: some mask's interpolated probability within
// 1e-6 of 0.5 or of another mask's.
func ambiguous(mc maskCase, r, c int) bool {
	rows, _ := kernels.NewMaskMap(mc.h, mc.lowRes)
	cols, _ := kernels.NewMaskMap(mc.w, mc.lowRes)
	per := mc.lowRes * mc.lowRes
	sig := func(m, y, x int) float64 {
		return 1 / (1 + math.Exp(-float64(mc.logits[m*per+y*mc.lowRes+x])))
	}
	var ps []float64
	for m := range mc.labels {
		y0, y1, x0, x1 := int(rows.L0[r]), int(rows.L1[r]), int(cols.L0[c]), int(cols.L1[c])
		h0, h1 := float64(rows.W0[r]), float64(rows.W1[r])
		w0, w1 := float64(cols.W0[c]), float64(cols.W1[c])
		p := h0*(w0*sig(m, y0, x0)+w1*sig(m, y0, x1)) + h1*(w0*sig(m, y1, x0)+w1*sig(m, y1, x1))
		if math.Abs(p-0.5) < 1e-6 {
			return true
		}
		for _, q := range ps {
			if math.Abs(p-q) < 1e-6 && p != q {
				return true
			}
		}
		ps = append(ps, p)
	}
	return false
}

// checkLabels compares one slice's labels; tolerance: equal, except at ambiguous pixels.
func checkLabels(t *testing.T, what string, mc maskCase, got, want []int16) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] && !ambiguous(mc, i/mc.w, i%mc.w) {
			t.Fatalf("%s: pixel (%d, %d): got %d, want %d", what, i/mc.w, i%mc.w, got[i],
				want[i])
		}
	}
}

// TestSAMMaskPost drives the device op for a batch of slices into a guarded volume: each
// slice's plane must equal kernels.SAMMaskPost's, and the other planes stay untouched.
func TestSAMMaskPost(t *testing.T) {
	d := openDevice(t)
	s := testStream(t, d)
	tests := []struct {
		name         string
		h, w, lowRes int
		masks        []int // per slice of the batch
		planes       []int // the planes they write
		nz           int
	}{
		{"odd sizes", 37, 53, 7, []int{3, 1, 0}, []int{3, 0, 4}, 5},
		{"sam low-res", 301, 512, 256, []int{2, 4}, []int{1, 0}, 2},
		{"one pixel", 1, 1, 256, []int{2}, []int{0}, 1},
		{"upsampled axis", 1500, 9, 16, []int{3}, []int{0}, 1},
	}
	rng := rand.New(rand.NewPCG(59, 61))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plane := tc.h * tc.w
			vol := randomLabels(rng, plane*tc.nz)
			want := append([]int16(nil), vol...)
			var cases []maskCase
			var logits []float32
			var labels []int16
			starts := []int32{0}
			var zs []int32
			for k, n := range tc.masks {
				mc := randomMasks(rng, tc.h, tc.w, tc.lowRes, n)
				cases = append(cases, mc)
				z := tc.planes[k]
				err := kernels.SAMMaskPost(want[z*plane:(z+1)*plane], tc.h, tc.w, mc.logits,
					tc.lowRes, mc.labels)
				if err != nil {
					t.Fatal(err)
				}
				logits = append(logits, mc.logits...)
				labels = append(labels, mc.labels...)
				starts = append(starts, int32(len(labels)))
				zs = append(zs, int32(z))
			}
			g := newGuarded(t, d, s, 2*len(vol))
			hv := make([]byte, 2*len(vol))
			for i, v := range vol {
				binary.LittleEndian.PutUint16(hv[2*i:], uint16(v))
			}
			initial := uploadBytes(t, d, s, hv)
			if err := s.CopyDevice(g.out, 0, initial, 0, len(hv)); err != nil {
				t.Fatal(err)
			}
			lab := make([]byte, 2*len(labels))
			for i, v := range labels {
				binary.LittleEndian.PutUint16(lab[2*i:], uint16(v))
			}
			ints := func(v []int32) []byte {
				b := make([]byte, 4*len(v))
				for i, x := range v {
					binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
				}
				return b
			}
			prob, err := d.Alloc(max(4*len(logits), 1))
			if err != nil {
				t.Fatal(err)
			}
			defer prob.Close()
			a := MaskPostArgs{Volume: g.out, Shape: [3]int{tc.w, tc.h, tc.nz},
				Logits: upload(t, d, s, logits), LowRes: tc.lowRes, Masks: len(labels),
				Labels: uploadBytes(t, d, s, lab), Starts: uploadBytes(t, d, s, ints(starts)),
				Z: uploadBytes(t, d, s, ints(zs)), Slices: len(zs), Prob: prob}
			if err := s.SAMMaskPost(a); err != nil {
				t.Fatal(err)
			}
			out := g.read(t, d, s)
			got := make([]int16, len(vol))
			for i := range got {
				got[i] = int16(binary.LittleEndian.Uint16(out[2*i:]))
			}
			for z := range tc.nz {
				k := -1
				for j, p := range tc.planes {
					if p == z {
						k = j
					}
				}
				gz, wz := got[z*plane:(z+1)*plane], want[z*plane:(z+1)*plane]
				if k < 0 {
					for i := range wz {
						if gz[i] != wz[i] {
							t.Fatalf("plane %d (no slice) changed at %d: %d, was %d", z, i,
								gz[i], wz[i])
						}
					}
					continue
				}
				checkLabels(t, fmt.Sprintf("plane %d", z), cases[k], gz, wz)
			}
		})
	}
}

// TestSAMMaskPostSlices checks the batch path against the CPU kernel, slice by slice.
func TestSAMMaskPostSlices(t *testing.T) {
	d := openDevice(t)
	rng := rand.New(rand.NewPCG(67, 71))
	shape, lowRes := [3]int{77, 61, 6}, 256
	plane := shape[0] * shape[1]
	vol := randomLabels(rng, shapeLen(shape))
	want := append([]int16(nil), vol...)
	var slices []MaskSlice
	var cases []maskCase
	for _, z := range []int{5, 1, 2} {
		mc := randomMasks(rng, shape[1], shape[0], lowRes, 1+rng.IntN(4))
		cases = append(cases, mc)
		slices = append(slices, MaskSlice{Z: z, Logits: mc.logits, Labels: mc.labels})
		err := kernels.SAMMaskPost(want[z*plane:(z+1)*plane], shape[1], shape[0], mc.logits,
			lowRes, mc.labels)
		if err != nil {
			t.Fatal(err)
		}
	}
	for round := range 2 {
		got := append([]int16(nil), vol...)
		if err := d.SAMMaskPostSlices(got, shape, lowRes, slices); err != nil {
			t.Fatal(err)
		}
		for z := range shape[2] {
			k := -1
			for j, sl := range slices {
				if sl.Z == z {
					k = j
				}
			}
			gz, wz := got[z*plane:(z+1)*plane], want[z*plane:(z+1)*plane]
			if k < 0 {
				for i := range wz {
					if gz[i] != wz[i] {
						t.Fatalf("round %d: untouched plane %d changed", round, z)
					}
				}
				continue
			}
			checkLabels(t, "slices", cases[k], gz, wz)
		}
	}
	one := append([]int16(nil), vol[:plane]...)
	oneWant := append([]int16(nil), vol[:plane]...)
	_ = kernels.SAMMaskPost(oneWant, shape[1], shape[0], cases[0].logits, lowRes,
		cases[0].labels)
	if err := d.SAMMaskPost(one, shape[1], shape[0], cases[0].logits, lowRes,
		cases[0].labels); err != nil {
		t.Fatal(err)
	}
	checkLabels(t, "single slice", cases[0], one, oneWant)
	bad := []MaskSlice{{Z: 1, Logits: cases[0].logits, Labels: cases[0].labels}, {Z: 1,
		Logits: cases[0].logits, Labels: cases[0].labels}}
	if err := d.SAMMaskPostSlices(vol, shape, lowRes, bad); err == nil {
		t.Error("a repeated plane was accepted")
	}
	if err := d.SAMMaskPostSlices(vol, shape, lowRes, []MaskSlice{{Z: 0,
		Logits: make([]float32, 3), Labels: []int16{1}}}); err == nil {
		t.Error("logits of the wrong length were accepted")
	}
}
