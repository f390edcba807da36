package gpu

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
)

// Kernels are the hot kernels of the pipeline on one device: what localize and segment call
// (their Kernels interfaces), a name for logs and reports, and Close, which frees the device
// once the pipeline is done with them. They are safe for concurrent use.
type Kernels interface {
	localize.Kernels
	segment.Kernels
	// Name says where the kernels run: "cpu", or "gpu N (NAME)".
	Name() string
	Close() error
}

// CPUKernels are the Go kernels (localize.CPUKernels and segment.CPUKernels); Close does
// nothing. The zero value is ready.
type CPUKernels struct {
	cpuLocalize
	cpuSegment
}

// The two CPU kernel sets under distinct names, so that both embed.
type (
	cpuLocalize = localize.CPUKernels
	cpuSegment  = segment.CPUKernels
)

var _ Kernels = CPUKernels{}

// Name returns "cpu".
func (CPUKernels) Name() string { return "cpu" }

// Close does nothing.
func (CPUKernels) Close() error { return nil }

// ParseKernelMode reads a --kernels value: auto, gpu or cpu.
func ParseKernelMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(s)); m {
	case ModeAuto, ModeGPU, ModeCPU:
		return m, nil
	}
	return "", fmt.Errorf("gpu: kernels %q: want auto, gpu or cpu", s)
}

// KernelEnv is what SelectKernels looks at; each field is replaceable by a fake in tests.
type KernelEnv struct {
	// Available returns nil when a CUDA device can run the kernels, else why not
	// (kernels/gpu.Available: no CUDA in this build, no device, no driver).
	Available func() error
	// Open opens the GPU kernels on the first device.
	Open func() (Kernels, error)
}

// DefaultKernelEnv returns the real environment: kernels/gpu's device check, and the GPU
// kernels in binaries built with the `cuda` tag (without it, Open reports that).
func DefaultKernelEnv() KernelEnv {
	return KernelEnv{Available: kgpu.Available, Open: openDeviceKernels}
}

// ErrGPUKernelsRequested is returned by SelectKernels when ModeGPU was asked for and the GPU
// kernels cannot run; it wraps kernels/gpu's reason.
var ErrGPUKernelsRequested = errors.New("gpu: --kernels gpu requested but unavailable")

// SelectKernels chooses the kernels: ModeCPU gives CPUKernels; ModeAuto gives the GPU
// kernels when env reports a device and they open, else CPUKernels; ModeGPU gives the GPU
// kernels or an error wrapping ErrGPUKernelsRequested (and the cause) that says why not.
// Every choice is logged on log as one Info record, "kernels selected", with the kernels'
// name and, for the CPU, the reason. The caller closes the result.
func SelectKernels(mode Mode, env KernelEnv, log *slog.Logger) (Kernels, error) {
	if log == nil {
		log = slog.Default()
	}
	cpu := func(reason string) (Kernels, error) {
		log.Info("kernels selected", "kernels", "cpu", "reason", reason)
		return CPUKernels{}, nil
	}
	switch mode {
	case ModeCPU:
		return cpu("--kernels cpu requested")
	case ModeAuto, ModeGPU:
	default:
		return nil, fmt.Errorf("gpu: kernels mode %q: want auto, gpu or cpu", mode)
	}
	err := errors.New("gpu: no device check configured")
	if env.Available != nil {
		err = env.Available()
	}
	if err == nil {
		if env.Open == nil {
			err = errors.New("gpu: no GPU kernels in this build")
		} else {
			var k Kernels
			if k, err = env.Open(); err == nil {
				log.Info("kernels selected", "kernels", k.Name())
				return k, nil
			}
		}
	}
	if mode == ModeGPU {
		return nil, fmt.Errorf("%w: %w", ErrGPUKernelsRequested, err)
	}
	return cpu(err.Error())
}
