package kernels

import "fmt"

// checkGrid checks a C-order grid of extent dims (slowest axis first).
func checkGrid(op string, grid []float32, dims [3]int) error {
	if dims[0] <= 0 || dims[1] <= 0 || dims[2] <= 0 {
		return fmt.Errorf("kernels: %s: grid extent %v must be positive", op, dims)
	}
	if n := dims[0] * dims[1] * dims[2]; len(grid) != n {
		return fmt.Errorf("kernels: %s: grid has %d values, extent %v needs %d", op,
			len(grid), dims, n)
	}
	return nil
}

// CropPatches writes into dst one edge^3 patch per centre, cut from grid (C order over the
// extent dims, slowest axis first): voxel (a, b, c) of patch p is grid voxel
// centres[p] - offset + (a, b, c), and 0 where that lies outside the grid. MedLAM cuts its
// 64^3 crops of the 32-voxel zero-padded frame this way (edge 64, offset 64: half a patch
// plus the padding). dst holds len(centres) patches one after the other.
func CropPatches(dst, grid []float32, dims [3]int, centres [][3]int, offset, edge int) error {
	if err := checkGrid("crop patches", grid, dims); err != nil {
		return err
	}
	if edge <= 0 || edge > 1024 {
		return fmt.Errorf("kernels: crop patches: edge %d out of (0, 1024]", edge)
	}
	vox := edge * edge * edge
	if len(dst) != len(centres)*vox {
		return fmt.Errorf("kernels: crop patches: dst has %d values, %d patches of %d^3 need %d",
			len(dst), len(centres), edge, len(centres)*vox)
	}
	for p, c := range centres {
		cropOne(dst[p*vox:(p+1)*vox], grid, dims, [3]int{c[0] - offset, c[1] - offset,
			c[2] - offset}, edge)
	}
	return nil
}

// cropOne writes the edge^3 patch whose first voxel is grid voxel lo.
func cropOne(dst, grid []float32, dims, lo [3]int, edge int) {
	clear(dst)
	x0, x1 := max(lo[2], 0), min(lo[2]+edge, dims[2])
	if x0 >= x1 {
		return
	}
	for a := range edge {
		z := lo[0] + a
		if z < 0 || z >= dims[0] {
			continue
		}
		for b := range edge {
			y := lo[1] + b
			if y < 0 || y >= dims[1] {
				continue
			}
			src := grid[dims[2]*(y+dims[1]*z):]
			row := dst[(a*edge+b)*edge:]
			copy(row[x0-lo[2]:x1-lo[2]], src[x0:x1])
		}
	}
}

// Gather writes into dst the value of grid (as in CropPatches) at each point - offset, and
// 0 where that lies outside the grid.
func Gather(dst, grid []float32, dims [3]int, points [][3]int, offset int) error {
	if err := checkGrid("gather", grid, dims); err != nil {
		return err
	}
	if len(dst) != len(points) {
		return fmt.Errorf("kernels: gather: dst has %d values for %d points", len(dst),
			len(points))
	}
	for i, p := range points {
		z, y, x := p[0]-offset, p[1]-offset, p[2]-offset
		if z < 0 || z >= dims[0] || y < 0 || y >= dims[1] || x < 0 || x >= dims[2] {
			dst[i] = 0
			continue
		}
		dst[i] = grid[x+dims[2]*(y+dims[1]*z)]
	}
	return nil
}
