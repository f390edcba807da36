package kernels

import (
	"fmt"
	"math"
)

// L2NormaliseChannels normalises x, a batch of maps [N][channels][voxels], in place so that
// each voxel's vector over channels has unit L2 norm, as torch.nn.functional.normalize(x,
// dim=1) does: each value is divided by max(norm, 1e-12) (here multiplied by its float32
// reciprocal, within one rounding of the division). len(x) must be a multiple of
// channels*voxels. Work is spread over Workers() goroutines.
func L2NormaliseChannels(x []float32, channels, voxels int) error {
	if channels < 1 || voxels < 1 {
		return fmt.Errorf("kernels: l2 normalise: channels %d and voxels %d must be >= 1",
			channels, voxels)
	}
	if voxels > math.MaxInt/channels {
		return fmt.Errorf("kernels: l2 normalise: maps of %d channels x %d voxels overflow int",
			channels, voxels)
	}
	if len(x)%(channels*voxels) != 0 {
		return fmt.Errorf("kernels: l2 normalise: %d values are not a whole number of maps of"+
			" %d channels x %d voxels", len(x), channels, voxels)
	}
	const span = 1024
	maps := len(x) / (channels * voxels)
	spans := (voxels + span - 1) / span
	ParallelFor(maps*spans, 1, func(lo, hi int) {
		var buf [span]float32
		for u := lo; u < hi; u++ {
			m := x[u/spans*channels*voxels : (u/spans+1)*channels*voxels]
			v0 := u % spans * span
			v1 := min(v0+span, voxels)
			ss := buf[:v1-v0]
			clear(ss)
			for c := range channels {
				for i, v := range m[c*voxels+v0 : c*voxels+v1] {
					ss[i] += v * v
				}
			}
			for i, s := range ss {
				ss[i] = float32(1 / math.Max(math.Sqrt(float64(s)), l2Eps))
			}
			for c := range channels {
				row := m[c*voxels+v0 : c*voxels+v1]
				for i := range row {
					row[i] *= ss[i]
				}
			}
		}
	})
	return nil
}

// AddTemplateKernel adds one template's similarity kernel for one point to dst: the centre
// crop of kernel^3 voxels (indices size/2-kernel/2 to size/2+kernel/2-1 on each axis) of the
// feature maps features [channels][size^3] (x fastest), L2-normalised over channels. Summing
// it over the templates gives the kernel that SimilaritySearch expects, [channels]
// [kernel^3], the reference's support_center_feature. features is left unchanged.
func AddTemplateKernel(dst, features []float32, channels, size, kernel int) error {
	switch {
	case channels < 1 || size < 1 || kernel < 2 || kernel%2 != 0 || kernel > size:
		return fmt.Errorf("kernels: template kernel: channels %d, size %d, kernel %d: want"+
			" channels >= 1 and an even kernel in [2, size]", channels, size, kernel)
	case !fitsInt(channels, size, size, size):
		return fmt.Errorf("kernels: template kernel: features of channels %d x %d^3 overflow"+
			" int", channels, size)
	case len(features) != channels*size*size*size:
		return fmt.Errorf("kernels: template kernel: features hold %d values, want %d"+
			" (channels %d x %d^3)", len(features), channels*size*size*size, channels, size)
	case len(dst) != channels*kernel*kernel*kernel:
		return fmt.Errorf("kernels: template kernel: dst holds %d values, want %d"+
			" (channels %d x %d^3)", len(dst), channels*kernel*kernel*kernel, channels, kernel)
	}
	lo := size/2 - kernel/2
	s3, k3 := size*size*size, kernel*kernel*kernel
	for t := range k3 {
		z, y, x := lo+t/(kernel*kernel), lo+t/kernel%kernel, lo+t%kernel
		at := (z*size+y)*size + x
		var ss float32
		for c := range channels {
			v := features[c*s3+at]
			ss += v * v
		}
		inv := float32(1 / math.Max(math.Sqrt(float64(ss)), l2Eps))
		for c := range channels {
			dst[c*k3+t] += features[c*s3+at] * inv
		}
	}
	return nil
}

// fitsInt reports whether the product of the positive factors fits in an int.
func fitsInt(factors ...int) bool {
	p := 1
	for _, f := range factors {
		if f > math.MaxInt/p {
			return false
		}
		p *= f
	}
	return true
}
