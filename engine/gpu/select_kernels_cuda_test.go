//go:build cuda

package gpu

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
)

// TestDeviceKernelsMatchCPU selects the GPU kernels on a machine with a device and checks
// the adapter against the CPU kernels through the pipeline's entry points: the prepared
// 3 mm grid (resampling and HU normalisation; tolerance 1e-4 absolute on values in [0, 1]),
// and a batch of mask post-processing (labels equal but for at most 0.1 % of voxels, the
// one-ulp sigmoid caveat of kernels/cuda/maskpost.cu).
func TestDeviceKernelsMatchCPU(t *testing.T) {
	if err := kgpu.Available(); err != nil {
		t.Skipf("no CUDA device: %v", err)
	}
	k, err := SelectKernels(ModeGPU, DefaultKernelEnv(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if !strings.HasPrefix(k.Name(), "gpu") {
		t.Fatalf("kernels %q, want the GPU's", k.Name())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	v, err := volume.New([3]int{61, 47, 33}, [3]float64{0.8, 0.8, 2.5})
	if err != nil {
		t.Fatal(err)
	}
	for i := range v.Data {
		v.Data[i] = float32(rng.IntN(2400)) - 1000
	}
	want, err := localize.Prepare(v, "q", localize.Image)
	if err != nil {
		t.Fatal(err)
	}
	got, err := localize.PrepareWith(localize.Config{Kernels: k}, v, "q", localize.Image)
	if err != nil {
		t.Fatal(err)
	}
	if got.Vol.Shape != want.Vol.Shape {
		t.Fatalf("shape %v, want %v", got.Vol.Shape, want.Vol.Shape)
	}
	for i := range got.Vol.Data {
		if d := math.Abs(float64(got.Vol.Data[i] - want.Vol.Data[i])); d > 1e-4 {
			t.Fatalf("voxel %d: %v on the GPU, %v on the CPU", i, got.Vol.Data[i],
				want.Vol.Data[i])
		}
	}

	shape := [3]int{37, 29, 9}
	const lowRes = 16
	var slices []segment.MaskSlice
	for _, z := range []int{1, 4, 7} {
		n := 1 + rng.IntN(3)
		sl := segment.MaskSlice{Z: z, Logits: make([]float32, n*lowRes*lowRes)}
		for i := range sl.Logits {
			sl.Logits[i] = float32(rng.NormFloat64() * 4)
		}
		for m := 0; m < n; m++ {
			sl.Labels = append(sl.Labels, int16(1+rng.IntN(5)))
		}
		slices = append(slices, sl)
	}
	cpuVol := make([]int16, shape[0]*shape[1]*shape[2])
	for i := range cpuVol {
		cpuVol[i] = int16(i % 3)
	}
	gpuVol := append([]int16(nil), cpuVol...)
	if err := (segment.CPUKernels{}).SAMMaskPostSlices(cpuVol, shape, lowRes,
		slices); err != nil {
		t.Fatal(err)
	}
	if err := k.SAMMaskPostSlices(gpuVol, shape, lowRes, slices); err != nil {
		t.Fatal(err)
	}
	diff := 0
	for i := range cpuVol {
		if cpuVol[i] != gpuVol[i] {
			diff++
		}
	}
	if diff*1000 > len(cpuVol) {
		t.Errorf("%d of %d labels differ between the GPU and CPU mask post", diff, len(cpuVol))
	}
}
