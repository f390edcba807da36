package localize

import (
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Grid is a volume prepared for the network (see Prepare): reoriented to volume.Canonical
// (LAS), resampled to 3 mm and normalised, with what it takes to map its voxel indices back
// to the file it came from. Point coordinates on a Grid are (z, y, x): z is the LAS volume's
// k axis, x its i axis. A Grid is read-only once prepared and safe for concurrent reads.
type Grid struct {
	// Vol is the prepared volume (i fastest, so Data read in C order is [z][y][x]).
	Vol *volume.Volume
	// Source names the file the grid came from, for errors and outputs.
	Source string

	// reo maps LAS indices back to the source grid; nil when the source was already LAS.
	reo *volume.Reorientation
	// ratio is the resampling ratio along LAS i, j, k: resampled index o sits at LAS source
	// index o*ratio.
	ratio [3]float64
	// srcShape and srcAffine are the source file's grid.
	srcShape  [3]int
	srcAffine volume.Affine
	// resampling is how the grid was brought to 3 mm (never "").
	resampling Resampling
}

// Resampling returns how the grid was brought to 3 mm.
func (g *Grid) Resampling() Resampling { return g.resampling.or() }

// Dims returns the grid's extent in (z, y, x) order.
func (g *Grid) Dims() [3]int {
	return [3]int{g.Vol.Shape[2], g.Vol.Shape[1], g.Vol.Shape[0]}
}

// cropPadded writes into dst (64^3 values) the patch centred on c, a point of the padded
// frame: patch voxel (a, b, e) is padded voxel c - 32 + (a, b, e), that is grid voxel
// c - 64 + (a, b, e). Voxels outside the grid read 0.
func (g *Grid) cropPadded(c [3]int, dst []float32) {
	// The arguments are the grid's own and a patch's worth of dst: nothing to refuse.
	_ = kernels.CropPatches(dst[:patchVoxels], g.Vol.Data, g.Dims(), [][3]int{c}, 2*Pad, Patch)
}
