package cpunet

/*
#include "cpunet.h"
*/
import "C"

import (
	"fmt"
	"math"
	"sync"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// level is the build the kernels call; tests lower it to check the others.
var level = Best()

// Conv is a 3x3x3 convolution with bias, stride 1 and zero padding 1, prepared for
// Forward. Its input is the channel-wise concatenation of two tensors of C1 and C2 channels
// (C2 may be 0), which spares the decoder's concatenations a copy.
//
// A one-channel input (the first layer of a network) is run directly instead: its Winograd
// form would multiply 16 padding channels for every real one.
type Conv struct {
	C1, C2, Cout int

	cp1, cp2, coutp, nrw int
	u                    []float32 // [positions][coutp/nrw][cp1+cp2][nrw]
	w27                  []float32 // [27][coutp], the direct form when C1 == 1, C2 == 0
	bias                 []float32 // [coutp]
}

// NewConv prepares a convolution from PyTorch/ONNX weights [cout][c1+c2][3][3][3] and bias
// [cout]. A length that does not match the channel counts is an error.
func NewConv(weight, bias []float32, c1, c2, cout int) (*Conv, error) {
	if c1 < 1 || c2 < 0 || cout < 1 {
		return nil, fmt.Errorf("cpunet: convolution of %d+%d -> %d channels", c1, c2, cout)
	}
	cin := c1 + c2
	if len(weight) != cout*cin*27 || len(bias) != cout {
		return nil, fmt.Errorf("cpunet: %d+%d -> %d channel convolution needs %d weights and "+
			"%d biases, got %d and %d", c1, c2, cout, cout*cin*27, cout, len(weight), len(bias))
	}
	c := &Conv{C1: c1, C2: c2, Cout: cout, cp1: Pad(c1), coutp: Pad(cout)}
	if c2 > 0 {
		c.cp2 = Pad(c2)
	}
	c.bias = make([]float32, c.coutp)
	copy(c.bias, bias)
	if c1 == 1 && c2 == 0 {
		c.w27 = make([]float32, 27*c.coutp)
		for o := range cout {
			for k := range 27 {
				c.w27[k*c.coutp+o] = weight[o*27+k]
			}
		}
		return c, nil
	}
	c.nrw = 16 * panelVectors(c.coutp/16)
	cinp := c.cp1 + c.cp2
	nb := c.coutp / c.nrw
	c.u = make([]float32, positions*c.coutp*cinp)
	kernels.ParallelFor(cout, 1, func(lo, hi int) {
		var t [positions]float64
		for o := lo; o < hi; o++ {
			jb, j := o/c.nrw, o%c.nrw
			for i := range cin {
				l := i
				if i >= c1 {
					l = c.cp1 + i - c1
				}
				transformKernel(&t, weight[(o*cin+i)*27:][:27])
				for p, v := range t {
					c.u[((p*nb+jb)*cinp+l)*c.nrw+j] = float32(v)
				}
			}
		}
	})
	return c, nil
}

// panelVectors picks how many 16-wide vectors of output channels one register tile covers:
// 3 where it divides the count (the network's widths are multiples of 48), else 4, 2 or 1.
func panelVectors(n int) int {
	for _, v := range []int{3, 4, 2} {
		if n%v == 0 {
			return v
		}
	}
	return 1
}

// positions is the number of transformed values of a tile (impl.h): 4 along z (F(2,3)) by
// 6 along y and x (F(4,3)).
const positions = C.CPUNET_POSITIONS

// G of F(2,3) and of F(4,3): the kernel-domain values of a 3-tap kernel.
var (
	winogradG2 = [4][3]float64{{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}}
	winogradG4 = [6][3]float64{
		{1.0 / 4, 0, 0},
		{-1.0 / 6, -1.0 / 6, -1.0 / 6},
		{-1.0 / 6, 1.0 / 6, -1.0 / 6},
		{1.0 / 24, 1.0 / 12, 1.0 / 6},
		{1.0 / 24, -1.0 / 12, 1.0 / 6},
		{0, 0, 1},
	}
)

// transformKernel sets t[(pz*6 + py)*6 + px] =
// sum G2[pz][kz] G4[py][ky] G4[px][kx] g[kz][ky][kx], in float64.
func transformKernel(t *[positions]float64, g []float32) {
	var a [3][3][6]float64 // x transformed
	for kz := range 3 {
		for ky := range 3 {
			for px := range 6 {
				for kx := range 3 {
					a[kz][ky][px] += winogradG4[px][kx] * float64(g[(kz*3+ky)*3+kx])
				}
			}
		}
	}
	var b [3][6][6]float64 // y transformed
	for kz := range 3 {
		for py := range 6 {
			for px := range 6 {
				for ky := range 3 {
					b[kz][py][px] += winogradG4[py][ky] * a[kz][ky][px]
				}
			}
		}
	}
	*t = [positions]float64{}
	for pz := range 4 {
		for py := range 6 {
			for px := range 6 {
				for kz := range 3 {
					t[(pz*6+py)*6+px] += winogradG2[pz][kz] * b[kz][py][px]
				}
			}
		}
	}
}

// Stats are per-channel sums of a tensor over its N voxels, accumulated in float64 from
// float32 partial sums over at most a few thousand voxels each.
type Stats struct {
	Sum []float64
	N   int
}

// scratch is one worker's Winograd buffers for Forward.
type scratch struct {
	v, m []float32
}

var scratchPool sync.Pool

func getScratch(nv, nm int) *scratch {
	s, _ := scratchPool.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	if cap(s.v) < nv {
		s.v = make([]float32, nv)
	}
	if cap(s.m) < nm {
		s.m = make([]float32, nm)
	}
	s.v, s.m = s.v[:nv], s.m[:nm]
	return s
}

// Forward writes the convolution of the [d][h][w] input cat(src1, src2) to dst (channel
// stride Pad(Cout)) and returns the per-channel sums of dst for a following normalisation.
// d must be even and h, w multiples of 4 (every grid of the network is) unless the input
// has one channel,
// in which case src1 is a plain [d][h][w] array rather than a padded channels-last tensor;
// src2 is ignored when C2 is 0. A length or shape that does not fit is a bug of the caller
// and panics.
func (c *Conv) Forward(dst, src1, src2 []float32, d, h, w int) Stats {
	nvox := d * h * w
	checkLen("convolution output", len(dst), nvox*c.coutp)
	if c.w27 != nil {
		checkLen("one-channel convolution input", len(src1), nvox)
	} else {
		checkLen("convolution input", len(src1), nvox*c.cp1)
	}
	if c.C2 > 0 {
		checkLen("second convolution input", len(src2), nvox*c.cp2)
	}
	total := Stats{Sum: make([]float64, c.coutp), N: nvox}
	// Every chunk (or plane) sums into its own row and the rows are added in order, so the
	// sums, and everything normalised by them, do not depend on the number of workers or on
	// which worker ran which chunk.
	var parts []float64
	reduce := func() Stats {
		for r := 0; r < len(parts); r += c.coutp {
			for k := range c.coutp {
				total.Sum[k] += parts[r+k]
			}
		}
		return total
	}
	if c.w27 != nil {
		parts = make([]float64, d*c.coutp)
		kernels.ParallelFor(d, 1, func(lo, hi int) {
			for z := lo; z < hi; z++ {
				conv1(level, src1, d, h, w, c.w27, c.bias, c.coutp, dst,
					parts[z*c.coutp:(z+1)*c.coutp], z, z+1)
			}
		})
		return reduce()
	}
	if d%2 != 0 || h%4 != 0 || w%4 != 0 {
		panic(fmt.Sprintf("cpunet: internal error: Winograd convolution of a %dx%dx%d grid "+
			"(needs d even, h and w multiples of 4)", d, h, w))
	}
	if c.C2 == 0 {
		src2 = nil
	}
	g := C.cpunet_conv_geom{cp1: C.int64_t(c.cp1), cp2: C.int64_t(c.cp2), d: C.int64_t(d),
		h: C.int64_t(h), w: C.int64_t(w), coutp: C.int64_t(c.coutp), nrw: C.int64_t(c.nrw)}
	tiles := nvox / 32
	// Small grids (16 tiles at 8^3, 128 at 16^3) are cut into pieces smaller than a chunk, of
	// at least 8 tiles, so that two or more cores share them; the piece size depends on the
	// grid alone, never on the number of workers, so neither do the sums.
	per := min(Chunk, max(8, tiles/16))
	chunks := (tiles + per - 1) / per
	parts = make([]float64, chunks*c.coutp)
	cinp := c.cp1 + c.cp2
	kernels.ParallelFor(chunks, 1, func(lo, hi int) {
		s := getScratch(36*Chunk*cinp, (36+32)*Chunk*c.coutp)
		defer scratchPool.Put(s)
		for k := lo; k < hi; k++ {
			t0, t1 := C.int64_t(k*per), C.int64_t(min((k+1)*per, tiles))
			st := f64(parts[k*c.coutp : (k+1)*c.coutp])
			switch level {
			case AVX512:
				C.cpunet_conv_avx512(&g, f32(src1), f32(src2), f32(c.u), f32(c.bias),
					f32(dst), f32(s.v), f32(s.m), st, t0, t1)
			case AVX2:
				C.cpunet_conv_avx2(&g, f32(src1), f32(src2), f32(c.u), f32(c.bias),
					f32(dst), f32(s.v), f32(s.m), st, t0, t1)
			default:
				C.cpunet_conv_generic(&g, f32(src1), f32(src2), f32(c.u), f32(c.bias),
					f32(dst), f32(s.v), f32(s.m), st, t0, t1)
			}
		}
	})
	return reduce()
}

func conv1(l Level, src []float32, d, h, w int, w27, bias []float32, coutp int, dst []float32,
	stats []float64, z0, z1 int) {
	a := [...]C.int64_t{C.int64_t(d), C.int64_t(h), C.int64_t(w), C.int64_t(coutp),
		C.int64_t(z0), C.int64_t(z1)}
	switch l {
	case AVX512:
		C.cpunet_conv1_avx512(f32(src), a[0], a[1], a[2], f32(w27), f32(bias), a[3], f32(dst),
			f64(stats), a[4], a[5])
	case AVX2:
		C.cpunet_conv1_avx2(f32(src), a[0], a[1], a[2], f32(w27), f32(bias), a[3], f32(dst),
			f64(stats), a[4], a[5])
	default:
		C.cpunet_conv1_generic(f32(src), a[0], a[1], a[2], f32(w27), f32(bias), a[3], f32(dst),
			f64(stats), a[4], a[5])
	}
}

// normBlock is the number of voxels whose squared deviations one call sums; fixed, so
// that the variance does not depend on the number of workers.
const normBlock = 4096

// NormReLU applies instance normalisation (no affine parameters) and ReLU in place to a
// tensor of c channels over n voxels whose per-channel sums are s:
// x = max(0, (x - mean) / sqrt(var + eps)), with the biased variance, as
// InstanceNormalization and torch.nn.InstanceNorm3d compute it. The variance is summed in a
// second pass over x as the mean squared deviation: from sums of squares it would cancel
// catastrophically in a channel that is nearly constant (a patch that is mostly padding).
func NormReLU(x []float32, c, n int, s Stats, eps float64) {
	cp := Pad(c)
	checkLen("normalised tensor", len(x), n*cp)
	checkLen("channel sums", len(s.Sum), c)
	mean := make([]float32, cp)
	for k := range c {
		mean[k] = float32(s.Sum[k] / float64(s.N))
	}
	blocks := (n + normBlock - 1) / normBlock
	parts := make([]float64, blocks*cp)
	kernels.ParallelFor(blocks, 1, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			v0, v1 := b*normBlock, min((b+1)*normBlock, n)
			p := x[v0*cp : v1*cp]
			nn, cc, out := C.int64_t(v1-v0), C.int64_t(cp), f64(parts[b*cp:(b+1)*cp])
			switch level {
			case AVX512:
				C.cpunet_sqdev_avx512(f32(p), nn, cc, f32(mean), out)
			case AVX2:
				C.cpunet_sqdev_avx2(f32(p), nn, cc, f32(mean), out)
			default:
				C.cpunet_sqdev_generic(f32(p), nn, cc, f32(mean), out)
			}
		}
	})
	// Padding channels keep inv 0, so they stay 0.
	inv := make([]float32, cp)
	for k := range c {
		var ss float64
		for b := range blocks {
			ss += parts[b*cp+k]
		}
		inv[k] = float32(1 / math.Sqrt(ss/float64(n)+eps))
	}
	kernels.ParallelFor(n, 4096, func(lo, hi int) {
		p := x[lo*cp : hi*cp]
		nn, cc := C.int64_t(hi-lo), C.int64_t(cp)
		switch level {
		case AVX512:
			C.cpunet_norm_relu_avx512(f32(p), nn, cc, f32(mean), f32(inv))
		case AVX2:
			C.cpunet_norm_relu_avx2(f32(p), nn, cc, f32(mean), f32(inv))
		default:
			C.cpunet_norm_relu_generic(f32(p), nn, cc, f32(mean), f32(inv))
		}
	})
}
