//go:build !cuda

package gpu

import (
	"fmt"

	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
)

func openEngineModels(c Choice) (ModelOpener, func() error, error) {
	return nil, nil, fmt.Errorf("gpu: TensorRT models: %w", kgpu.ErrNoCUDA)
}
