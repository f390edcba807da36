package kernels

import (
	"math/rand/v2"
	"testing"
)

// naiveAt reads grid voxel (z, y, x), 0 outside.
func naiveAt(grid []float32, dims [3]int, z, y, x int) float32 {
	if z < 0 || z >= dims[0] || y < 0 || y >= dims[1] || x < 0 || x >= dims[2] {
		return 0
	}
	return grid[x+dims[2]*(y+dims[1]*z)]
}

func randomGrid(r *rand.Rand, dims [3]int) []float32 {
	g := make([]float32, dims[0]*dims[1]*dims[2])
	for i := range g {
		g[i] = 1 + r.Float32() // never 0, so a missed copy shows
	}
	return g
}

// TestCropPatches: every voxel of every patch is the grid voxel it names, or 0 outside,
// for patches inside, across each face, and wholly outside an odd-sized grid.
func TestCropPatches(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dims := [3]int{13, 7, 11}
	grid := randomGrid(r, dims)
	const edge, offset = 5, 4
	centres := [][3]int{{8, 5, 7}, {0, 0, 0}, {4 + 12, 4 + 6, 4 + 10}, {-20, 5, 5},
		{8, 30, 5}, {4, 4, 4}, {6, 2, 14}}
	for range 20 {
		centres = append(centres, [3]int{r.IntN(25) - 4, r.IntN(19) - 4, r.IntN(23) - 4})
	}
	dst := make([]float32, len(centres)*edge*edge*edge)
	for i := range dst {
		dst[i] = -1
	}
	if err := CropPatches(dst, grid, dims, centres, offset, edge); err != nil {
		t.Fatal(err)
	}
	for p, c := range centres {
		for a := range edge {
			for b := range edge {
				for e := range edge {
					got := dst[((p*edge+a)*edge+b)*edge+e]
					want := naiveAt(grid, dims, c[0]-offset+a, c[1]-offset+b, c[2]-offset+e)
					if got != want {
						t.Fatalf("patch %d at %v, voxel (%d %d %d): %v, want %v", p, c, a, b,
							e, got, want)
					}
				}
			}
		}
	}
}

func TestGather(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	dims := [3]int{9, 4, 6}
	grid := randomGrid(r, dims)
	var pts [][3]int
	for range 200 {
		pts = append(pts, [3]int{r.IntN(15) - 3, r.IntN(10) - 3, r.IntN(12) - 3})
	}
	dst := make([]float32, len(pts))
	if err := Gather(dst, grid, dims, pts, 2); err != nil {
		t.Fatal(err)
	}
	outside := 0
	for i, p := range pts {
		want := naiveAt(grid, dims, p[0]-2, p[1]-2, p[2]-2)
		if dst[i] != want {
			t.Fatalf("point %v: %v, want %v", p, dst[i], want)
		}
		if want == 0 {
			outside++
		}
	}
	if outside == 0 || outside == len(pts) {
		t.Fatalf("%d of %d points outside: the test covers both cases", outside, len(pts))
	}
}

func TestPatchArgumentErrors(t *testing.T) {
	grid := make([]float32, 24)
	for _, c := range []struct {
		name string
		err  error
	}{
		{"short grid", CropPatches(make([]float32, 8), grid[:5], [3]int{2, 3, 4}, [][3]int{{}}, 0, 2)},
		{"zero extent", CropPatches(nil, nil, [3]int{0, 3, 4}, nil, 0, 2)},
		{"bad edge", CropPatches(nil, grid, [3]int{2, 3, 4}, nil, 0, 0)},
		{"short dst", CropPatches(make([]float32, 7), grid, [3]int{2, 3, 4}, [][3]int{{}}, 0, 2)},
		{"gather dst", Gather(make([]float32, 2), grid, [3]int{2, 3, 4}, [][3]int{{}}, 0)},
	} {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
