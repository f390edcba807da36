//go:build !cuda

package gpu

import (
	"errors"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/kernels"
)

func TestStubReportsNoCUDA(t *testing.T) {
	d, err := Open(0)
	if d != nil || !errors.Is(err, ErrNoCUDA) {
		t.Fatalf("Open(0) = %v, %v; want nil, ErrNoCUDA", d, err)
	}
	var dev *Device
	tests := []struct {
		name string
		err  error
	}{
		{"Available", Available()},
		{"ResampleTrilinear", dev.ResampleTrilinear(nil, [3]int{}, nil, [3]int{}, [3]float64{})},
		{"ResampleNearest", dev.ResampleNearest(nil, [3]int{}, nil, [3]int{}, [3]float64{})},
		{"NormalizeHU", dev.NormalizeHU(nil, nil)},
		{"SAMWindow", dev.SAMWindow(nil, nil)},
		{"SAMWindowFloat", dev.SAMWindowFloat(nil, nil)},
		{"SAMPreprocess", dev.SAMPreprocess(nil, nil, [3]int{}, nil)},
		{"SAMPreprocessHalf", dev.SAMPreprocessHalf(nil, nil, [3]int{}, nil)},
		{"SAMMaskPost", dev.SAMMaskPost(nil, 0, 0, nil, 0, nil)},
		{"SAMMaskPostSlices", dev.SAMMaskPostSlices(nil, [3]int{}, 0, nil)},
		{"Search", (&SimilaritySearch{}).Search(nil, nil, []kernels.SimilarityMatch{{}})},
		{"RuntimeVersion", func() error { _, err := RuntimeVersion(); return err }()},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, ErrNoCUDA) {
			t.Errorf("%s: got %v, want ErrNoCUDA", tc.name, tc.err)
		}
	}
	if n, err := DeviceCount(); n != 0 || !errors.Is(err, ErrNoCUDA) {
		t.Errorf("DeviceCount() = %d, %v", n, err)
	}
	if SelectOrFallback(nil) {
		t.Error("SelectOrFallback chose the GPU in a build without CUDA")
	}
}
