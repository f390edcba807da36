package volume

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// obliqueVolume returns a volume whose affine rotates, scales by the spacing and shifts, and
// whose voxels hold f of their world position.
func obliqueVolume(t *testing.T, shape [3]int, spacing [3]float64,
	f func(w [3]float64) float64) *Volume {
	t.Helper()
	v, err := New(shape, spacing)
	if err != nil {
		t.Fatal(err)
	}
	// A rotation of 30 degrees about z, then 20 about x, as columns scaled by the spacing.
	c1, s1 := math.Cos(math.Pi/6), math.Sin(math.Pi/6)
	c2, s2 := math.Cos(math.Pi/9), math.Sin(math.Pi/9)
	rz := [3][3]float64{{c1, -s1, 0}, {s1, c1, 0}, {0, 0, 1}}
	rx := [3][3]float64{{1, 0, 0}, {0, c2, -s2}, {0, s2, c2}}
	origin := [3]float64{-120.5, 33.25, -410}
	for r := range 3 {
		for c := range 3 {
			var m float64
			for k := range 3 {
				m += rx[r][k] * rz[k][c]
			}
			v.Affine[r][c] = m * spacing[c]
		}
		v.Affine[r][3] = origin[r]
	}
	for k := range shape[2] {
		for j := range shape[1] {
			for i := range shape[0] {
				w := v.Affine.Apply([3]float64{float64(i), float64(j), float64(k)})
				v.Data[v.Index(i, j, k)] = float32(f(w))
			}
		}
	}
	return v
}

func TestResampleGeometry(t *testing.T) {
	ramp := func(w [3]float64) float64 { return 0.5*w[0] - 1.25*w[1] + 2*w[2] + 7 }
	tests := []struct {
		name    string
		shape   [3]int
		spacing [3]float64
		target  [3]float64
		want    [3]int
	}{
		{"ct to 3 mm", [3]int{41, 37, 23}, [3]float64{0.8, 0.8, 2.5}, [3]float64{3, 3, 3},
			[3]int{11, 10, 19}},
		{"upsample", [3]int{6, 5, 4}, [3]float64{2, 3, 5}, [3]float64{1, 1, 1},
			[3]int{11, 13, 16}},
		{"same spacing", [3]int{7, 8, 9}, [3]float64{1.5, 1.5, 1.5}, [3]float64{1.5, 1.5, 1.5},
			[3]int{7, 8, 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := obliqueVolume(t, tc.shape, tc.spacing, ramp)
			before := v.Clone()
			got, err := v.Resample(tc.target, Linear)
			if err != nil {
				t.Fatal(err)
			}
			if got.Shape != tc.want || got.Spacing != tc.target {
				t.Fatalf("shape %v spacing %v, want %v %v", got.Shape, got.Spacing, tc.want,
					tc.target)
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(v.Data, before.Data) || v.Affine != before.Affine {
				t.Fatal("the receiver changed")
			}
			// Column norms of the new affine are the new spacing.
			for c := range 3 {
				n := math.Hypot(math.Hypot(got.Affine[0][c], got.Affine[1][c]), got.Affine[2][c])
				if math.Abs(n-tc.target[c]) > 1e-9 {
					t.Errorf("affine column %d has norm %v, want %v", c, n, tc.target[c])
				}
			}
			for k := range got.Shape[2] {
				for j := range got.Shape[1] {
					for i := range got.Shape[0] {
						o := [3]float64{float64(i), float64(j), float64(k)}
						w := got.Affine.Apply(o)
						// Same world point as the input index o*r.
						var x [3]float64
						for a := range 3 {
							x[a] = o[a] * tc.target[a] / tc.spacing[a]
						}
						wIn := v.Affine.Apply(x)
						for a := range 3 {
							if math.Abs(w[a]-wIn[a]) > 1e-9 {
								t.Fatalf("voxel %v at %v mm, input sample at %v", o, w, wIn)
							}
						}
						// A field linear in world space is reproduced at the new centres.
						want := ramp(w)
						if d := math.Abs(float64(got.At(i, j, k)) - want); d > 2e-3 {
							t.Fatalf("voxel %v = %v, want %v", o, got.At(i, j, k), want)
						}
					}
				}
			}
		})
	}
}

func TestResampleLabels(t *testing.T) {
	v := obliqueVolume(t, [3]int{20, 18, 9}, [3]float64{0.9, 0.9, 3},
		func(w [3]float64) float64 {
			if w[0] > -110 && w[1] < 40 {
				return 5
			}
			return 0
		})
	got, err := v.Resample([3]float64{2, 2, 2}, Nearest)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[float32]int{}
	for _, x := range got.Data {
		counts[x]++
	}
	if len(counts) != 2 || counts[0] == 0 || counts[5] == 0 {
		t.Fatalf("label values after nearest resampling: %v", counts)
	}
	// Linear resampling of the same map blends labels: the modes really differ.
	lin, err := v.Resample([3]float64{2, 2, 2}, Linear)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(lin.Data, got.Data) {
		t.Fatal("linear and nearest gave the same result on a label edge")
	}
}

func TestResampleErrors(t *testing.T) {
	good, err := New([3]int{4, 4, 4}, [3]float64{1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	short := good.Clone()
	short.Data = short.Data[:10]
	tests := []struct {
		name    string
		v       *Volume
		spacing [3]float64
		mode    Interp
		want    string
	}{
		{"zero spacing", good, [3]float64{1, 0, 1}, Linear, "spacing[1]"},
		{"nan spacing", good, [3]float64{math.NaN(), 1, 1}, Nearest, "spacing[0]"},
		{"negative spacing", good, [3]float64{1, 1, -2}, Linear, "spacing[2]"},
		{"inf spacing", good, [3]float64{1, math.Inf(1), 1}, Linear, "spacing[1]"},
		{"bad volume", short, [3]float64{1, 1, 1}, Linear, "voxels"},
		{"over the cap", good, [3]float64{1e-3, 1e-3, 1e-3}, Linear, "cap"},
		{"unknown mode", good, [3]float64{2, 2, 2}, Interp(9), "Interp(9)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Resample(tc.spacing, tc.mode)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "volume: ") ||
				!strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks the prefix or %q", err, tc.want)
			}
		})
	}
}
