package cpunet

/*
#include "cpunet.h"
*/
import "C"

import "github.com/medlsam-fast/medlsam-fast/kernels"

// MaxPool writes the 2x2x2 max pooling (stride 2) of src, c channels over an even [d][h][w]
// grid, to dst over [d/2][h/2][w/2].
func MaxPool(dst, src []float32, c, d, h, w int) {
	cp := Pad(c)
	checkLen("pooling input", len(src), d*h*w*cp)
	checkLen("pooling output", len(dst), d*h*w/8*cp)
	kernels.ParallelFor(d/2, 1, func(lo, hi int) {
		a := [...]C.int64_t{C.int64_t(d), C.int64_t(h), C.int64_t(w), C.int64_t(cp),
			C.int64_t(lo), C.int64_t(hi)}
		switch level {
		case AVX512:
			C.cpunet_maxpool_avx512(f32(dst), f32(src), a[0], a[1], a[2], a[3], a[4], a[5])
		case AVX2:
			C.cpunet_maxpool_avx2(f32(dst), f32(src), a[0], a[1], a[2], a[3], a[4], a[5])
		default:
			C.cpunet_maxpool_generic(f32(dst), f32(src), a[0], a[1], a[2], a[3], a[4], a[5])
		}
	})
}

// Upsample writes the trilinear x2 upsampling of src, c channels over [d][h][w], to dst over
// [2d][2h][2w], with half-pixel centres: output o samples source coordinate o/2 - 1/4,
// clamped to the grid, as ONNX Resize (linear, half_pixel) and torch's interpolate
// (align_corners=False) do.
func Upsample(dst, src []float32, c, d, h, w int) {
	cp := Pad(c)
	checkLen("upsampling input", len(src), d*h*w*cp)
	checkLen("upsampling output", len(dst), 8*d*h*w*cp)
	kernels.ParallelFor(2*d, 1, func(lo, hi int) {
		a := [...]C.int64_t{C.int64_t(d), C.int64_t(h), C.int64_t(w), C.int64_t(cp),
			C.int64_t(lo), C.int64_t(hi)}
		switch level {
		case AVX512:
			C.cpunet_upsample_avx512(f32(dst), f32(src), a[0], a[1], a[2], a[3], a[4], a[5])
		case AVX2:
			C.cpunet_upsample_avx2(f32(dst), f32(src), a[0], a[1], a[2], a[3], a[4], a[5])
		default:
			C.cpunet_upsample_generic(f32(dst), f32(src), a[0], a[1], a[2], a[3], a[4], a[5])
		}
	})
}

// ToPlanar copies the c real channels of a channels-last tensor over n voxels into dst in
// channel-major order, dst[k*n + v]: the layout of the model contract's outputs.
func ToPlanar(dst, src []float32, c, n int) {
	cp := Pad(c)
	checkLen("channels-last tensor", len(src), n*cp)
	checkLen("planar tensor", len(dst), n*c)
	kernels.ParallelFor(n, 4096, func(lo, hi int) {
		C.cpunet_to_planar(f32(dst), f32(src), C.int64_t(n), C.int64_t(c), C.int64_t(cp),
			C.int64_t(lo), C.int64_t(hi))
	})
}

// FromPlanar copies a channel-major tensor src[k*n + v] of c channels over n voxels into
// the channels-last dst (channel stride Pad(c)), zeroing the padding channels.
func FromPlanar(dst, src []float32, c, n int) {
	cp := Pad(c)
	checkLen("planar tensor", len(src), n*c)
	checkLen("channels-last tensor", len(dst), n*cp)
	kernels.ParallelFor(n, 4096, func(lo, hi int) {
		for v := lo; v < hi; v++ {
			row := dst[v*cp : (v+1)*cp]
			for k := range c {
				row[k] = src[k*n+v]
			}
			clear(row[c:])
		}
	})
}
