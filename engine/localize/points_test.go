package localize

import (
	"slices"
	"strings"
	"testing"
)

// labelGrid builds a label grid from a list of (z, y, x) voxels holding label 3.
func labelGrid(t *testing.T, d [3]int, vox [][3]int) *Grid {
	set := map[[3]int]bool{}
	for _, v := range vox {
		set[v] = true
	}
	v := lasVolume(t, d[2], d[1], d[0], func(z, y, x int) float32 {
		if set[[3]int{z, y, x}] {
			return 3
		}
		return 0
	})
	return prepare(t, v, "labels.nii.gz", Labels)
}

func TestWPLPoints(t *testing.T) {
	// The y slice at y = 1 holds (z, x) = (0, 2), (3, 0), (2, 3). The reference lists it
	// x-major: (x0 z3), (x2 z0), (x3 z2), so its middle entry is (z 0, x 2); a z-major list
	// would pick (z 2, x 3).
	vox := [][3]int{{0, 1, 2}, {3, 1, 0}, {2, 1, 3}, {1, 2, 1}}
	g := labelGrid(t, [3]int{5, 4, 5}, vox)
	got, err := wplPoints(g, Organ{Label: 3, Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][3]int{
		{0, 1, 2}, // zmin = 0: only (0, 1, 2)
		{0, 1, 2}, // ymin = 1: x-major middle
		{3, 1, 0}, // xmin = 0: only (3, 1, 0)
		{3, 1, 0}, // zmax = 3
		{1, 2, 1}, // ymax = 2
		{2, 1, 3}, // xmax = 3
	}
	if !slices.Equal(got, want) {
		t.Errorf("wplPoints = %v, want %v", got, want)
	}
	if _, err := wplPoints(g, Organ{Label: 4, Name: "liver"}); err == nil ||
		!strings.Contains(err.Error(), "liver") || !strings.Contains(err.Error(), "labels.nii.gz") {
		t.Errorf("absent organ: error %v should name the organ and the file", err)
	}
}

func TestSplitPoints(t *testing.T) {
	// A slab z 2..8 (extent 6), y 1..3, x 1..2, plus one voxel at z 5, y 4, x 4.
	var vox [][3]int
	for z := 2; z <= 8; z++ {
		for y := 1; y <= 3; y++ {
			for x := 1; x <= 2; x++ {
				vox = append(vox, [3]int{z, y, x})
			}
		}
	}
	vox = append(vox, [3]int{5, 4, 4})
	g := labelGrid(t, [3]int{10, 6, 6}, vox)
	o := Organ{Label: 3}
	n, split := chunksFor(SPL, []int{6, 9}, 2)
	if n != 3 || !split {
		t.Fatalf("chunksFor = %d, %v; want 3 chunks", n, split)
	}
	pts, err := splitPoints(g, o, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 18 {
		t.Fatalf("%d points, want 18", len(pts))
	}
	// step 2: chunks z [2,4), [4,6), [6,8]; chunk 2 excludes z 8 from its y/x bounds.
	wantZ := [][2]int{{2, 4}, {4, 6}, {6, 8}}
	for c := 0; c < 3; c++ {
		r := pts[6*c : 6*c+6]
		if r[0][0] != wantZ[c][0] || r[3][0] != wantZ[c][1] {
			t.Errorf("chunk %d z rows %v, %v; want z %v", c, r[0], r[3], wantZ[c])
		}
	}
	// Chunk 1 holds the extra voxel: its ymax and xmax rows are at 4.
	if r := pts[6:12]; r[4][1] != 4 || r[5][2] != 4 {
		t.Errorf("chunk 1 max rows %v, %v; want y 4 and x 4", r[4], r[5])
	}
	// Chunk 0's zmin row: slice z 2 listed (y, x): 6 voxels, entry 3 is (y 2, x 2).
	if got := pts[0]; got != [3]int{2, 2, 2} {
		t.Errorf("chunk 0 zmin row %v, want [2 2 2]", got)
	}

	cases := []struct {
		mode     Mode
		ext      []int
		interval int
		n        int
		split    bool
	}{
		{WPL, []int{50}, 2, 1, false},
		{SPL, []int{2, 40}, 2, 1, false},
		{SPL, []int{3, 40}, 2, 1, true},
		{SPL, []int{100, 40}, 2, 6, true},
		{SPL, []int{9, 40}, 4, 2, true},
	}
	for _, c := range cases {
		n, s := chunksFor(c.mode, c.ext, c.interval)
		if n != c.n || s != c.split {
			t.Errorf("chunksFor(%v, %v, %d) = %d, %v; want %d, %v", c.mode, c.ext, c.interval,
				n, s, c.n, c.split)
		}
	}
}
