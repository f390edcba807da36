package localize

import (
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Kernels are the hot kernels localisation runs: the resampling of a volume to 3 mm (both
// conventions' image resampling; labels go through the CPU's one-hot kernel for Reference),
// the HU normalisation and the multi-scale similarity search of the refinement step. Their
// arguments and results are those of the package kernels functions of the same names.
// CPUKernels is the default; engine/gpu offers a GPU implementation in binaries built with
// the `cuda` tag. An implementation must be safe for concurrent use.
type Kernels interface {
	ResampleTrilinear(dst []float32, dstShape [3]int, src []float32, srcShape [3]int,
		r [3]float64) error
	ResampleNearest(dst []float32, dstShape [3]int, src []float32, srcShape [3]int,
		r [3]float64) error
	// ZoomCubic is the Reference resampling of images (kernels.ZoomCubic).
	ZoomCubic(dst []float32, dstShape [3]int, src []float32, srcShape [3]int) error
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

// ZoomCubic is kernels.ZoomCubic.
func (CPUKernels) ZoomCubic(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int) error {
	return kernels.ZoomCubic(dst, dstShape, src, srcShape)
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

// resampleReference writes into dst, of the given shape (PlanGrid's), the 3 mm grid of las
// as the reference implementation makes it (Reference): images by k's ZoomCubic on scipy's
// grid, labels by kernels.ResampleLabelsOneHot on torch's (on the CPU: label maps are only
// the templates'), with the reference's zoom factors (spacing / 3 mm).
func resampleReference(k Kernels, dst []float32, shape [3]int, las *volume.Volume,
	kind Kind) error {
	if kind == Labels {
		var f [3]float64
		for a := range 3 {
			f[a] = las.Spacing[a] / Spacing
		}
		return kernels.ResampleLabelsOneHot(dst, shape, las.Data, las.Shape, f)
	}
	return k.ZoomCubic(dst, shape, las.Data, las.Shape)
}

// fill allocates geom's voxels (PlanGrid bounded their number) and has write fill them.
func fill(geom *volume.Volume, write func(dst []float32) error) error {
	n, err := volume.NumVoxels(geom.Shape)
	if err != nil {
		return err
	}
	geom.Data = make([]float32, n)
	return write(geom.Data)
}
