package kernels

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestResampleShape(t *testing.T) {
	tests := []struct {
		name string
		in   [3]int
		r    [3]float64
		want [3]int
	}{
		{"identity", [3]int{5, 6, 7}, [3]float64{1, 1, 1}, [3]int{5, 6, 7}},
		{"ct to 3 mm", [3]int{512, 512, 300}, [3]float64{3 / 0.8, 3 / 0.8, 3 / 2.5},
			[3]int{137, 137, 250}},
		{"exact halving", [3]int{7, 9, 3}, [3]float64{2, 2, 2}, [3]int{4, 5, 2}},
		{"upsample", [3]int{2, 2, 2}, [3]float64{0.5, 0.5, 0.5}, [3]int{3, 3, 3}},
		{"single voxel", [3]int{1, 1, 1}, [3]float64{3, 0.25, 1}, [3]int{1, 1, 1}},
		// 0.3/0.1 is 2.9999999999999996 in float64; the 1e-9 keeps the last sample.
		{"rounding guard", [3]int{7, 7, 7}, [3]float64{0.3 / 0.1, 3, 2.5}, [3]int{3, 3, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResampleShape(tc.in, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("ResampleShape(%v, %v) = %v, want %v", tc.in, tc.r, got, tc.want)
			}
		})
	}
}

func TestResampleShapeErrors(t *testing.T) {
	tests := []struct {
		name, field string
		in          [3]int
		r           [3]float64
	}{
		{"zero size", "shape[1]", [3]int{4, 0, 4}, [3]float64{1, 1, 1}},
		{"negative size", "shape[0]", [3]int{-4, 4, 4}, [3]float64{1, 1, 1}},
		{"zero ratio", "ratio[2]", [3]int{4, 4, 4}, [3]float64{1, 1, 0}},
		{"negative ratio", "ratio[0]", [3]int{4, 4, 4}, [3]float64{-1, 1, 1}},
		{"nan ratio", "ratio[1]", [3]int{4, 4, 4}, [3]float64{1, math.NaN(), 1}},
		{"inf ratio", "ratio[1]", [3]int{4, 4, 4}, [3]float64{1, math.Inf(1), 1}},
		{"huge axis", "axis 0", [3]int{4, 4, 4}, [3]float64{1e-12, 1, 1}},
		{"overflow", "overflows", [3]int{1 << 20, 1 << 20, 1 << 20},
			[3]float64{1e-3, 1e-3, 1e-3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ResampleShape(tc.in, tc.r)
			if err == nil {
				t.Fatalf("ResampleShape(%v, %v) succeeded", tc.in, tc.r)
			}
			if !strings.HasPrefix(err.Error(), "kernels: ") ||
				!strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q lacks the prefix or %q", err, tc.field)
			}
		})
	}
}

func TestResampleArgumentErrors(t *testing.T) {
	src := make([]float32, 4*4*4)
	r := [3]float64{2, 2, 2}
	tests := []struct {
		name     string
		dst      []float32
		dstShape [3]int
		src      []float32
	}{
		{"dst shape", make([]float32, 8), [3]int{2, 2, 2}, src},
		{"dst length", make([]float32, 7), [3]int{2, 2, 2}, src},
		{"src length", make([]float32, 8), [3]int{2, 2, 2}, src[:63]},
	}
	// 4 samples along an axis at ratio 2 give floor(3/2)+1 = 2 outputs, so the valid shape
	// is {2, 2, 2}; the first case breaks the shape instead.
	tests[0].dstShape = [3]int{2, 2, 3}
	for _, tc := range tests {
		for name, f := range map[string]resampleFunc{
			"trilinear": ResampleTrilinear, "nearest": ResampleNearest,
		} {
			if err := f(tc.dst, tc.dstShape, tc.src, [3]int{4, 4, 4}, r); err == nil {
				t.Errorf("%s %s: no error", tc.name, name)
			}
		}
	}
}

type resampleFunc func(dst []float32, dstShape [3]int, src []float32, srcShape [3]int,
	r [3]float64) error

// resample runs f with a freshly allocated destination.
func resample(t *testing.T, f resampleFunc, src []float32, shape [3]int,
	r [3]float64) ([]float32, [3]int) {
	t.Helper()
	out, err := ResampleShape(shape, r)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, out[0]*out[1]*out[2])
	for i := range dst {
		dst[i] = float32(math.NaN()) // every voxel must be written
	}
	if err := f(dst, out, src, shape, r); err != nil {
		t.Fatal(err)
	}
	return dst, out
}

func TestResampleTrilinearKnown(t *testing.T) {
	// A 2x2x2 volume with 8 at (1,1,1), upsampled by 2: the grid gains the midpoints.
	src := make([]float32, 8)
	src[7] = 8
	dst, shape := resample(t, ResampleTrilinear, src, [3]int{2, 2, 2}, [3]float64{0.5, 0.5, 0.5})
	if shape != [3]int{3, 3, 3} {
		t.Fatalf("shape %v", shape)
	}
	at := func(i, j, k int) float32 { return dst[i+3*(j+3*k)] }
	tests := []struct {
		i, j, k int
		want    float32
	}{
		{0, 0, 0, 0}, {2, 2, 2, 8}, {1, 1, 1, 1}, {1, 2, 2, 4}, {2, 1, 2, 4},
		{2, 2, 1, 4}, {2, 1, 1, 2}, {1, 1, 2, 2}, {0, 2, 2, 0}, {2, 0, 0, 0},
	}
	for _, tc := range tests {
		if got := at(tc.i, tc.j, tc.k); got != tc.want {
			t.Errorf("(%d,%d,%d) = %v, want %v", tc.i, tc.j, tc.k, got, tc.want)
		}
	}

	// Along one axis: 7 samples at ratio 2.5 give x = 0, 2.5, 5.
	line := []float32{10, 20, 30, 50, 70, 110, 130}
	dst, shape = resample(t, ResampleTrilinear, line, [3]int{7, 1, 1}, [3]float64{2.5, 1, 1})
	if want := []float32{10, 40, 110}; shape != [3]int{3, 1, 1} || !slices.Equal(dst, want) {
		t.Errorf("line: got %v %v, want %v", shape, dst, want)
	}
	// The same line along k, so the k tables and slab split are exercised.
	dst, _ = resample(t, ResampleTrilinear, line, [3]int{1, 1, 7}, [3]float64{1, 1, 2.5})
	if want := []float32{10, 40, 110}; !slices.Equal(dst, want) {
		t.Errorf("line along k: got %v, want %v", dst, want)
	}
	// The last sample falls exactly on the last voxel: the upper neighbour is clamped.
	dst, _ = resample(t, ResampleTrilinear, line, [3]int{1, 7, 1}, [3]float64{1, 3, 1})
	if want := []float32{10, 50, 130}; !slices.Equal(dst, want) {
		t.Errorf("line along j: got %v, want %v", dst, want)
	}
}

func TestResampleTrilinearExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name  string
		shape [3]int
		r     [3]float64
	}{
		{"identity", [3]int{9, 7, 5}, [3]float64{1, 1, 1}},
		{"down", [3]int{31, 17, 23}, [3]float64{3.75, 1.7, 1.2}},
		{"up", [3]int{5, 6, 3}, [3]float64{0.4, 0.3, 0.55}},
		{"mixed", [3]int{13, 1, 11}, [3]float64{0.7, 2, 2.2}},
	}
	for _, tc := range tests {
		n := tc.shape[0] * tc.shape[1] * tc.shape[2]
		t.Run(tc.name+"/constant", func(t *testing.T) {
			src := make([]float32, n)
			for i := range src {
				src[i] = -731.25
			}
			dst, _ := resample(t, ResampleTrilinear, src, tc.shape, tc.r)
			for i, v := range dst {
				if v != -731.25 {
					t.Fatalf("voxel %d = %v, want -731.25", i, v)
				}
			}
		})
		t.Run(tc.name+"/ramp", func(t *testing.T) {
			// Trilinear interpolation reproduces any affine function of the index.
			c := [4]float64{rng.Float64()*200 - 100, rng.Float64()*20 - 10,
				rng.Float64()*20 - 10, rng.Float64()*20 - 10}
			f := func(x, y, z float64) float64 { return c[0] + c[1]*x + c[2]*y + c[3]*z }
			src := make([]float32, n)
			for k := range tc.shape[2] {
				for j := range tc.shape[1] {
					for i := range tc.shape[0] {
						src[i+tc.shape[0]*(j+tc.shape[1]*k)] =
							float32(f(float64(i), float64(j), float64(k)))
					}
				}
			}
			dst, out := resample(t, ResampleTrilinear, src, tc.shape, tc.r)
			for k := range out[2] {
				for j := range out[1] {
					for i := range out[0] {
						want := f(float64(i)*tc.r[0], float64(j)*tc.r[1], float64(k)*tc.r[2])
						got := float64(dst[i+out[0]*(j+out[1]*k)])
						if math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
							t.Fatalf("(%d,%d,%d) = %v, want %v", i, j, k, got, want)
						}
					}
				}
			}
		})
	}
	t.Run("identity is a copy", func(t *testing.T) {
		shape := [3]int{9, 7, 5}
		src := make([]float32, 9*7*5)
		for i := range src {
			src[i] = float32(rng.NormFloat64() * 1000)
		}
		for name, f := range map[string]resampleFunc{
			"trilinear": ResampleTrilinear, "nearest": ResampleNearest,
		} {
			dst, _ := resample(t, f, src, shape, [3]float64{1, 1, 1})
			if !slices.Equal(dst, src) {
				t.Errorf("%s: identity resampling changed the volume", name)
			}
		}
	})
}

// naiveTrilinear is the straightforward definition: for each output voxel, the eight
// surrounding input voxels weighted by products of per-axis weights, summed in float64.
func naiveTrilinear(src []float32, shape [3]int, r [3]float64) ([]float64, [3]int) {
	var out [3]int
	for a := range 3 {
		out[a] = int(math.Floor(float64(shape[a]-1)/r[a]+1e-9)) + 1
	}
	dst := make([]float64, out[0]*out[1]*out[2])
	var lo, hi [3]int
	var w [3]float64
	for k := range out[2] {
		for j := range out[1] {
			for i := range out[0] {
				for a, o := range [3]int{i, j, k} {
					x := float64(o) * r[a]
					if last := float64(shape[a] - 1); x > last {
						x = last
					}
					lo[a] = int(math.Floor(x))
					w[a] = x - float64(lo[a])
					hi[a] = lo[a] + 1
					if hi[a] > shape[a]-1 {
						hi[a] = shape[a] - 1
					}
				}
				var s float64
				for corner := range 8 {
					p, wt := [3]int{}, 1.0
					for a := range 3 {
						if corner>>a&1 == 1 {
							p[a], wt = hi[a], wt*w[a]
						} else {
							p[a], wt = lo[a], wt*(1-w[a])
						}
					}
					s += wt * float64(src[p[0]+shape[0]*(p[1]+shape[1]*p[2])])
				}
				dst[i+out[0]*(j+out[1]*k)] = s
			}
		}
	}
	return dst, out
}

// naiveNearest picks, per axis, the input index nearest to o*r.
func naiveNearest(src []float32, shape [3]int, r [3]float64) []float32 {
	var out [3]int
	for a := range 3 {
		out[a] = int(math.Floor(float64(shape[a]-1)/r[a]+1e-9)) + 1
	}
	dst := make([]float32, 0, out[0]*out[1]*out[2])
	for k := range out[2] {
		for j := range out[1] {
			for i := range out[0] {
				var p [3]int
				for a, o := range [3]int{i, j, k} {
					p[a] = min(int(math.Round(float64(o)*r[a])), shape[a]-1)
				}
				dst = append(dst, src[p[0]+shape[0]*(p[1]+shape[1]*p[2])])
			}
		}
	}
	return dst
}

func TestResampleAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name  string
		shape [3]int
		r     [3]float64
		procs int
	}{
		{"ct-like down", [3]int{37, 29, 21}, [3]float64{3 / 0.8, 3 / 0.7, 3 / 2.5}, 2},
		{"up", [3]int{7, 5, 9}, [3]float64{0.37, 0.61, 0.93}, 3},
		{"odd ratios", [3]int{23, 19, 17}, [3]float64{1.3, 2.9, 0.77}, 1},
		{"thin", [3]int{1, 15, 33}, [3]float64{1, 1.1, 3.3}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := runtime.GOMAXPROCS(tc.procs)
			defer runtime.GOMAXPROCS(old)
			n := tc.shape[0] * tc.shape[1] * tc.shape[2]
			src := make([]float32, n)
			for i := range src {
				src[i] = float32(rng.Float64()*3000 - 1024)
			}
			want, wantShape := naiveTrilinear(src, tc.shape, tc.r)
			got, shape := resample(t, ResampleTrilinear, src, tc.shape, tc.r)
			if shape != wantShape {
				t.Fatalf("shape %v, want %v", shape, wantShape)
			}
			for i := range want {
				// float32 lerps on values up to ~2000: a few ulps of the magnitude.
				if d := math.Abs(float64(got[i]) - want[i]); d > 1e-3 {
					t.Fatalf("trilinear voxel %d = %v, want %v (diff %g)", i, got[i], want[i], d)
				}
			}
			labels := make([]float32, n)
			for i := range labels {
				labels[i] = float32(rng.IntN(5))
			}
			gotL, _ := resample(t, ResampleNearest, labels, tc.shape, tc.r)
			if wantL := naiveNearest(labels, tc.shape, tc.r); !slices.Equal(gotL, wantL) {
				t.Fatal("nearest differs from the naive reference")
			}
		})
	}
}

func TestResampleNearestKeepsLabels(t *testing.T) {
	// Labels 0, 3 and 7 in blocks; any ratio must produce only these values.
	shape := [3]int{11, 10, 9}
	src := make([]float32, 11*10*9)
	for k := range 9 {
		for j := range 10 {
			for i := range 11 {
				v := float32(0)
				switch {
				case i < 4 && j < 5:
					v = 3
				case k > 5:
					v = 7
				}
				src[i+11*(j+10*k)] = v
			}
		}
	}
	for _, r := range [][3]float64{{0.3, 0.7, 1.9}, {2.5, 3, 1.1}, {1, 0.5, 4}} {
		dst, _ := resample(t, ResampleNearest, src, shape, r)
		seen := map[float32]bool{}
		for _, v := range dst {
			seen[v] = true
		}
		for v := range seen {
			if v != 0 && v != 3 && v != 7 {
				t.Fatalf("ratio %v: value %v is not a label", r, v)
			}
		}
		if !seen[0] || !seen[3] || !seen[7] {
			t.Fatalf("ratio %v: a label vanished: %v", r, seen)
		}
	}
	// Known answer on a line: 7 samples at ratio 2.5 pick floor(x+0.5) of 0, 2.5, 5: 0, 3, 5.
	line := []float32{0, 1, 2, 3, 4, 5, 6}
	dst, _ := resample(t, ResampleNearest, line, [3]int{7, 1, 1}, [3]float64{2.5, 1, 1})
	if want := []float32{0, 3, 5}; !slices.Equal(dst, want) {
		t.Fatalf("nearest line = %v, want %v", dst, want)
	}
}
