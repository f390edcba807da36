package segment

import (
	"fmt"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Kernels are the hot kernels Segment runs around the SAM models: the window over the
// volume, the preprocessing of a batch of slices into the encoder's input, and the mask
// post-processing of a batch of slices into the label volume. Arguments and results are
// those of kernels.SAMWindow, kernels.SAMPreprocess and kernels.SAMMaskPost. CPUKernels is
// the default; engine/gpu offers a GPU implementation in binaries built with the `cuda`
// tag. An implementation must be safe for concurrent use.
type Kernels interface {
	SAMWindow(dst []uint8, src []float32) error
	SAMPreprocess(dst []float32, win []uint8, shape [3]int, slices []int) error
	// SAMMaskPostSlices applies kernels.SAMMaskPost to the planes of vol (shape [NX, NY,
	// NZ], i fastest) that slices name: slice s's masks go into plane slices[s].Z, which
	// must be distinct. Planes not named are left alone.
	SAMMaskPostSlices(vol []int16, shape [3]int, lowRes int, slices []MaskSlice) error
}

// MaskSlice is the decoder output of one slice: len(Labels) masks of lowRes^2 logits for
// plane Z. The slices are only read.
type MaskSlice struct {
	Z      int
	Logits []float32
	Labels []int16
}

// CPUKernels runs the package kernels functions on the CPU. The zero value is ready and
// safe for concurrent use.
type CPUKernels struct{}

var _ Kernels = CPUKernels{}

// SAMWindow is kernels.SAMWindow.
func (CPUKernels) SAMWindow(dst []uint8, src []float32) error {
	return kernels.SAMWindow(dst, src)
}

// SAMPreprocess is kernels.SAMPreprocess.
func (CPUKernels) SAMPreprocess(dst []float32, win []uint8, shape [3]int, slices []int) error {
	return kernels.SAMPreprocess(dst, win, shape, slices)
}

// SAMMaskPostSlices runs kernels.SAMMaskPost on each slice in turn.
func (CPUKernels) SAMMaskPostSlices(vol []int16, shape [3]int, lowRes int,
	slices []MaskSlice) error {
	nx, ny, nz := shape[0], shape[1], shape[2]
	if nx <= 0 || ny <= 0 || nz <= 0 || len(vol)/nx/ny != nz || len(vol) != nx*ny*nz {
		return fmt.Errorf("segment: mask post: %d labels for shape %v", len(vol), shape)
	}
	plane := nx * ny
	seen := make(map[int]bool, len(slices))
	for s, sl := range slices {
		if sl.Z < 0 || sl.Z >= nz || seen[sl.Z] {
			return fmt.Errorf("segment: mask post: slices[%d].Z = %d outside [0, %d) or "+
				"repeated", s, sl.Z, nz)
		}
		seen[sl.Z] = true
		if err := kernels.SAMMaskPost(vol[sl.Z*plane:(sl.Z+1)*plane], ny, nx, sl.Logits,
			lowRes, sl.Labels); err != nil {
			return err
		}
	}
	return nil
}

// kernelsOr returns k, or CPUKernels when k is nil.
func kernelsOr(k Kernels) Kernels {
	if k == nil {
		return CPUKernels{}
	}
	return k
}
