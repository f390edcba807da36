package kernels

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// zoomReference is testdata/zoom_reference.json, written by zoom_reference.py with scipy
// and torch.
type zoomReference struct {
	Spline []struct {
		Shape    [3]int     `json:"shape"`
		Factors  [3]float64 `json:"factors"`
		Src      []float32  `json:"src"`
		OutShape [3]int     `json:"out_shape"`
		Want     []float64  `json:"want"`
	} `json:"spline"`
	Labels []struct {
		Shape     [3]int     `json:"shape"`
		Factors   [3]float64 `json:"factors"`
		Src       []float32  `json:"src"`
		OutShape  [3]int     `json:"out_shape"`
		Want      []float32  `json:"want"`
		NearTie   []int      `json:"near_tie"`
		ExactTies bool       `json:"exact_ties"`
	} `json:"labels"`
}

func loadZoomReference(t *testing.T) zoomReference {
	t.Helper()
	b, err := os.ReadFile("testdata/zoom_reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref zoomReference
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Spline) == 0 || len(ref.Labels) == 0 {
		t.Fatal("zoom_reference.json holds no cases")
	}
	return ref
}

func TestZoomCubicMatchesScipy(t *testing.T) {
	for _, c := range loadZoomReference(t).Spline {
		shape, err := ZoomShape(c.Shape, c.Factors)
		if err != nil || shape != c.OutShape {
			t.Fatalf("ZoomShape(%v, %v) = %v, %v; scipy makes %v", c.Shape, c.Factors, shape,
				err, c.OutShape)
		}
		got := make([]float32, len(c.Want))
		if err := ZoomCubic(got, shape, c.Src, c.Shape); err != nil {
			t.Fatal(err)
		}
		scale := 0.0
		for _, v := range c.Want {
			scale = max(scale, math.Abs(v))
		}
		worst := 0.0
		for i, v := range c.Want {
			worst = max(worst, math.Abs(float64(got[i])-v)/scale)
		}
		// float32 inputs and intermediates against scipy's float64: a few float32 ulps.
		if worst > 1e-6 {
			t.Errorf("shape %v factors %v: worst difference %.3g of the largest value",
				c.Shape, c.Factors, worst)
		}
	}
}

func TestResampleLabelsOneHotMatchesTorch(t *testing.T) {
	for _, c := range loadZoomReference(t).Labels {
		shape, err := ScaleShape(c.Shape, c.Factors)
		if err != nil || shape != c.OutShape {
			t.Fatalf("ScaleShape(%v, %v) = %v, %v; torch makes %v", c.Shape, c.Factors, shape,
				err, c.OutShape)
		}
		got := make([]float32, len(c.Want))
		if err := ResampleLabelsOneHot(got, shape, c.Src, c.Shape, c.Factors); err != nil {
			t.Fatal(err)
		}
		ties, differ := 0, 0
		for i, w := range c.Want {
			ties += c.NearTie[i]
			if got[i] == w {
				continue
			}
			differ++
			// Where torch's two best weights are within float rounding, its argmax is
			// rounding noise; anywhere else the labels must agree.
			if c.NearTie[i] == 0 || c.ExactTies {
				t.Errorf("shape %v factors %v: voxel %d is %v, torch says %v", c.Shape,
					c.Factors, i, got[i], w)
			}
		}
		t.Logf("shape %v factors %v: %d of %d voxels differ, %d near ties", c.Shape,
			c.Factors, differ, len(c.Want), ties)
	}
}

// TestZoomCubicIdentity checks that the spline passes through the samples: at factor 1 the
// output grid is the input grid.
func TestZoomCubicIdentity(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	shape := [3]int{7, 1, 5}
	src := make([]float32, 35)
	for i := range src {
		src[i] = r.Float32()*2000 - 1000
	}
	dst := make([]float32, len(src))
	if err := ZoomCubic(dst, shape, src, shape); err != nil {
		t.Fatal(err)
	}
	for i := range src {
		if math.Abs(float64(src[i]-dst[i])) > 1e-3 {
			t.Errorf("voxel %d: %v, want %v", i, dst[i], src[i])
		}
	}
}

func TestZoomRefusals(t *testing.T) {
	wantErr := func(err error, part string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), part) {
			t.Errorf("error %v, want one containing %q", err, part)
		}
	}
	_, err := ZoomShape([3]int{4, 4, 4}, [3]float64{0.1, 1, 1})
	wantErr(err, "leave none")
	_, err = ScaleShape([3]int{4, 4, 4}, [3]float64{1, math.NaN(), 1})
	wantErr(err, "factor[1]")
	_, err = ZoomShape([3]int{0, 4, 4}, [3]float64{1, 1, 1})
	wantErr(err, "must be positive")

	src := make([]float32, 8)
	wantErr(ZoomCubic(make([]float32, 7), [3]int{2, 2, 2}, src, [3]int{2, 2, 2}),
		"dst has 7 voxels")
	wantErr(ZoomCubic(make([]float32, 8), [3]int{2, 2, 2}, src, [3]int{2, 2, 3}),
		"src has 8 voxels")

	f := [3]float64{0.5, 0.5, 0.5}
	wantErr(ResampleLabelsOneHot(make([]float32, 1), [3]int{1, 1, 2}, src, [3]int{2, 2, 2}, f),
		"want [1 1 1]")
	src[5] = 1.5
	wantErr(ResampleLabelsOneHot(make([]float32, 1), [3]int{1, 1, 1}, src, [3]int{2, 2, 2}, f),
		"label voxel 5 holds 1.5")
	for _, bad := range []float32{-1, float32(math.Inf(1)), float32(math.NaN())} {
		src[5] = bad
		wantErr(ResampleLabelsOneHot(make([]float32, 1), [3]int{1, 1, 1}, src, [3]int{2, 2, 2},
			f), "not a non-negative integer")
	}
	src[5], src[7] = 1<<25, 3.5 // a large integer label is fine; the first bad voxel is named
	wantErr(ResampleLabelsOneHot(make([]float32, 1), [3]int{1, 1, 1}, src, [3]int{2, 2, 2}, f),
		"label voxel 7 holds 3.5")
}

func TestMirror(t *testing.T) {
	// n = 4: ... 2 1 | 0 1 2 3 | 2 1 0 1 ...
	want := map[int]int{-3: 3, -2: 2, -1: 1, 0: 0, 3: 3, 4: 2, 5: 1, 6: 0, 7: 1}
	for j, w := range want {
		if got := mirror(j, 4); got != w {
			t.Errorf("mirror(%d, 4) = %d, want %d", j, got, w)
		}
	}
	for _, c := range [][3]int{{5, 1, 0}, {-1, 2, 1}, {2, 2, 0}, {3, 2, 1}} {
		if got := mirror(c[0], c[1]); got != c[2] {
			t.Errorf("mirror(%d, %d) = %d, want %d", c[0], c[1], got, c[2])
		}
	}
}

// naiveZoomLine is the textbook form of one line of ZoomCubic: the mirror-boundary cubic
// B-spline prefilter with its causal start summed over the whole line, then the four taps
// at each output position.
func naiveZoomLine(in []float64, nOut int) []float64 {
	n := len(in)
	c := make([]float64, n)
	for i, x := range in {
		c[i] = 6 * x
	}
	if n > 1 {
		z := math.Sqrt(3) - 2
		zn := math.Pow(z, float64(n-1))
		s := c[0] + zn*c[n-1]
		for i := 1; i < n-1; i++ {
			s += math.Pow(z, float64(i)) * (c[i] + zn*c[n-1-i])
		}
		c[0] = s / (1 - zn*zn)
		for i := 1; i < n; i++ {
			c[i] += z * c[i-1]
		}
		c[n-1] = z / (z*z - 1) * (z*c[n-2] + c[n-1])
		for i := n - 2; i >= 0; i-- {
			c[i] = z * (c[i+1] - c[i])
		}
	} else {
		c[0] = in[0]
	}
	out := make([]float64, nOut)
	for o := range out {
		x := 0.0
		if nOut > 1 {
			x = float64(o) * float64(n-1) / float64(nOut-1)
		}
		i := math.Floor(x)
		u := x - i
		w := []float64{(1 - u) * (1 - u) * (1 - u) / 6, (4 - 6*u*u + 3*u*u*u) / 6,
			(1 + 3*u + 3*u*u - 3*u*u*u) / 6, u * u * u / 6}
		for k := range 4 {
			out[o] += w[k] * c[mirror(int(i)-1+k, n)]
		}
	}
	return out
}

// TestZoomCubicPanels checks ZoomCubic against naiveZoomLine applied axis by axis on a
// volume whose passes have more lines than a panel holds and outer blocks that end inside
// a panel, and lines longer than the causal start's horizon.
func TestZoomCubicPanels(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	in, out := [3]int{70, 130, 9}, [3]int{23, 131, 4}
	src := make([]float32, in[0]*in[1]*in[2])
	for i := range src {
		src[i] = r.Float32()*2 - 1
	}
	vol := make([]float64, len(src))
	for i, v := range src {
		vol[i] = float64(v)
	}
	shape := in
	for a := range 3 {
		next := shape
		next[a] = out[a]
		res := make([]float64, next[0]*next[1]*next[2])
		stride := [3]int{1, shape[0], shape[0] * shape[1]}
		ostride := [3]int{1, next[0], next[0] * next[1]}
		for k := range next[2] {
			for j := range next[1] {
				for i := range next[0] {
					p := [3]int{i, j, k}
					if p[a] != 0 {
						continue
					}
					line := make([]float64, shape[a])
					for s := range shape[a] {
						p[a] = s
						line[s] = vol[p[0]*stride[0]+p[1]*stride[1]+p[2]*stride[2]]
					}
					for o, v := range naiveZoomLine(line, next[a]) {
						p[a] = o
						res[p[0]*ostride[0]+p[1]*ostride[1]+p[2]*ostride[2]] = v
					}
				}
			}
		}
		vol, shape = res, next
	}
	got := make([]float32, len(vol))
	if err := ZoomCubic(got, out, src, in); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i, v := range vol {
		worst = max(worst, math.Abs(float64(got[i])-v))
	}
	if worst > 1e-6 {
		t.Errorf("worst difference %.3g from the axis-by-axis textbook form", worst)
	}
}

// TestFirstNonLabel checks that the parallel scan names the first bad voxel whichever
// worker finds which.
func TestFirstNonLabel(t *testing.T) {
	x := make([]float32, 5<<16+3)
	if got := firstNonLabel(x); got != -1 {
		t.Errorf("all zero: %d, want -1", got)
	}
	x[len(x)-1], x[3<<16+5], x[70000] = -2, 0.5, float32(math.NaN())
	if got := firstNonLabel(x); got != 70000 {
		t.Errorf("first bad voxel %d, want 70000", got)
	}
}
