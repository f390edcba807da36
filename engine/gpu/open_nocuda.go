//go:build !cuda

package gpu

import (
	"fmt"
	"log/slog"

	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
)

// DevicePipeline returns an opener that fails: this binary was built without CUDA.
func DevicePipeline(dir string, work Work, log *slog.Logger) PipelineOpener {
	return func(int) (*Scheduler, func() error, error) {
		return nil, nil, fmt.Errorf("gpu: device pipeline: %w", kgpu.ErrNoCUDA)
	}
}
