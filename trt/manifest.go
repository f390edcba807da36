package trt

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// maxManifestBytes bounds the manifest read; real ones are a few kilobytes.
const maxManifestBytes = 1 << 20

// EngineManifest is the JSON beside an engine plan (plan + ".json"), written by
// build/engines/build.sh. It extends the ONNX manifest (the tensors, normalisation and
// source are copied from the ONNX file's manifest; File and SHA256 describe the plan) with
// what an engine depends on.
type EngineManifest struct {
	backend.Manifest
	// GPUName is the device name as NVML and nvidia-smi report it, e.g. "NVIDIA H200".
	GPUName string `json:"gpu_name"`
	// ComputeCapability is "major.minor", e.g. "9.0".
	ComputeCapability string `json:"compute_capability"`
	// TensorRTVersion is the version trtexec reported, major.minor.patch.
	TensorRTVersion string `json:"tensorrt_version"`
	// ONNXFile and ONNXSHA256 name the ONNX export the engine was built from.
	ONNXFile   string `json:"onnx_file"`
	ONNXSHA256 string `json:"onnx_sha256"`
	// Precision says how the ONNX was typed before the build, e.g. "fp16-mixed" or "fp32".
	Precision string `json:"precision"`
	// Profiles lists the optimisation profiles, in engine order.
	Profiles []ProfileSpec `json:"profiles"`
	// Rebuild is the command that rebuilds this engine, quoted in mismatch errors.
	Rebuild string `json:"rebuild"`
}

// ProfileSpec is one optimisation profile of a manifest: min, opt and max shape per input.
type ProfileSpec struct {
	Shapes map[string]ShapeRange `json:"shapes"`
}

// ShapeRange is the min, opt and max shape of one input in one profile.
type ShapeRange struct {
	Min []int64 `json:"min"`
	Opt []int64 `json:"opt"`
	Max []int64 `json:"max"`
}

// Machine is what an engine must match: the GPU and the TensorRT library of this process.
type Machine struct {
	GPUName           string
	ComputeCapability string
	TensorRT          Version
}

// LoadEngineManifest reads planPath + ".json" and checks it is complete and describes the
// plan (its base name). It does not hash the plan; Open does, once, as it reads it.
func LoadEngineManifest(planPath string) (*EngineManifest, error) {
	mp := backend.ManifestPath(planPath)
	f, err := os.Open(mp)
	if err != nil {
		return nil, fmt.Errorf("trt: manifest for engine %s: %w (rebuild the engine with "+
			"build/engines/build.sh, which writes it)", planPath, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("trt: %s: %w", mp, err)
	}
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("trt: %s: larger than %d bytes; not an engine manifest",
			mp, maxManifestBytes)
	}
	var m EngineManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("trt: %s: %w", mp, err)
	}
	if err := m.validate(mp, filepath.Base(planPath)); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *EngineManifest) validate(mp, planName string) error {
	if m.Contract != backend.ContractVersion {
		return fmt.Errorf("trt: %s: field contract is %d, this build understands %d; "+
			"re-export the model and rebuild the engine", mp, m.Contract, backend.ContractVersion)
	}
	if m.File != planName {
		return fmt.Errorf("trt: %s: field file is %q, not %q", mp, m.File, planName)
	}
	required := []struct{ field, value string }{
		{"model", m.Model}, {"sha256", m.SHA256}, {"gpu_name", m.GPUName},
		{"compute_capability", m.ComputeCapability}, {"tensorrt_version", m.TensorRTVersion},
		{"onnx_file", m.ONNXFile}, {"onnx_sha256", m.ONNXSHA256},
	}
	for _, r := range required {
		if strings.TrimSpace(r.value) == "" {
			return fmt.Errorf("trt: %s: field %s is missing", mp, r.field)
		}
	}
	if _, err := ParseVersion(m.TensorRTVersion); err != nil {
		return fmt.Errorf("trt: %s: field tensorrt_version: %w", mp, err)
	}
	if len(m.Inputs) == 0 || len(m.Outputs) == 0 {
		return fmt.Errorf("trt: %s: fields inputs and outputs must list the tensors", mp)
	}
	if len(m.Profiles) == 0 {
		return fmt.Errorf("trt: %s: field profiles is empty", mp)
	}
	for i, p := range m.Profiles {
		for name, r := range p.Shapes {
			n := len(r.Min)
			ok := n > 0 && len(r.Opt) == n && len(r.Max) == n
			for d := 0; ok && d < n; d++ {
				ok = r.Min[d] >= 1 && r.Min[d] <= r.Opt[d] && r.Opt[d] <= r.Max[d]
			}
			if !ok {
				return fmt.Errorf("trt: %s: field profiles[%d].shapes[%q]: want min <= opt <= max, "+
					"all positive and of one rank, got %v %v %v", mp, i, name, r.Min, r.Opt, r.Max)
			}
		}
	}
	return nil
}

// rebuildHint says how to get an engine that matches.
func (m *EngineManifest) rebuildHint() string {
	cmd := m.Rebuild
	if cmd == "" {
		cmd = "bash build/engines/build.sh"
	}
	return fmt.Sprintf("rebuild it on this machine with `%s` (or point --engines at engines "+
		"built for this GPU and TensorRT)", cmd)
}

// CheckMachine refuses an engine built for another GPU (name or compute capability) or
// another TensorRT version than mach; TensorRT plans are specific to both. The error wraps
// ErrEngineMismatch and says how to rebuild.
func (m *EngineManifest) CheckMachine(mach Machine) error {
	var why []string
	if mach.GPUName != m.GPUName {
		why = append(why, fmt.Sprintf("GPU %q, this machine has %q", m.GPUName, mach.GPUName))
	}
	if mach.ComputeCapability != m.ComputeCapability {
		why = append(why, fmt.Sprintf("compute capability %s, this machine has %s",
			m.ComputeCapability, mach.ComputeCapability))
	}
	built, err := ParseVersion(m.TensorRTVersion)
	if err != nil {
		return err
	}
	if built != mach.TensorRT {
		why = append(why, fmt.Sprintf("TensorRT %s, this process has %s", built, mach.TensorRT))
	}
	if len(why) > 0 {
		return fmt.Errorf("%w: engine %s was built for %s; %s", ErrEngineMismatch, m.File,
			strings.Join(why, " and "), m.rebuildHint())
	}
	return nil
}

// CheckONNX refuses an engine that was not built from the ONNX file onnxPath: the digest the
// ONNX file's own manifest records (backend.LoadManifest, which also verifies the file) must
// be the engine manifest's onnx_sha256.
func (m *EngineManifest) CheckONNX(onnxPath string) error {
	om, err := backend.LoadManifest(onnxPath)
	if err != nil {
		return fmt.Errorf("trt: checking engine %s against %s: %w", m.File, onnxPath, err)
	}
	if om.SHA256 != m.ONNXSHA256 {
		return fmt.Errorf("%w: engine %s was built from an ONNX file with sha256 %s, but %s "+
			"has %s; %s", ErrEngineMismatch, m.File, short(m.ONNXSHA256), onnxPath,
			short(om.SHA256), m.rebuildHint())
	}
	if om.Model != m.Model {
		return fmt.Errorf("%w: engine %s is model %q, %s is %q", ErrEngineMismatch, m.File,
			m.Model, onnxPath, om.Model)
	}
	return nil
}

func short(sum string) string { return sum[:min(12, len(sum))] }

// readPlan reads the plan and checks its digest against the manifest.
func (m *EngineManifest) readPlan(planPath string) ([]byte, error) {
	plan, err := os.ReadFile(planPath)
	if err != nil {
		return nil, fmt.Errorf("trt: %w", err)
	}
	h := sha256.Sum256(plan)
	if sum := hex.EncodeToString(h[:]); sum != m.SHA256 {
		return nil, fmt.Errorf("trt: %s: sha256 %s does not match its manifest (%s); %s",
			planPath, short(sum), short(m.SHA256), m.rebuildHint())
	}
	return plan, nil
}

// EngineStatus is one engine found by ScanEngines and whether it can run here.
type EngineStatus struct {
	Plan     string
	Manifest *EngineManifest // nil when the manifest could not be read
	Err      error           // nil when the engine matches the machine
}

// ScanEngines lists the plans (*.plan, *.engine) in dir and checks each manifest against
// mach. It reads manifests only, never plans, so it is cheap and needs no GPU.
func ScanEngines(dir string, mach Machine) ([]EngineStatus, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("trt: engines directory: %w", err)
	}
	var out []EngineStatus
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".plan" && ext != ".engine") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		st := EngineStatus{Plan: p}
		st.Manifest, st.Err = LoadEngineManifest(p)
		if st.Err == nil {
			st.Err = st.Manifest.CheckMachine(mach)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b EngineStatus) int { return strings.Compare(a.Plan, b.Plan) })
	return out, nil
}

// errNoProfiles is returned for an engine without optimisation profiles.
var errNoProfiles = errors.New("trt: engine has no optimisation profile")
