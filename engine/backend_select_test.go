package engine

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/ort"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

type fakeProber struct {
	rep   gpu.Report
	err   error
	calls *int
}

func (f fakeProber) Probe() (gpu.Report, error) {
	*f.calls++
	return f.rep, f.err
}

// gpuEnv is an environment where everything the GPU backend needs is present: a TensorRT
// and CUDA build, an H200, and a matching engine for every model asked for.
func gpuEnv(probes *int) gpu.Env {
	return gpu.Env{
		Probe: fakeProber{calls: probes, rep: gpu.Report{Devices: []gpu.Device{{
			Name: "NVIDIA H200", ComputeCapability: "9.0", MemoryFree: 100 << 30}}}},
		TensorRTBuilt:   func() bool { return true },
		CUDABuilt:       func() bool { return true },
		TensorRTVersion: func() (trt.Version, error) { return trt.Version{Major: 10}, nil },
		Scan: func(dir string, _ trt.Machine) ([]trt.EngineStatus, error) {
			var out []trt.EngineStatus
			for _, m := range []string{"medlam", "medlam-encoder"} {
				out = append(out, trt.EngineStatus{Plan: dir + "/" + m + ".plan",
					Manifest: &trt.EngineManifest{Manifest: backend.Manifest{Model: m}}})
			}
			return out, nil
		},
	}
}

// TestOpenBackendChoice checks how Open picks its backend: cpu never looks at the GPU;
// auto falls back to the CPU (ONNX Runtime) with one logged reason whenever the GPU backend
// cannot run, here always; gpu fails with the reason instead.
func TestOpenBackendChoice(t *testing.T) {
	var cpuOpened []string
	old := cpuOpener
	cpuOpener = func(ort.Options, string) Opener { return fakeOpener(&cpuOpened) }
	t.Cleanup(func() { cpuOpener = old })
	dir := t.TempDir()
	writeModel(t, dir, "medlam.onnx", "medlam")

	noTRT := func(e *gpu.Env) { e.TensorRTBuilt = func() bool { return false } }
	noGPU := func(e *gpu.Env) {
		e.Probe = fakeProber{calls: e.Probe.(fakeProber).calls,
			err: fmt.Errorf("%w: NVML: not found", gpu.ErrNoGPU)}
	}
	cases := []struct {
		name, backend, engines string
		edit                   func(*gpu.Env)
		skipCUDA               bool   // the case relies on this build lacking CUDA
		wantErr                string // "" means Open succeeds on the CPU
		reason                 string // logged fallback reason
		probed                 bool   // the GPUs were probed
	}{
		{name: "default", backend: "", engines: "eng", edit: nil},
		{name: "cpu", backend: "cpu", engines: "eng"},
		{name: "CPU upper case", backend: "CPU", engines: "eng"},
		{name: "auto without TensorRT", backend: "auto", engines: "eng", edit: noTRT,
			reason: "built without TensorRT"},
		{name: "auto without GPU", backend: "auto", engines: "eng", edit: noGPU,
			reason: "no NVIDIA GPU", probed: true},
		{name: "auto without engines dir", backend: "auto", engines: "",
			reason: "--engines", probed: true},
		{name: "auto, engines but no CUDA build", backend: "auto", engines: "eng",
			skipCUDA: true, reason: "built without CUDA", probed: true},
		{name: "gpu without TensorRT", backend: "gpu", engines: "eng", edit: noTRT,
			wantErr: "built without TensorRT"},
		{name: "gpu without GPU", backend: "gpu", engines: "eng", edit: noGPU,
			wantErr: "no NVIDIA GPU", probed: true},
		{name: "gpu, engines but no CUDA build", backend: "gpu", engines: "eng",
			skipCUDA: true, wantErr: "built without CUDA", probed: true},
		{name: "unknown", backend: "tpu", wantErr: `backend "tpu": want auto, gpu or cpu`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.skipCUDA && gpu.CUDABuilt() {
				t.Skip("this binary links CUDA: the engine models would really be opened")
			}
			probes := 0
			env := gpuEnv(&probes)
			if c.edit != nil {
				c.edit(&env)
			}
			var logs bytes.Buffer
			cfg := localize.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			cpuOpened = nil
			e, err := Open(dir, Options{Backend: c.backend, Engines: c.engines, GPUEnv: &env,
				Localize: cfg})
			if (probes > 0) != c.probed {
				t.Errorf("probed the GPUs %d times, want probing %v", probes, c.probed)
			}
			if c.wantErr != "" {
				if err == nil {
					e.Close()
					t.Fatalf("Open succeeded, want an error containing %q", c.wantErr)
				}
				if !strings.Contains(err.Error(), c.wantErr) ||
					!errors.Is(err, backend.ErrUnavailable) ||
					(c.backend == "gpu" && !errors.Is(err, gpu.ErrGPURequested)) {
					t.Fatalf("error %q, want one wrapping backend.ErrUnavailable and "+
						"containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if e.Backend() != CPU || len(cpuOpened) != 1 {
				t.Errorf("backend %q, opened on the CPU: %v; want cpu and medlam.onnx",
					e.Backend(), cpuOpened)
			}
			n := strings.Count(logs.String(), "gpu backend not used; running on the CPU")
			if c.reason == "" && n != 0 {
				t.Errorf("logged a fallback for backend %q:\n%s", c.backend, logs.String())
			}
			if c.reason != "" && (n != 1 || !strings.Contains(logs.String(), c.reason)) {
				t.Errorf("want one fallback record with reason %q, got:\n%s", c.reason,
					logs.String())
			}
		})
	}
}

// TestSAMOpener: on the TensorRT backend each SAM part opens on its engine when the engines
// directory has one for the part's model built from the part's ONNX, and on the CPU
// otherwise, with the reason logged.
func TestSAMOpener(t *testing.T) {
	var onEngine, onCPU []string
	var logs bytes.Buffer
	engine := func(model, onnx string) *trt.EngineManifest {
		return &trt.EngineManifest{Manifest: backend.Manifest{Model: model,
			File: model + ".plan"}, ONNXSHA256: onnx}
	}
	engines := map[string]*trt.EngineManifest{"medlam": engine("medlam", "aa"),
		"sam-encoder": engine("sam-encoder", "e1"), "sam-decoder": engine("sam-decoder", "d1")}
	open := samOpener(fakeOpener(&onEngine), fakeOpener(&onCPU), engines, "e",
		slog.New(slog.NewTextHandler(&logs, nil)))
	for _, m := range []struct{ file, model, sha string }{
		{"sam-encoder.onnx", "sam-encoder", "e1"},
		{"sam-decoder-public.onnx", "sam-decoder-public", "p1"},
		{"medsam-decoder.onnx", "sam-decoder", "d2"}} {
		if _, err := open(m.file, &backend.Manifest{Model: m.model, SHA256: m.sha}); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(onEngine) != "[sam-encoder.onnx]" || fmt.Sprint(onCPU) !=
		"[sam-decoder-public.onnx medsam-decoder.onnx]" {
		t.Errorf("on engines %v, on the CPU %v", onEngine, onCPU)
	}
	for _, why := range []string{"no sam-decoder-public engine in e",
		"sam-decoder.plan was built from ONNX d1, not from medsam-decoder.onnx"} {
		if !strings.Contains(logs.String(), why) {
			t.Errorf("the CPU fallback does not say %q:\n%s", why, logs.String())
		}
	}
}
