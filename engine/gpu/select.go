package gpu

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// Backend names what Select chose.
type Backend string

// The backends.
const (
	CPU      Backend = "cpu"      // ONNX Runtime and the Go kernels (package engine/ort)
	TensorRT Backend = "tensorrt" // TensorRT engines and the CUDA kernels
)

// Mode is the user's request (the --backend flag).
type Mode string

// The modes: auto takes the GPU when everything it needs is present, else the CPU.
const (
	ModeAuto Mode = "auto"
	ModeGPU  Mode = "gpu"
	ModeCPU  Mode = "cpu"
)

// ParseMode reads a --backend value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(s)); m {
	case ModeAuto, ModeGPU, ModeCPU:
		return m, nil
	}
	return "", fmt.Errorf("gpu: backend %q: want auto, gpu or cpu", s)
}

// Env is what Select looks at; each field is replaceable by a fake in tests.
type Env struct {
	// Probe finds the GPUs (NVML{} on a real machine).
	Probe Prober
	// TensorRTBuilt and CUDABuilt say whether this binary has the TensorRT shim and the CUDA
	// kernels linked in (trt.Built and the kernels' equivalent).
	TensorRTBuilt func() bool
	CUDABuilt     func() bool
	// TensorRTVersion is the TensorRT library loaded (trt.LibraryVersion).
	TensorRTVersion func() (trt.Version, error)
	// Engines is the directory of engine plans; Models the model names (manifest "model"
	// field) the run needs, e.g. "medlam", "sam-encoder", "sam-decoder".
	Engines string
	Models  []string
	// Optional are models the run uses when a matching engine is present (Choice.Engines
	// then maps them); their absence is no reason to fall back.
	Optional []string
	// Scan checks the engines in a directory against a machine (trt.ScanEngines).
	Scan func(dir string, mach trt.Machine) ([]trt.EngineStatus, error)
}

// DefaultEnv returns the real environment for the given engines directory and models.
func DefaultEnv(engines string, models []string) Env {
	return Env{Probe: NVML{}, TensorRTBuilt: trt.Built, CUDABuilt: CUDABuilt,
		TensorRTVersion: trt.LibraryVersion, Engines: engines, Models: models,
		Scan: trt.ScanEngines}
}

// CUDABuilt reports whether this binary links the CUDA kernels (the `cuda` build tag).
func CUDABuilt() bool { return !errors.Is(kgpu.Available(), kgpu.ErrNoCUDA) }

// Choice is Select's decision.
type Choice struct {
	Backend Backend
	// Reason says why the CPU was chosen (empty for the GPU).
	Reason string
	// Device is the GPU chosen (the one with the most free memory); Machine what engines
	// must match on it.
	Device  Device
	Machine trt.Machine
	// Engines maps each model to its plan file, and Manifests to that plan's manifest.
	Engines   map[string]string
	Manifests map[string]*trt.EngineManifest
	// EncoderBatch is the SAM encoder batch that fits in the device's free memory (0
	// without a SAM encoder engine, or when an optional one does not fit).
	EncoderBatch int
}

// MaxBatch is the largest batch that input takes in the engines of models, from their
// manifests' profiles; 0 when they do not say.
func (c Choice) MaxBatch(input string, models ...string) int {
	most := 0
	for _, model := range models {
		m := c.Manifests[model]
		if m == nil {
			continue
		}
		for _, p := range m.Profiles {
			if r, ok := p.Shapes[input]; ok && len(r.Max) > 0 {
				most = max(most, int(r.Max[0]))
			}
		}
	}
	return most
}

// LocalizeBatchCap is the first cap on MedLAM patches per engine call of a localisation
// worker: the largest batch its MedLAM engines take (localize.DefaultBatchSize when their
// manifests do not say), so that the first try is not capped.
func (c Choice) LocalizeBatchCap() int {
	if most := c.MaxBatch(localize.InputPatch, slices.Concat(LocalizeModels,
		LocalizeOptional)...); most > 0 {
		return most
	}
	return localize.DefaultBatchSize
}

// NotBuiltFrom says why the engine of model in c was not built from the ONNX export at
// onnxPath: its manifest names other ONNX, or the export's manifest cannot be read. It
// says nothing ("") when the engine was built from it, when c has no engine of model, or
// when there is no export at onnxPath (the engine is then the model).
func (c Choice) NotBuiltFrom(model, onnxPath string) string {
	em := c.Manifests[model]
	if em == nil {
		return ""
	}
	if _, err := os.Stat(onnxPath); errors.Is(err, os.ErrNotExist) {
		return ""
	}
	man, err := backend.LoadManifest(onnxPath)
	if err != nil {
		return err.Error()
	}
	if em.ONNXSHA256 != man.SHA256 {
		return fmt.Sprintf("the %s engine %s was built from ONNX %.12s, not from %s (%.12s)",
			model, em.File, em.ONNXSHA256, onnxPath, man.SHA256)
	}
	return ""
}

// ErrGPURequested is returned by Select when ModeGPU was asked for and the GPU backend cannot
// run; it wraps backend.ErrUnavailable.
var ErrGPURequested = fmt.Errorf("gpu: --backend gpu requested but unavailable: %w",
	backend.ErrUnavailable)

// Select chooses the backend. ModeCPU gives the CPU. Otherwise the GPU backend is chosen
// when the binary has TensorRT and the CUDA kernels, a GPU is present, and every model in
// env.Models has an engine in env.Engines built for this GPU and TensorRT version, and,
// when the SAM encoder is among env.Models, an encoder batch fits in free memory; if something is missing, ModeAuto falls back to the CPU
// and logs why on log (one Info record), while ModeGPU returns an error wrapping
// ErrGPURequested that says why.
func Select(mode Mode, env Env, log *slog.Logger) (Choice, error) {
	if mode == ModeCPU {
		return Choice{Backend: CPU, Reason: "--backend cpu requested"}, nil
	}
	c, why := tryGPU(env)
	return decide(mode, c, why, log)
}

// decide turns the outcome of a GPU check (c, or why it cannot run) into Select's answer for
// mode, logging it.
func decide(mode Mode, c Choice, why string, log *slog.Logger) (Choice, error) {
	if why == "" {
		attrs := []any{"gpu", c.Device.Name, "tensorrt", c.Machine.TensorRT}
		if c.EncoderBatch > 0 {
			attrs = append(attrs, "encoder_batch", c.EncoderBatch)
		}
		log.Info("gpu backend selected", attrs...)
		return c, nil
	}
	if mode == ModeGPU {
		return Choice{}, fmt.Errorf("%w: %s", ErrGPURequested, why)
	}
	log.Info("gpu backend not used; running on the CPU", "reason", why)
	return Choice{Backend: CPU, Reason: why}, nil
}

// tryGPU checks every requirement in order and returns the first one missing.
func tryGPU(env Env) (Choice, string) {
	if env.TensorRTBuilt == nil || !env.TensorRTBuilt() {
		return Choice{}, "this binary was built without TensorRT (build with -tags tensorrt)"
	}
	if env.CUDABuilt == nil || !env.CUDABuilt() {
		return Choice{}, "this binary was built without the CUDA kernels (build with -tags cuda)"
	}
	rep, err := env.Probe.Probe()
	if err != nil {
		return Choice{}, err.Error()
	}
	if len(rep.Devices) == 0 {
		return Choice{}, "no GPU found"
	}
	dev := rep.Devices[0]
	for _, d := range rep.Devices[1:] {
		if d.MemoryFree > dev.MemoryFree {
			dev = d
		}
	}
	ver, err := env.TensorRTVersion()
	if err != nil {
		return Choice{}, err.Error()
	}
	c := Choice{Backend: TensorRT, Device: dev, Engines: map[string]string{},
		Manifests: map[string]*trt.EngineManifest{},
		Machine: trt.Machine{GPUName: dev.Name, ComputeCapability: dev.ComputeCapability,
			TensorRT: ver}}
	if env.Engines == "" {
		return Choice{}, "no engines directory given (--engines)"
	}
	found, err := env.Scan(env.Engines, c.Machine)
	if err != nil {
		return Choice{}, err.Error()
	}
	var problems []string
	for _, model := range env.Models {
		var errs []error
		for _, st := range found {
			if st.Manifest == nil || st.Manifest.Model != model {
				continue
			}
			if st.Err == nil {
				c.Engines[model], c.Manifests[model] = st.Plan, st.Manifest
				break
			}
			errs = append(errs, st.Err)
		}
		if _, ok := c.Engines[model]; ok {
			continue
		}
		if len(errs) == 0 {
			problems = append(problems, fmt.Sprintf("no %s engine in %s", model,
				filepath.Clean(env.Engines)))
		} else {
			problems = append(problems, errors.Join(errs...).Error())
		}
	}
	if len(problems) > 0 {
		return Choice{}, strings.Join(problems, "; ")
	}
	for _, model := range env.Optional {
		for _, st := range found {
			if st.Err == nil && st.Manifest != nil && st.Manifest.Model == model {
				c.Engines[model], c.Manifests[model] = st.Plan, st.Manifest
				break
			}
		}
	}
	if _, ok := c.Engines["sam-encoder"]; !ok {
		return c, "" // no SAM encoder to size (localisation only)
	}
	c.EncoderBatch = EncoderBatch(dev.MemoryFree, EncoderFixedBytes, EncoderBytesPerImage,
		HeadroomBytes, 32)
	if c.EncoderBatch == 0 && slices.Contains(env.Models, "sam-encoder") {
		return Choice{}, fmt.Sprintf("%s has %d MiB free, too little for the SAM encoder",
			dev.Name, dev.MemoryFree>>20)
	}
	return c, ""
}
