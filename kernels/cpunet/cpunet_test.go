package cpunet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// forLevels runs f once per build this CPU runs, as a subtest named after it.
func forLevels(t *testing.T, f func(t *testing.T)) {
	saved := level
	defer func() { level = saved }()
	for _, l := range Levels() {
		level = l
		t.Run(l.String(), f)
	}
}

func randSlice(r *rand.Rand, n int, scale float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = (r.Float32()*2 - 1) * scale
	}
	return s
}

// channelsLast returns a random channels-last tensor of c channels (padding zero) and the
// same values channel-major, [c][n].
func channelsLast(r *rand.Rand, c, n int) (cl, planar []float32) {
	planar = randSlice(r, c*n, 1)
	cl = make([]float32, n*Pad(c))
	FromPlanar(cl, planar, c, n)
	return cl, planar
}

// directConv is the textbook convolution of a planar [cin][d][h][w] input in float64.
func directConv(in []float32, cin, d, h, w int, weight, bias []float32, cout int) []float64 {
	out := make([]float64, cout*d*h*w)
	for o := range cout {
		for z := range d {
			for y := range h {
				for x := range w {
					s := float64(bias[o])
					for i := range cin {
						for k := range 27 {
							zz, yy, xx := z+k/9-1, y+k/3%3-1, x+k%3-1
							if zz < 0 || zz >= d || yy < 0 || yy >= h || xx < 0 || xx >= w {
								continue
							}
							s += float64(weight[(o*cin+i)*27+k]) *
								float64(in[((i*d+zz)*h+yy)*w+xx])
						}
					}
					out[((o*d+z)*h+y)*w+x] = s
				}
			}
		}
	}
	return out
}

func TestConvMatchesDirect(t *testing.T) {
	cases := []struct{ c1, c2, cout, d, h, w int }{
		{1, 0, 6, 5, 7, 3},    // direct one-channel form, odd grid
		{1, 0, 48, 4, 4, 6},   // three output vectors
		{1, 0, 80, 3, 4, 5},   // more than four output vectors: two groups
		{6, 0, 6, 4, 8, 12},   // padded channels both sides
		{12, 6, 12, 6, 4, 4},  // two sources, both padded
		{16, 16, 32, 4, 4, 4}, // two vectors of output
		{48, 0, 48, 8, 8, 8},  // full widths: panels of 3 vectors
		{17, 0, 64, 2, 4, 8},  // panels of 4 vectors
		{20, 30, 80, 4, 8, 4}, // 5 output vectors: panels of 1
	}
	forLevels(t, func(t *testing.T) {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%d+%d-%d_%dx%dx%d", tc.c1, tc.c2, tc.cout, tc.d, tc.h, tc.w),
				func(t *testing.T) {
					r := rand.New(rand.NewPCG(uint64(tc.c1), uint64(tc.cout)))
					n := tc.d * tc.h * tc.w
					cin := tc.c1 + tc.c2
					weight := randSlice(r, tc.cout*cin*27, 0.2)
					bias := randSlice(r, tc.cout, 0.5)
					a, ap := channelsLast(r, tc.c1, n)
					var b, bp []float32
					if tc.c2 > 0 {
						b, bp = channelsLast(r, tc.c2, n)
					}
					if tc.c1 == 1 {
						a = ap // the one-channel form reads a plain grid
					}
					conv, err := NewConv(weight, bias, tc.c1, tc.c2, tc.cout)
					if err != nil {
						t.Fatal(err)
					}
					out := make([]float32, n*Pad(tc.cout))
					for i := range out {
						out[i] = float32(math.NaN()) // every value must be written
					}
					st := conv.Forward(out, a, b, tc.d, tc.h, tc.w)
					want := directConv(append(ap, bp...), cin, tc.d, tc.h, tc.w, weight, bias,
						tc.cout)
					cp := Pad(tc.cout)
					var worst float64
					for o := range tc.cout {
						var sum float64
						for v := range n {
							got := float64(out[v*cp+o])
							ref := want[o*n+v]
							// Sums of cin*27 products of magnitude <= 0.2: allow a few
							// float32 roundings of the largest partial sums.
							tol := 1e-5 * (1 + math.Sqrt(float64(cin*27)))
							if d := math.Abs(got - ref); !(d <= tol) {
								t.Fatalf("channel %d voxel %d: %g, direct %g", o, v, got, ref)
							} else {
								worst = max(worst, d)
							}
							sum += got
						}
						if math.Abs(st.Sum[o]-sum) > 1e-6*math.Abs(sum)+1e-4 {
							t.Fatalf("channel %d sum %g, want %g", o, st.Sum[o], sum)
						}
					}
					for v := range n {
						for o := tc.cout; o < cp; o++ {
							if out[v*cp+o] != 0 {
								t.Fatalf("padding channel %d of voxel %d is %g", o, v, out[v*cp+o])
							}
						}
					}
					t.Logf("largest difference from the float64 direct form: %.2g", worst)
				})
		}
	})
}

func TestNewConvRejectsBadLengths(t *testing.T) {
	if _, err := NewConv(make([]float32, 27*2*3), make([]float32, 3), 2, 0, 3); err != nil {
		t.Fatalf("well-formed 2 -> 3 convolution refused: %v", err)
	}
	if _, err := NewConv(make([]float32, 27*2*3-1), make([]float32, 3), 2, 0, 3); err == nil {
		t.Fatal("short weights accepted")
	}
	if _, err := NewConv(make([]float32, 27*2*3), make([]float32, 2), 2, 0, 3); err == nil {
		t.Fatal("short bias accepted")
	}
	if _, err := NewConv(nil, nil, 0, 0, 3); err == nil {
		t.Fatal("zero input channels accepted")
	}
}

func TestNormReLU(t *testing.T) {
	forLevels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		const c, n = 20, 300
		x, planar := channelsLast(r, c, n)
		for i := range planar {
			planar[i] = planar[i]*3 + 1 // mean 1, so the shift matters
		}
		// Channel 0 is nearly constant (a patch that is mostly padding): its variance is
		// 3e-7 of its squared mean, which float32 sums of squares would lose.
		for v := range n {
			planar[v] = 10 + planar[v]*1e-2
		}
		FromPlanar(x, planar, c, n)
		st := Stats{Sum: make([]float64, Pad(c)), N: n}
		for k := range c {
			for v := range n {
				st.Sum[k] += float64(planar[k*n+v])
			}
		}
		NormReLU(x, c, n, st, 1e-5)
		for k := range c {
			var mean, vr float64
			for v := range n {
				mean += float64(planar[k*n+v])
			}
			mean /= n
			for v := range n {
				d := float64(planar[k*n+v]) - mean
				vr += d * d
			}
			vr /= n
			for v := range n {
				want := max(0, (float64(planar[k*n+v])-mean)/math.Sqrt(vr+1e-5))
				// Channel 0's mean is rounded to float32 (an ulp of 10 is 1e-6) before the
				// deviations are divided by its standard deviation of 6e-3.
				tol := 1e-5
				if k == 0 {
					tol = 1e-4
				}
				if got := float64(x[v*Pad(c)+k]); math.Abs(got-want) > tol {
					t.Fatalf("channel %d voxel %d: %g, want %g", k, v, got, want)
				}
			}
		}
		for v := range n {
			for k := c; k < Pad(c); k++ {
				if x[v*Pad(c)+k] != 0 {
					t.Fatalf("padding channel %d became %g", k, x[v*Pad(c)+k])
				}
			}
		}
	})
}

func TestMaxPool(t *testing.T) {
	forLevels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		const c, d, h, w = 7, 4, 6, 2
		x, planar := channelsLast(r, c, d*h*w)
		out := make([]float32, d*h*w/8*Pad(c))
		MaxPool(out, x, c, d, h, w)
		for k := range c {
			for z := range d / 2 {
				for y := range h / 2 {
					for xx := range w / 2 {
						want := float32(math.Inf(-1))
						for q := range 8 {
							v := ((2*z+q/4)*h+2*y+q/2%2)*w + 2*xx + q%2
							want = max(want, planar[k*d*h*w+v])
						}
						got := out[((z*h/2+y)*w/2+xx)*Pad(c)+k]
						if got != want {
							t.Fatalf("channel %d (%d,%d,%d): %g, want %g", k, z, y, xx, got, want)
						}
					}
				}
			}
		}
	})
}

// halfPixel returns, as ONNX Resize (linear, half_pixel) defines it for scale 2, the two
// source indices and weights of output o over n source samples.
func halfPixel(o, n int) (i0, i1 int, w0, w1 float64) {
	x := (float64(o)+0.5)/2 - 0.5
	x = min(max(x, 0), float64(n-1))
	i0 = int(math.Floor(x))
	i1 = min(i0+1, n-1)
	w1 = x - float64(i0)
	return i0, i1, 1 - w1, w1
}

func TestUpsample(t *testing.T) {
	forLevels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		const c, d, h, w = 18, 3, 4, 5
		x, planar := channelsLast(r, c, d*h*w)
		out := make([]float32, 8*d*h*w*Pad(c))
		Upsample(out, x, c, d, h, w)
		for k := range c {
			for z := range 2 * d {
				z0, z1, wz0, wz1 := halfPixel(z, d)
				for y := range 2 * h {
					y0, y1, wy0, wy1 := halfPixel(y, h)
					for xx := range 2 * w {
						x0, x1, wx0, wx1 := halfPixel(xx, w)
						at := func(a, b, e int) float64 {
							return float64(planar[((k*d+a)*h+b)*w+e])
						}
						want := wz0*(wy0*(wx0*at(z0, y0, x0)+wx1*at(z0, y0, x1))+
							wy1*(wx0*at(z0, y1, x0)+wx1*at(z0, y1, x1))) +
							wz1*(wy0*(wx0*at(z1, y0, x0)+wx1*at(z1, y0, x1))+
								wy1*(wx0*at(z1, y1, x0)+wx1*at(z1, y1, x1)))
						got := float64(out[((z*2*h+y)*2*w+xx)*Pad(c)+k])
						if math.Abs(got-want) > 1e-6 {
							t.Fatalf("channel %d (%d,%d,%d): %g, want %g", k, z, y, xx, got, want)
						}
					}
				}
			}
		}
	})
}

func TestPlanarRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const c, n = 21, 1000
	cl, planar := channelsLast(r, c, n)
	back := make([]float32, c*n)
	ToPlanar(back, cl, c, n)
	for i := range planar {
		if back[i] != planar[i] {
			t.Fatalf("value %d: %g, want %g", i, back[i], planar[i])
		}
	}
}

// TestWorkersInvariant checks that a convolution with its normalisation gives the same bits
// with one worker and with several: pieces and sums do not follow the worker count.
func TestWorkersInvariant(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const c1, c2, cout, d, h, w = 20, 12, 24, 8, 16, 12
	n := d * h * w
	conv, err := NewConv(randSlice(r, cout*(c1+c2)*27, 0.2), randSlice(r, cout, 0.5), c1, c2,
		cout)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := channelsLast(r, c1, n)
	b, _ := channelsLast(r, c2, n)
	run := func(procs int) []float32 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		out := make([]float32, n*Pad(cout))
		NormReLU(out, cout, n, conv.Forward(out, a, b, d, h, w), 1e-5)
		return out
	}
	one, many := run(1), run(4)
	for i := range one {
		if math.Float32bits(one[i]) != math.Float32bits(many[i]) {
			t.Fatalf("value %d: %g with one worker, %g with four", i, one[i], many[i])
		}
	}
}
