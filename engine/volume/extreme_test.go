package volume

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// labelMap builds a label map of the given shape with the listed (i, j, k) voxels set.
func labelMap(t *testing.T, shape [3]int, voxels map[[3]int]int) *Volume {
	t.Helper()
	v, err := New(shape, [3]float64{1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	for p, l := range voxels {
		v.Data[v.Index(p[0], p[1], p[2])] = float32(l)
	}
	return v
}

func TestExtremePointsHandMade(t *testing.T) {
	tests := []struct {
		name   string
		shape  [3]int
		voxels map[[3]int]int // (i, j, k) -> label
		label  int
		lo, hi [3]int    // (i, j, k)
		want   [6][3]int // (z, y, x) rows zmin, ymin, xmin, zmax, ymax, xmax
	}{
		{
			name: "single voxel", shape: [3]int{4, 3, 5},
			voxels: map[[3]int]int{{2, 1, 3}: 7, {0, 0, 0}: 1},
			label:  7, lo: [3]int{2, 1, 3}, hi: [3]int{2, 1, 3},
			want: [6][3]int{{3, 1, 2}, {3, 1, 2}, {3, 1, 2}, {3, 1, 2}, {3, 1, 2}, {3, 1, 2}},
		},
		{
			// z=0 slice lists (y, x) = (0,0), (0,3), (2,1): the middle is (0,3).
			// y=0 slice lists (z, x) = (0,0), (0,3): index 2/2 = 1 is (0,3).
			name: "odd and even lists", shape: [3]int{4, 3, 2},
			voxels: map[[3]int]int{{0, 0, 0}: 1, {3, 0, 0}: 1, {1, 2, 0}: 1, {2, 1, 1}: 1,
				{1, 1, 1}: 2},
			label: 1, lo: [3]int{0, 0, 0}, hi: [3]int{3, 2, 1},
			want: [6][3]int{{0, 0, 3}, {0, 0, 3}, {0, 0, 0}, {1, 1, 2}, {0, 2, 1}, {0, 0, 3}},
		},
		{
			// One z slice with four voxels in C order (y, x): (0,0), (0,4), (1,1), (1,3);
			// index 4/2 = 2 is (1,1), not a centroid.
			name: "lexicographic median", shape: [3]int{5, 2, 1},
			voxels: map[[3]int]int{{0, 0, 0}: 3, {4, 0, 0}: 3, {1, 1, 0}: 3, {3, 1, 0}: 3},
			label:  3, lo: [3]int{0, 0, 0}, hi: [3]int{4, 1, 0},
			want: [6][3]int{{0, 1, 1}, {0, 0, 4}, {0, 0, 0}, {0, 1, 1}, {0, 1, 3}, {0, 0, 4}},
		},
		{
			// y slices list (x, z), x slowest, as the reference's label.transpose(1, 2, 0):
			// j=0 holds (x, z) = (0,1), (1,0); index 2/2 = 1 is (1,0), that is (z,y,x) =
			// (0,0,1). Listing z-major would give (1,0,0) instead.
			name: "y slice order", shape: [3]int{2, 1, 2},
			voxels: map[[3]int]int{{0, 0, 1}: 6, {1, 0, 0}: 6},
			label:  6, lo: [3]int{0, 0, 0}, hi: [3]int{1, 0, 1},
			want: [6][3]int{{0, 0, 1}, {0, 0, 1}, {1, 0, 0}, {1, 0, 0}, {0, 0, 1}, {0, 0, 1}},
		},
		{
			// x slices list (z, y): i=1 holds (0,2), (1,0), (2,1) -> (1,0); z slows.
			name: "x slice order", shape: [3]int{2, 3, 3},
			voxels: map[[3]int]int{{1, 2, 0}: 5, {1, 0, 1}: 5, {1, 1, 2}: 5},
			label:  5, lo: [3]int{1, 0, 0}, hi: [3]int{1, 2, 2},
			want: [6][3]int{{0, 2, 1}, {1, 0, 1}, {1, 0, 1}, {2, 1, 1}, {0, 2, 1}, {1, 0, 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := labelMap(t, tc.shape, tc.voxels)
			lo, hi, err := LabelBox(v, tc.label)
			if err != nil || lo != tc.lo || hi != tc.hi {
				t.Errorf("LabelBox = %v, %v, %v; want %v, %v", lo, hi, err, tc.lo, tc.hi)
			}
			got, err := ExtremePoints(v, tc.label)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("ExtremePoints = %v, want %v", got, tc.want)
			}
		})
	}
}

// bruteExtremePoints restates the reference's extract_fg_cor directly: the labelled voxels of
// a slice of array axis a, listed in C order of the array transposed to (a, a-2, a-1), that
// is sorted by axis (a+1)%3 then (a+2)%3 of (z, y, x), and entry n/2 of that list.
func bruteExtremePoints(v *Volume, label int) [6][3]int {
	var zyx [][3]int // labelled voxels in C order of (z, y, x)
	for k := 0; k < v.Shape[2]; k++ {
		for j := 0; j < v.Shape[1]; j++ {
			for i := 0; i < v.Shape[0]; i++ {
				if v.At(i, j, k) == float32(label) {
					zyx = append(zyx, [3]int{k, j, i})
				}
			}
		}
	}
	var out [6][3]int
	for a := 0; a < 3; a++ {
		lo, hi := zyx[0][a], zyx[0][a]
		for _, p := range zyx {
			lo, hi = min(lo, p[a]), max(hi, p[a])
		}
		for side, s := range []int{lo, hi} {
			var in [][3]int
			for _, p := range zyx {
				if p[a] == s {
					in = append(in, p)
				}
			}
			slow, fast := (a+1)%3, (a+2)%3
			slices.SortStableFunc(in, func(p, q [3]int) int {
				if p[slow] != q[slow] {
					return p[slow] - q[slow]
				}
				return p[fast] - q[fast]
			})
			out[a+3*side] = in[len(in)/2]
		}
	}
	return out
}

func TestExtremePointsMatchBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for trial := 0; trial < 200; trial++ {
		shape := [3]int{1 + rng.IntN(9), 1 + rng.IntN(9), 1 + rng.IntN(9)}
		v, err := New(shape, [3]float64{1, 1, 1})
		if err != nil {
			t.Fatal(err)
		}
		density := rng.Float64()
		for n := range v.Data {
			if rng.Float64() < density {
				v.Data[n] = float32(1 + rng.IntN(3))
			}
		}
		for label := 1; label <= 3; label++ {
			got, err := ExtremePoints(v, label)
			present := false
			for _, x := range v.Data {
				present = present || x == float32(label)
			}
			if !present {
				if !errors.Is(err, ErrLabelAbsent) {
					t.Fatalf("shape %v label %d absent: error %v", shape, label, err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := bruteExtremePoints(v, label); got != want {
				t.Fatalf("shape %v label %d: got %v, want %v", shape, label, got, want)
			}
		}
	}
}

func TestExtremePointsErrors(t *testing.T) {
	v := labelMap(t, [3]int{3, 3, 3}, map[[3]int]int{{1, 1, 1}: 4})
	short := v.Clone()
	short.Data = short.Data[:5]
	tests := []struct {
		name   string
		v      *Volume
		label  int
		absent bool
	}{
		{"absent label", v, 5, true},
		{"background only asked as other", v, -1, true},
		{"nil map", nil, 4, false},
		{"short data", short, 4, false},
		{"label beyond float32", v, 1<<24 + 1, false},
	}
	for _, tc := range tests {
		_, err := ExtremePoints(tc.v, tc.label)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if errors.Is(err, ErrLabelAbsent) != tc.absent {
			t.Errorf("%s: error %v, want ErrLabelAbsent: %v", tc.name, err, tc.absent)
		}
	}
}
