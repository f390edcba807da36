//go:build !cuda

package gpu

import (
	"fmt"

	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
)

// openDeviceKernels reports that this binary has no GPU kernels.
func openDeviceKernels() (Kernels, error) {
	return nil, fmt.Errorf("gpu: GPU kernels: %w", kgpu.ErrNoCUDA)
}
