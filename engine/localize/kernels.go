package localize

import (
	"fmt"

	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Kernels are the hot kernels localisation runs: the resampling of a volume to 3 mm, the
// HU normalisation and the multi-scale similarity search of the refinement step. Their
// arguments and results are those of the package kernels functions of the same names.
// CPUKernels is the default; engine/gpu offers a GPU implementation in binaries built with
// the `cuda` tag. An implementation must be safe for concurrent use.
type Kernels interface {
	ResampleTrilinear(dst []float32, dstShape [3]int, src []float32, srcShape [3]int,
		r [3]float64) error
	ResampleNearest(dst []float32, dstShape [3]int, src []float32, srcShape [3]int,
		r [3]float64) error
	NormalizeHU(dst, src []float32) error
	// NewSimilaritySearch returns a search over scales (kernels.NewSimilaritySearch's
	// arguments), which the caller closes.
	NewSimilaritySearch(scales []kernels.SimilarityScale, patch int) (Searcher, error)
}

// Searcher is one multi-scale similarity search (kernels.SimilaritySearch.Search). Its
// owner calls Close once done; Search calls are made from one goroutine at a time.
type Searcher interface {
	Search(features, kern [][]float32, out []kernels.SimilarityMatch) error
	Close() error
}

// CPUKernels runs the package kernels functions on the CPU. The zero value is ready and
// safe for concurrent use.
type CPUKernels struct{}

var _ Kernels = CPUKernels{}

// ResampleTrilinear is kernels.ResampleTrilinear.
func (CPUKernels) ResampleTrilinear(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int, r [3]float64) error {
	return kernels.ResampleTrilinear(dst, dstShape, src, srcShape, r)
}

// ResampleNearest is kernels.ResampleNearest.
func (CPUKernels) ResampleNearest(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int, r [3]float64) error {
	return kernels.ResampleNearest(dst, dstShape, src, srcShape, r)
}

// NormalizeHU is kernels.NormalizeHU.
func (CPUKernels) NormalizeHU(dst, src []float32) error { return kernels.NormalizeHU(dst, src) }

// NewSimilaritySearch is kernels.NewSimilaritySearch; Close of the result does nothing.
func (CPUKernels) NewSimilaritySearch(scales []kernels.SimilarityScale,
	patch int) (Searcher, error) {
	s, err := kernels.NewSimilaritySearch(scales, patch)
	if err != nil {
		return nil, err
	}
	return cpuSearch{s}, nil
}

// cpuSearch gives kernels.SimilaritySearch the Close a Searcher has.
type cpuSearch struct{ *kernels.SimilaritySearch }

func (cpuSearch) Close() error { return nil }

// kernelsOr returns k, or CPUKernels when k is nil.
func kernelsOr(k Kernels) Kernels {
	if k == nil {
		return CPUKernels{}
	}
	return k
}

// resampleWith brings las to 3 mm with k (the grid convention of volume.Resample: voxel 0
// aligned, affine A*diag(r)), trilinear for images and nearest for labels.
func resampleWith(k Kernels, las *volume.Volume, r [3]float64, kind Kind) (*volume.Volume,
	error) {
	shape, err := kernels.ResampleShape(las.Shape, r)
	if err != nil {
		return nil, err
	}
	return resampled(las, shape, r, func(dst []float32) error {
		if kind == Labels {
			return k.ResampleNearest(dst, shape, las.Data, las.Shape, r)
		}
		return k.ResampleTrilinear(dst, shape, las.Data, las.Shape, r)
	})
}

// resampleReference brings las to 3 mm as the reference implementation does (Reference):
// images by kernels.ZoomCubic on scipy's grid, labels by kernels.ResampleLabelsOneHot on
// torch's, with the reference's zoom factors (spacing / 3 mm). The affine is A*diag(r), the
// nominal back-mapping that the reference uses for its boxes.
func resampleReference(las *volume.Volume, r [3]float64, kind Kind) (*volume.Volume, error) {
	var f [3]float64
	for a := range 3 {
		f[a] = las.Spacing[a] / Spacing
	}
	shapeOf, run := kernels.ZoomShape, func(dst []float32, shape [3]int) error {
		return kernels.ZoomCubic(dst, shape, las.Data, las.Shape)
	}
	if kind == Labels {
		shapeOf, run = kernels.ScaleShape, func(dst []float32, shape [3]int) error {
			return kernels.ResampleLabelsOneHot(dst, shape, las.Data, las.Shape, f)
		}
	}
	shape, err := shapeOf(las.Shape, f)
	if err != nil {
		return nil, err
	}
	return resampled(las, shape, r, func(dst []float32) error { return run(dst, shape) })
}

// resampled returns the 3 mm volume of the given shape that fill writes, with las's affine
// scaled by r along each axis; grids over maxGridVoxels are refused before allocating.
func resampled(las *volume.Volume, shape [3]int, r [3]float64,
	fill func(dst []float32) error) (*volume.Volume, error) {
	n, err := volume.NumVoxels(shape)
	if err != nil || n > maxGridVoxels {
		return nil, fmt.Errorf("3 mm grid %v has more than %d voxels", shape, maxGridVoxels)
	}
	out := &volume.Volume{Data: make([]float32, n), Shape: shape,
		Spacing: [3]float64{Spacing, Spacing, Spacing}, Affine: las.Affine}
	if err := fill(out.Data); err != nil {
		return nil, err
	}
	for row := range 4 {
		for a := range 3 {
			out.Affine[row][a] *= r[a]
		}
	}
	return out, nil
}
