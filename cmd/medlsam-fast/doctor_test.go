package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

type doctorFakeProbe struct {
	rep gpu.Report
	err error
}

func (p doctorFakeProbe) Probe() (gpu.Report, error) { return p.rep, p.err }

func withProbe(t *testing.T, p gpu.Prober) {
	t.Helper()
	old := doctorProbe
	doctorProbe = p
	t.Cleanup(func() { doctorProbe = old })
}

// TestDoctorNoGPU runs doctor as on this project's machines: no GPU, no TensorRT. It must
// say so, give advice and exit 0.
func TestDoctorNoGPU(t *testing.T) {
	withProbe(t, doctorFakeProbe{err: errors.New("gpu: no NVIDIA GPU: NVML: library not found")})
	var out, errOut bytes.Buffer
	code := run([]string{"doctor", "--engines", filepath.Join(t.TempDir(), "none")}, &out, &errOut)
	if code != 0 {
		t.Fatalf("doctor exited %d: %s", code, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		"none: gpu: no NVIDIA GPU",
		"no GPU: medlsam-fast runs on the CPU backend",
		"ONNX Runtime",
		"native MedLAM network: ",
		"Advice",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, got)
		}
	}
	if !trt.Built() && !strings.Contains(got, "TensorRT: built without") {
		t.Errorf("doctor does not say TensorRT is not built in:\n%s", got)
	}
}

// TestDoctorRealProbe runs doctor with the real NVML probe: whatever this machine has, it
// must exit 0 and print a GPU section.
func TestDoctorRealProbe(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"doctor"}, &out, &errOut); code != 0 {
		t.Fatalf("doctor exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "GPUs (NVML)") {
		t.Errorf("no GPU section:\n%s", out.String())
	}
}

func writeDoctorEngine(t *testing.T, dir, name, gpuName string) {
	t.Helper()
	plan := []byte("plan " + name)
	if err := os.WriteFile(filepath.Join(dir, name), plan, 0o644); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(plan)
	spec := []backend.TensorSpec{{Name: "x", Shape: []int64{-1, 1}, Type: "float32"}}
	m := trt.EngineManifest{
		Manifest: backend.Manifest{Contract: backend.ContractVersion, Model: "sam-decoder",
			File: name, SHA256: hex.EncodeToString(h[:]), Inputs: spec, Outputs: spec},
		GPUName: gpuName, ComputeCapability: "9.0", TensorRTVersion: "10.13.0",
		ONNXFile: "sam-decoder.onnx", ONNXSHA256: strings.Repeat("0", 64),
		Profiles: []trt.ProfileSpec{{Shapes: map[string]trt.ShapeRange{
			"x": {Min: []int64{1, 1}, Opt: []int64{8, 1}, Max: []int64{64, 1}}}}},
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDoctorEngines(t *testing.T) {
	withProbe(t, doctorFakeProbe{rep: gpu.Report{Driver: "560.35.03", CUDA: "12.6",
		Devices: []gpu.Device{{Name: "NVIDIA H200", ComputeCapability: "9.0",
			MemoryTotal: 141 << 30, MemoryFree: 140 << 30, UtilizationGPU: 3}}}})
	dir := t.TempDir()
	writeDoctorEngine(t, dir, "other.plan", "NVIDIA A100-SXM4-80GB")
	if err := os.WriteFile(filepath.Join(dir, "orphan.plan"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"doctor", "--engines", dir}, &out, &errOut); code != 0 {
		t.Fatalf("doctor exited %d: %s", code, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		"0: NVIDIA H200, compute 9.0, 140.0 of 141.0 GiB free, utilisation 3%",
		"driver 560.35.03, CUDA 12.6",
		`other.plan: sam-decoder for NVIDIA A100-SXM4-80GB (compute 9.0), TensorRT 10.13.0: ` +
			`does not match`,
		"orphan.plan: unusable",
		"rebuild the engines marked above on this machine: bash build/engines/build.sh --out " + dir,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, got)
		}
	}
}

// TestEnginePlan: the engine summary of doctor follows the models with usable engines.
func TestEnginePlan(t *testing.T) {
	for _, c := range []struct {
		models       []string
		line, advice string
	}{
		{nil, "", ""},
		{[]string{"medlam-encoder"}, "", ""},
		{[]string{"medlam"}, "localize runs MedLAM in a GPU worker", "--only sam-encoder"},
		{[]string{"sam-encoder", "sam-decoder"}, "MedLAM localises on the CPU",
			"--only medlam"},
		{[]string{"sam-encoder", "sam-decoder", "medlam"}, "MedLAM localisation and SAM on " +
			"the device", ""},
	} {
		usable := map[string]bool{}
		for _, m := range c.models {
			usable[m] = true
		}
		line, advice := enginePlan(usable)
		if !strings.Contains(line, c.line) || (c.line == "") != (line == "") ||
			!strings.Contains(advice, c.advice) || (c.advice == "") != (advice == "") {
			t.Errorf("%v: %q, %q", c.models, line, advice)
		}
	}
}

func TestDoctorUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"doctor", "extra"}, &out, &errOut); code != 2 {
		t.Errorf("doctor with an argument exited %d, want 2", code)
	}
}

// TestDoctorCUDABuild checks the CUDA line for the three states a binary can be in, with
// the kernels' probes replaced.
func TestDoctorCUDABuild(t *testing.T) {
	tests := []struct {
		name    string
		avail   error
		rt      int
		rtErr   error
		want    string
		wantAdv bool
		wantNot string
	}{
		{name: "without", avail: kgpu.ErrNoCUDA, rtErr: kgpu.ErrNoCUDA,
			want: "CUDA kernels: built without (build tag cuda)", wantAdv: true,
			wantNot: "CUDA runtime"},
		{name: "no device", avail: fmt.Errorf("%w: error 100", kgpu.ErrNoDevice), rt: 11080,
			want: "CUDA kernels: built in, CUDA runtime 11.8, no usable device: gpu: no CUDA " +
				"device: error 100"},
		{name: "device", rt: 12040,
			want: "CUDA kernels: built in, CUDA runtime 12.4, device available"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			oldA, oldR := doctorCUDA, doctorCUDARuntime
			doctorCUDA = func() error { return tc.avail }
			doctorCUDARuntime = func() (int, error) { return tc.rt, tc.rtErr }
			t.Cleanup(func() { doctorCUDA, doctorCUDARuntime = oldA, oldR })
			withProbe(t, doctorFakeProbe{err: errors.New("gpu: no NVIDIA GPU")})
			var out, errOut bytes.Buffer
			code := run([]string{"doctor", "--engines", filepath.Join(t.TempDir(), "none")},
				&out, &errOut)
			if code != 0 {
				t.Fatalf("doctor exited %d: %s", code, errOut.String())
			}
			got := out.String()
			if !strings.Contains(got, tc.want) {
				t.Errorf("doctor output lacks %q:\n%s", tc.want, got)
			}
			adv := strings.Contains(got, "build the CUDA kernels: `make cuda`")
			if adv != tc.wantAdv {
				t.Errorf("advice to build CUDA given: %v, want %v:\n%s", adv, tc.wantAdv, got)
			}
			if tc.wantNot != "" && strings.Contains(got, tc.wantNot) {
				t.Errorf("doctor output has %q:\n%s", tc.wantNot, got)
			}
		})
	}
}
