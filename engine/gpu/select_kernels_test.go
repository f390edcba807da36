package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
)

// fakeGPUKernels stands for the GPU kernels: the CPU ones under another name.
type fakeGPUKernels struct {
	CPUKernels
	closed *bool
}

func (fakeGPUKernels) Name() string { return "gpu 0 (fake)" }

func (k fakeGPUKernels) Close() error {
	*k.closed = true
	return nil
}

func TestSelectKernels(t *testing.T) {
	noDevice := func() error { return fmt.Errorf("%w: cudaGetDeviceCount found 0", kgpu.ErrNoDevice) }
	present := func() error { return nil }
	tests := []struct {
		name      string
		mode      Mode
		available func() error
		openErr   error
		want      string // the kernels' name; "" for an error
		reason    string // logged reason (CPU) or in the error
		opened    bool   // env.Open was called
	}{
		{name: "cpu", mode: ModeCPU, available: present, want: "cpu",
			reason: "--kernels cpu requested"},
		{name: "auto with device", mode: ModeAuto, available: present, want: "gpu 0 (fake)",
			opened: true},
		{name: "auto without CUDA build", mode: ModeAuto,
			available: func() error { return kgpu.ErrNoCUDA }, want: "cpu",
			reason: "built without CUDA"},
		{name: "auto without device", mode: ModeAuto, available: noDevice, want: "cpu",
			reason: "found 0"},
		{name: "auto, open fails", mode: ModeAuto, available: present,
			openErr: errors.New("out of memory"), want: "cpu", reason: "out of memory",
			opened: true},
		{name: "gpu with device", mode: ModeGPU, available: present, want: "gpu 0 (fake)",
			opened: true},
		{name: "gpu without device", mode: ModeGPU, available: noDevice, reason: "found 0"},
		{name: "gpu without CUDA build", mode: ModeGPU,
			available: func() error { return kgpu.ErrNoCUDA }, reason: "built without CUDA"},
		{name: "gpu, open fails", mode: ModeGPU, available: present,
			openErr: errors.New("out of memory"), reason: "out of memory", opened: true},
		{name: "bad mode", mode: "tpu", available: present, reason: `"tpu"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			opened, closed := false, false
			env := KernelEnv{Available: tc.available, Open: func() (Kernels, error) {
				opened = true
				if tc.openErr != nil {
					return nil, tc.openErr
				}
				return fakeGPUKernels{closed: &closed}, nil
			}}
			k, err := SelectKernels(tc.mode, env, log)
			if opened != tc.opened {
				t.Errorf("opened the GPU kernels: %v, want %v", opened, tc.opened)
			}
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("kernels %v, error %v; want an error containing %q", k, err,
						tc.reason)
				}
				if tc.mode == ModeGPU && !errors.Is(err, ErrGPUKernelsRequested) {
					t.Errorf("error %v does not wrap ErrGPUKernelsRequested", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Name() != tc.want {
				t.Errorf("kernels %q, want %q", k.Name(), tc.want)
			}
			recs := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(recs) != 1 || !strings.Contains(recs[0], `msg="kernels selected"`) ||
				!strings.Contains(recs[0], "kernels=") ||
				!strings.Contains(recs[0], tc.want) || !strings.Contains(recs[0], tc.reason) {
				t.Errorf("log %q: want one \"kernels selected\" record naming %s and %q",
					logs.String(), tc.want, tc.reason)
			}
			if err := k.Close(); err != nil {
				t.Error(err)
			}
			if gpuChosen := tc.want != "cpu"; closed != gpuChosen {
				t.Errorf("Close reached the GPU kernels: %v, want %v", closed, gpuChosen)
			}
		})
	}
}

// TestDefaultKernelEnv checks the real environment on this machine: the untagged build
// falls back to the CPU with kernels/gpu's reason; a `cuda` build without a device too.
func TestDefaultKernelEnv(t *testing.T) {
	if kgpu.Available() == nil {
		t.Skip("a CUDA device is present: the fallback cannot be observed")
	}
	var logs bytes.Buffer
	k, err := SelectKernels(ModeAuto, DefaultKernelEnv(), slog.New(slog.NewTextHandler(&logs,
		nil)))
	if err != nil || k.Name() != "cpu" || !strings.Contains(logs.String(), "reason=") {
		t.Errorf("auto: kernels %v, error %v, log %q; want the CPU with a reason", k, err,
			logs.String())
	}
	if _, err := SelectKernels(ModeGPU, DefaultKernelEnv(), slog.New(slog.DiscardHandler)); !errors.Is(err,
		ErrGPUKernelsRequested) {
		t.Errorf("gpu: error %v, want ErrGPUKernelsRequested", err)
	}
	for _, s := range []string{"auto", "GPU", "cpu"} {
		if _, err := ParseKernelMode(s); err != nil {
			t.Errorf("ParseKernelMode(%q): %v", s, err)
		}
	}
	if _, err := ParseKernelMode("tpu"); err == nil || !strings.Contains(err.Error(), "kernels") {
		t.Errorf("ParseKernelMode(tpu): %v", err)
	}
}
