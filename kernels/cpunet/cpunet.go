// Package cpunet holds the CPU kernels of the native MedLAM network: 3x3x3 convolutions by
// Winograd's minimal filtering, instance normalisation with ReLU, 2x max pooling and
// trilinear x2 upsampling, all on single-sample channels-last tensors.
//
// Why it exists: the network's convolutions are 212 GMAC per 64^3 patch, and both ONNX
// Runtime and torch run them directly at about half of this CPU's fp32 FMA peak. A Winograd
// tile here is F(2,3) along z and F(4,3) along y and x: 2x4x4 outputs from 4x6x6 inputs, 144
// multiplications per input and output channel where the direct form needs 864, so the same
// convolution needs 6x fewer multiply-adds, and the products become 144 dense matrix
// products per block of tiles, which register tiles run at about three quarters of peak. The
// transforms use small integer and fractional coefficients; the results stay within about
// 1e-5 relative to the largest partial sums of the direct form (the tests bound it against a
// float64 direct convolution, and engine/native's tests bound the network against ONNX
// Runtime and torch). F(4,3) along all three axes would save another third of the products
// but grows both the error and the per-tile buffers past the L2 cache.
//
// Layout: a tensor of c channels over a [d][h][w] grid is a []float32 of d*h*w*Pad(c)
// values; voxel (z, y, x), channel k is at ((z*h + y)*w + x)*Pad(c) + k, and channels c to
// Pad(c)-1 are zero. Pad rounds up to a multiple of 16, the widest vector of the kernels
// (and a multiple of the others), so every kernel runs on whole vectors.
//
// The arithmetic is C (impl.h, GCC vector extensions) compiled three times: for AVX-512, for
// AVX2 with FMA, and for the baseline, each with vectors of its register width; the best
// that the CPU and OS run is used. BenchmarkConv times each build: on the costliest
// convolution (conv8_2) the development machine ran AVX2 at about half and the baseline at
// about a quarter of the AVX-512 speed, as their widths predict; on lighter layers, where
// the transforms weigh more, the gaps are smaller. Off x86-64 all three are the baseline
// (NEON on arm64). Every entry point checks its slices' lengths against the shapes before
// it calls C, which checks nothing. Work is spread over kernels.Workers() goroutines;
// results do not depend on their number.
package cpunet

/*
#cgo CFLAGS: -O3 -std=gnu11 -Wall
#include "cpunet.h"
*/
import "C"

import (
	"fmt"
	"runtime"
)

// Level is an instruction-set build of the C kernels.
type Level int

// The builds, slowest first.
const (
	Generic Level = iota
	AVX2
	AVX512
)

func (l Level) String() string {
	switch l {
	case AVX2:
		return "avx2"
	case AVX512:
		return "avx512"
	}
	return "generic"
}

// Best is the fastest build this CPU and OS run.
func Best() Level {
	if runtime.GOARCH != "amd64" {
		return Generic
	}
	return Level(C.cpunet_cpu_level())
}

// Levels returns the builds this CPU runs, slowest first; tests run each.
func Levels() []Level {
	var l []Level
	for v := Generic; v <= Best(); v++ {
		l = append(l, v)
	}
	return l
}

// Pad returns the channel stride of a tensor with c channels: c rounded up to 16.
func Pad(c int) int { return (c + 15) / 16 * 16 }

// Chunk is the number of Winograd tiles (2x4x4 output voxels each) processed together.
const Chunk = C.CPUNET_CHUNK

func checkLen(what string, got, want int) {
	if got < want {
		panic(fmt.Sprintf("cpunet: internal error: %s has %d values, needs %d", what, got, want))
	}
}

func f32(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(&s[0])
}

func f64(s []float64) *C.double {
	if len(s) == 0 {
		return nil
	}
	return (*C.double)(&s[0])
}
