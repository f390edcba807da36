//go:build cuda

package gpu

import (
	"fmt"

	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
	"github.com/medlsam-fast/medlsam-fast/kernels"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
)

// deviceKernels are the pipeline's kernels on a kernels/gpu Device: each call is one
// native call that stages its host slices through the device's pinned pool (one per batch
// for the similarity search, the slice preprocessing and the mask post-processing).
type deviceKernels struct {
	d    *kgpu.Device
	name string
	done func() error // releases the shared device
}

var _ Kernels = (*deviceKernels)(nil)

// openDeviceKernels opens the kernels on CUDA device 0 (the first visible device).
func openDeviceKernels() (Kernels, error) {
	d, release, err := sharedDevice(0)
	if err != nil {
		return nil, err
	}
	info := d.Info()
	return &deviceKernels{d: d, done: release,
		name: fmt.Sprintf("gpu %d (%s)", info.Ordinal, info.Name)}, nil
}

func (k *deviceKernels) Name() string { return k.name }

func (k *deviceKernels) Close() error {
	if k.done == nil {
		return nil
	}
	err := k.done()
	k.done = nil
	return err
}

func (k *deviceKernels) ResampleTrilinear(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int, r [3]float64) error {
	return k.d.ResampleTrilinear(dst, dstShape, src, srcShape, r)
}

func (k *deviceKernels) ResampleNearest(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int, r [3]float64) error {
	return k.d.ResampleNearest(dst, dstShape, src, srcShape, r)
}

func (k *deviceKernels) ZoomCubic(dst []float32, dstShape [3]int, src []float32,
	srcShape [3]int) error {
	return k.d.ZoomCubic(dst, dstShape, src, srcShape)
}

func (k *deviceKernels) NormalizeHU(dst, src []float32) error { return k.d.NormalizeHU(dst, src) }

func (k *deviceKernels) NewSimilaritySearch(scales []kernels.SimilarityScale,
	patch int) (localize.Searcher, error) {
	s, err := k.d.NewSimilaritySearch(scales, patch)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (k *deviceKernels) SAMWindow(dst []uint8, src []float32) error {
	return k.d.SAMWindow(dst, src)
}

func (k *deviceKernels) SAMPreprocess(dst []float32, win []uint8, shape [3]int,
	slices []int) error {
	return k.d.SAMPreprocess(dst, win, shape, slices)
}

func (k *deviceKernels) SAMMaskPostSlices(vol []int16, shape [3]int, lowRes int,
	slices []segment.MaskSlice) error {
	ms := make([]kgpu.MaskSlice, len(slices))
	for i, s := range slices {
		ms[i] = kgpu.MaskSlice{Z: s.Z, Logits: s.Logits, Labels: s.Labels}
	}
	return k.d.SAMMaskPostSlices(vol, shape, lowRes, ms)
}
