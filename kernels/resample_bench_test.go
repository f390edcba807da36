package kernels

import (
	"sync"
	"testing"
)

// The benchmark volume: a synthetic abdominal CT of 512 x 512 x 300 voxels at
// 0.8 x 0.8 x 2.5 mm, resampled to 3 mm (137 x 137 x 250 under the package convention).
// build/bench/resample_compare.py builds the same volume with numpy; keep the two in step.
var (
	benchShape   = [3]int{512, 512, 300}
	benchSpacing = [3]float64{0.8, 0.8, 2.5}
	benchTarget  = 3.0
	benchOnce    sync.Once
	benchCT      []float32
)

// syntheticCT returns the benchmark volume: air (-1000 HU) around an elliptic body of soft
// tissue with a deterministic texture (10..70 HU) and a round bone (700 HU) in every slice.
func syntheticCT() []float32 {
	benchOnce.Do(func() {
		nx, ny, nz := benchShape[0], benchShape[1], benchShape[2]
		benchCT = make([]float32, nx*ny*nz)
		for k := range nz {
			for j := range ny {
				for i := range nx {
					x, y := float64(i-256), float64(j-256)
					bx, by := float64(i-256)/30, float64(j-330)/30
					v := float32(-1000)
					switch {
					case bx*bx+by*by <= 1:
						v = 700
					case (x/230)*(x/230)+(y/180)*(y/180) <= 1:
						v = float32(10 + (i*7+j*3+k*11)%61)
					}
					benchCT[i+nx*(j+ny*k)] = v
				}
			}
		}
	})
	return benchCT
}

func benchRatios() [3]float64 {
	var r [3]float64
	for a, s := range benchSpacing {
		r[a] = benchTarget / s
	}
	return r
}

func benchResample(b *testing.B, f resampleFunc) {
	src, r := syntheticCT(), benchRatios()
	benchOutput(b, ResampleShape, r, func(dst []float32, out [3]int) error {
		return f(dst, out, src, benchShape, r)
	})
}

// benchOutput times run into an output of shape(benchShape, p).
func benchOutput(b *testing.B, shape func([3]int, [3]float64) ([3]int, error), p [3]float64,
	run func(dst []float32, out [3]int) error) {
	out, err := shape(benchShape, p)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, out[0]*out[1]*out[2])
	b.ReportMetric(float64(len(dst)), "voxels_out")
	b.ResetTimer()
	for b.Loop() {
		if err := run(dst, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResampleTrilinearCT resamples the 512 x 512 x 300 CT to 3 mm.
func BenchmarkResampleTrilinearCT(b *testing.B) { benchResample(b, ResampleTrilinear) }

// BenchmarkResampleNearestCT resamples the same volume, as a label map, to 3 mm.
func BenchmarkResampleNearestCT(b *testing.B) { benchResample(b, ResampleNearest) }

// benchFactors are the reference's zoom factors for the benchmark volume: spacing / 3 mm.
func benchFactors() [3]float64 {
	var f [3]float64
	for a, s := range benchSpacing {
		f[a] = s / benchTarget
	}
	return f
}

// BenchmarkZoomCubicCT resamples the 512 x 512 x 300 CT to 3 mm as the reference does
// (scipy's cubic spline zoom, 137 x 137 x 250).
func BenchmarkZoomCubicCT(b *testing.B) {
	src := syntheticCT()
	benchOutput(b, ZoomShape, benchFactors(), func(dst []float32, out [3]int) error {
		return ZoomCubic(dst, out, src, benchShape)
	})
}

// BenchmarkResampleLabelsOneHotCT resamples a label map of the benchmark volume (0 air, 1
// body, 2 bone) to 3 mm as the reference does (one-hot, torch trilinear, argmax).
func BenchmarkResampleLabelsOneHotCT(b *testing.B) {
	ct := syntheticCT()
	src := make([]float32, len(ct))
	for i, v := range ct {
		switch {
		case v >= 700:
			src[i] = 2
		case v > -1000:
			src[i] = 1
		}
	}
	f := benchFactors()
	benchOutput(b, ScaleShape, f, func(dst []float32, out [3]int) error {
		return ResampleLabelsOneHot(dst, out, src, benchShape, f)
	})
}
