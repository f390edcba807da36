package gpu

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

type fakeProber struct {
	rep Report
	err error
}

func (f fakeProber) Probe() (Report, error) { return f.rep, f.err }

var h200 = Device{Name: "NVIDIA H200", ComputeCapability: "9.0", MemoryTotal: 141 << 30,
	MemoryFree: 139 << 30}

// fakeScan reports one engine per model in models, matching unless bad names it.
type scanFunc = func(string, trt.Machine) ([]trt.EngineStatus, error)

func fakeScan(models []string, bad map[string]bool) scanFunc {
	return func(dir string, mach trt.Machine) ([]trt.EngineStatus, error) {
		var out []trt.EngineStatus
		for _, m := range models {
			st := trt.EngineStatus{Plan: dir + "/" + m + ".plan", Manifest: &trt.EngineManifest{
				Manifest: backend.Manifest{Model: m}}}
			if bad[m] {
				st.Err = fmt.Errorf("%w: %s built for another GPU", trt.ErrEngineMismatch, m)
			}
			out = append(out, st)
		}
		return out, nil
	}
}

func goodEnv() Env {
	models := []string{"medlam", "sam-encoder", "sam-decoder"}
	return Env{
		Probe:           fakeProber{rep: Report{Driver: "560.35.03", Devices: []Device{h200}}},
		TensorRTBuilt:   func() bool { return true },
		CUDABuilt:       func() bool { return true },
		TensorRTVersion: func() (trt.Version, error) { return trt.Version{Major: 10, Minor: 13}, nil },
		Engines:         "engines",
		Models:          models,
		Scan:            fakeScan(models, nil),
	}
}

func TestSelect(t *testing.T) {
	tests := []struct {
		name   string
		mode   Mode
		edit   func(e *Env)
		want   Backend
		reason string // in the reason (CPU) or the error (ModeGPU)
	}{
		{name: "all present", mode: ModeAuto, want: TensorRT},
		{name: "cpu requested", mode: ModeCPU, want: CPU, reason: "--backend cpu"},
		{name: "no tensorrt", mode: ModeAuto, want: CPU, reason: "without TensorRT",
			edit: func(e *Env) { e.TensorRTBuilt = func() bool { return false } }},
		{name: "no cuda", mode: ModeAuto, want: CPU, reason: "without the CUDA kernels",
			edit: func(e *Env) { e.CUDABuilt = nil }},
		{name: "no gpu", mode: ModeAuto, want: CPU, reason: "no NVIDIA GPU",
			edit: func(e *Env) {
				e.Probe = fakeProber{err: fmt.Errorf("%w: NVML: library not found", ErrNoGPU)}
			}},
		{name: "no engines dir", mode: ModeAuto, want: CPU, reason: "--engines",
			edit: func(e *Env) { e.Engines = "" }},
		{name: "engine missing", mode: ModeAuto, want: CPU, reason: "no sam-decoder engine",
			edit: func(e *Env) { e.Scan = fakeScan([]string{"medlam", "sam-encoder"}, nil) }},
		{name: "engine for another gpu", mode: ModeAuto, want: CPU,
			reason: "medlam built for another GPU",
			edit: func(e *Env) {
				e.Scan = fakeScan(e.Models, map[string]bool{"medlam": true})
			}},
		{name: "too little memory", mode: ModeAuto, want: CPU, reason: "too little for the SAM encoder",
			edit: func(e *Env) {
				d := h200
				d.MemoryFree = 3 << 30
				e.Probe = fakeProber{rep: Report{Devices: []Device{d}}}
			}},
		{name: "gpu requested, missing", mode: ModeGPU, reason: "without TensorRT",
			edit: func(e *Env) { e.TensorRTBuilt = func() bool { return false } }},
		{name: "gpu requested, present", mode: ModeGPU, want: TensorRT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := goodEnv()
			if tc.edit != nil {
				tc.edit(&env)
			}
			var logs bytes.Buffer
			c, err := Select(tc.mode, env, slog.New(slog.NewTextHandler(&logs, nil)))
			if tc.want == "" {
				if !errors.Is(err, ErrGPURequested) || !errors.Is(err, backend.ErrUnavailable) ||
					!strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("Select = %+v, %v; want ErrGPURequested saying %q", c, err, tc.reason)
				}
				return
			}
			if err != nil || c.Backend != tc.want {
				t.Fatalf("Select = %+v, %v; want %s", c, err, tc.want)
			}
			if tc.want == CPU {
				if !strings.Contains(c.Reason, tc.reason) {
					t.Errorf("reason %q, want %q", c.Reason, tc.reason)
				}
				if tc.mode == ModeAuto && (!strings.Contains(logs.String(), "running on the CPU") ||
					!strings.Contains(logs.String(), tc.reason)) {
					t.Errorf("fallback not logged with its reason: %q", logs.String())
				}
				return
			}
			if c.Engines["sam-encoder"] != "engines/sam-encoder.plan" || c.EncoderBatch != 32 ||
				c.Machine.GPUName != "NVIDIA H200" {
				t.Errorf("choice %+v", c)
			}
		})
	}
}

func TestSelectPicksFreestGPU(t *testing.T) {
	env := goodEnv()
	busy, idle := h200, h200
	busy.Index, busy.MemoryFree = 0, 10<<30
	idle.Index = 1
	env.Probe = fakeProber{rep: Report{Devices: []Device{busy, idle}}}
	c, err := Select(ModeAuto, env, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	if err != nil || c.Device.Index != 1 {
		t.Errorf("Select chose %+v, %v; want device 1", c.Device, err)
	}
}

func TestEncoderBatch(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		free     uint64
		maxBatch int
		want     int
	}{
		{139 * gib, 32, 32},      // H200: room for far more than 32
		{24 * gib, 32, 32},       // (24-1-2) GiB / 640 MiB = 33 images -> 32
		{20 * gib, 32, 16},       // 17 GiB / 640 MiB = 27 -> 16
		{16 * gib, 32, 16},       // 13 GiB / 640 MiB = 20 -> 16
		{8 * gib, 32, 8},         // 5 GiB / 640 MiB = 8
		{3*gib + 640<<20, 32, 1}, // exactly one image
		{3 * gib, 32, 0},         // nothing left after headroom and weights
		{2 * gib, 32, 0},
		{139 * gib, 4, 4},
		{139 * gib, 0, 0},
	}
	for _, tc := range tests {
		got := EncoderBatch(tc.free, EncoderFixedBytes, EncoderBytesPerImage, HeadroomBytes,
			tc.maxBatch)
		if got != tc.want {
			t.Errorf("EncoderBatch(%d MiB, max %d) = %d, want %d", tc.free>>20, tc.maxBatch,
				got, tc.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"auto": ModeAuto, "GPU": ModeGPU, "cpu": ModeCPU,
		"tensorrt": ""} {
		got, err := ParseMode(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestSelectOptional checks Env.Optional: a matching optional engine is chosen, a missing or
// mismatched one is no reason to fall back.
func TestSelectOptional(t *testing.T) {
	tests := []struct {
		name    string
		scanned []string
		bad     map[string]bool
		want    bool // the optional engine is in the choice
	}{
		{"present", []string{"medlam", "medlam-encoder"}, nil, true},
		{"absent", []string{"medlam"}, nil, false},
		{"mismatched", []string{"medlam", "medlam-encoder"},
			map[string]bool{"medlam-encoder": true}, false},
	}
	for _, tc := range tests {
		env := goodEnv()
		env.Models, env.Optional = []string{"medlam"}, []string{"medlam-encoder"}
		env.Scan = fakeScan(tc.scanned, tc.bad)
		c, err := Select(ModeGPU, env, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if _, ok := c.Engines["medlam-encoder"]; ok != tc.want || c.Engines["medlam"] == "" {
			t.Errorf("%s: engines %v, want the optional one: %v", tc.name, c.Engines, tc.want)
		}
	}
}

// TestSelectSizesSAMOnlyWhenThere: a localisation-only choice (no SAM engine) is made on a
// GPU whatever its free memory, with no encoder batch; an optional SAM encoder engine is
// sized, and when it does not fit the choice stands with batch 0.
func TestSelectSizesSAMOnlyWhenThere(t *testing.T) {
	small := h200
	small.MemoryFree = 1 << 20
	for _, c := range []struct {
		name     string
		free     Device
		optional []string
		batch    bool
	}{{"localisation only, little memory", small, nil, false},
		{"optional SAM", h200, SegmentModels, true},
		{"optional SAM, little memory", small, SegmentModels, false}} {
		env := goodEnv()
		env.Probe = fakeProber{rep: Report{Devices: []Device{c.free}}}
		env.Models, env.Optional = LocalizeModels, c.optional
		env.Scan = fakeScan(slices.Concat(LocalizeModels, SegmentModels), nil)
		ch, err := Select(ModeGPU, env, slog.New(slog.DiscardHandler))
		if err != nil || ch.Backend != TensorRT || (ch.EncoderBatch > 0) != c.batch {
			t.Errorf("%s: %v, %+v", c.name, err, ch)
		}
	}
}

func TestLocalizeBatchCap(t *testing.T) {
	profile := func(max int64) []trt.ProfileSpec {
		return []trt.ProfileSpec{{Shapes: map[string]trt.ShapeRange{
			localize.InputPatch: {Min: []int64{1}, Opt: []int64{8}, Max: []int64{max}}}}}
	}
	c := Choice{Manifests: map[string]*trt.EngineManifest{}}
	if got := c.LocalizeBatchCap(); got != localize.DefaultBatchSize {
		t.Errorf("no manifests: cap %d", got)
	}
	c.Manifests["medlam"] = &trt.EngineManifest{Profiles: profile(64)}
	c.Manifests["medlam-encoder"] = &trt.EngineManifest{Profiles: profile(96)}
	c.Manifests["sam-encoder"] = &trt.EngineManifest{Profiles: profile(500)}
	if got := c.LocalizeBatchCap(); got != 96 {
		t.Errorf("cap %d, want the MedLAM engines' largest batch 96", got)
	}
}

// TestNotBuiltFrom: an engine is checked against the export's manifest digest; no engine,
// or no export, is nothing to say; an unreadable manifest is.
func TestNotBuiltFrom(t *testing.T) {
	onnx := "../../testdata/models/sam_tiny-encoder.onnx"
	man, err := backend.LoadManifest(onnx)
	if err != nil {
		t.Fatal(err)
	}
	c := Choice{Manifests: map[string]*trt.EngineManifest{"sam-encoder": {
		Manifest: backend.Manifest{File: "sam-encoder.plan"}, ONNXSHA256: man.SHA256}}}
	if why := c.NotBuiltFrom("sam-encoder", onnx); why != "" {
		t.Errorf("same export: %q", why)
	}
	if why := c.NotBuiltFrom("sam-decoder", onnx); why != "" {
		t.Errorf("no engine: %q", why)
	}
	if why := c.NotBuiltFrom("sam-encoder", t.TempDir()+"/none.onnx"); why != "" {
		t.Errorf("no export: %q", why)
	}
	bad := t.TempDir() + "/bad.onnx"
	if err := os.WriteFile(bad, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if why := c.NotBuiltFrom("sam-encoder", bad); !strings.Contains(why, "bad.onnx") {
		t.Errorf("export without manifest: %q", why)
	}
	c.Manifests["sam-encoder"].ONNXSHA256 = "0123456789abcdef"
	if why := c.NotBuiltFrom("sam-encoder", onnx); !strings.Contains(why,
		"built from ONNX 0123456789ab, not from "+onnx) {
		t.Errorf("other export: %q", why)
	}
}
