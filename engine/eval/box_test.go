package eval

import (
	"math"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

func box(x0, y0, z0, x1, y1, z1 int) Box {
	return Box{Min: [3]int{x0, y0, z0}, Max: [3]int{x1, y1, z1}}
}

func TestIoU(t *testing.T) {
	cases := []struct {
		name       string
		a, b       Box
		iou, voxel float64
	}{
		// Extents 10 and 10, overlap 5 on each axis: 125 / (1000 + 1000 - 125).
		{"half shift", box(0, 0, 0, 10, 10, 10), box(5, 5, 5, 15, 15, 15), 125.0 / 1875,
			216.0 / (1331 + 1331 - 216)},
		{"identical", box(1, 2, 3, 4, 6, 8), box(1, 2, 3, 4, 6, 8), 1, 1},
		{"disjoint", box(0, 0, 0, 2, 2, 2), box(5, 0, 0, 7, 2, 2), 0, 0},
		// Touching faces share a plane: no volume, but one layer of voxels.
		{"touching", box(0, 0, 0, 2, 2, 2), box(2, 0, 0, 4, 2, 2), 0, 9.0 / (27 + 27 - 9)},
		{"nested", box(0, 0, 0, 10, 10, 10), box(2, 2, 2, 4, 4, 4), 8.0 / 1000, 27.0 / 1331},
		{"one voxel equal", box(3, 3, 3, 3, 3, 3), box(3, 3, 3, 3, 3, 3), 1, 1},
		{"one voxel apart", box(3, 3, 3, 3, 3, 3), box(4, 3, 3, 4, 3, 3), 0, 0},
		{"thin slab", box(0, 0, 0, 4, 4, 0), box(0, 0, 0, 4, 4, 0), 1, 1},
		{"anisotropic", box(0, 0, 0, 4, 2, 1), box(2, 1, 0, 6, 3, 1), 2.0 / (8 + 8 - 2),
			(3 * 2 * 2.0) / (30 + 30 - 12)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := IoU(c.a, c.b); math.Abs(got-c.iou) > 1e-12 {
				t.Errorf("IoU = %v, want %v", got, c.iou)
			}
			if got := IoU(c.b, c.a); math.Abs(got-c.iou) > 1e-12 {
				t.Errorf("IoU (swapped) = %v, want %v", got, c.iou)
			}
			if got := VoxelIoU(c.a, c.b); math.Abs(got-c.voxel) > 1e-12 {
				t.Errorf("VoxelIoU = %v, want %v", got, c.voxel)
			}
		})
	}
}

func TestWallDistance(t *testing.T) {
	cases := []struct {
		name    string
		a, b    Box
		spacing [3]float64
		want    float64
	}{
		{"same", box(1, 2, 3, 4, 5, 6), box(1, 2, 3, 4, 5, 6), [3]float64{1, 1, 1}, 0},
		// Faces differ by 1, 2 (i), 1, 2 (j), 1, 2 (k) voxels: (1+2)*1 + (1+2)*2 + (1+2)*3.
		{"anisotropic", box(0, 0, 0, 10, 10, 10), box(1, 1, 1, 12, 12, 12),
			[3]float64{1, 2, 3}, 18.0 / 6},
		{"signs cancel not", box(5, 5, 5, 9, 9, 9), box(4, 5, 5, 10, 9, 9),
			[3]float64{0.5, 1, 1}, 1.0 / 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := WallDistance(c.a, c.b, c.spacing); math.Abs(got-c.want) > 1e-12 {
				t.Errorf("WallDistance = %v, want %v", got, c.want)
			}
		})
	}
}

func TestLabelBox(t *testing.T) {
	v, err := volume.New([3]int{5, 4, 3}, [3]float64{1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	set := func(i, j, k int, l float32) { v.Data[v.Index(i, j, k)] = l }
	set(1, 2, 0, 7)
	set(3, 1, 2, 7)
	set(4, 3, 1, 2)
	set(0, 0, 0, 6.9999) // rounds to 7
	cases := []struct {
		label int
		want  Box
		ok    bool
	}{
		{7, box(0, 0, 0, 3, 2, 2), true},
		{2, box(4, 3, 1, 4, 3, 1), true},
		{5, Box{}, false},
	}
	for _, c := range cases {
		got, ok, err := LabelBox(v, c.label)
		if err != nil || ok != c.ok || got != c.want {
			t.Errorf("LabelBox(%d) = %v, %v, %v; want %v, %v", c.label, got, ok, err, c.want, c.ok)
		}
	}
	bad := &volume.Volume{Data: make([]float32, 3), Shape: [3]int{2, 2, 2}, Spacing: v.Spacing}
	if _, _, err := LabelBox(bad, 1); err == nil {
		t.Error("LabelBox accepted a volume whose data does not match its shape")
	}
}

func TestUnion(t *testing.T) {
	got := box(0, 5, 2, 3, 6, 4).Union(box(1, 2, 3, 8, 5, 9))
	if want := box(0, 2, 2, 8, 6, 9); got != want {
		t.Errorf("Union = %v, want %v", got, want)
	}
}
