package backend

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// ContractVersion is the model-contract version this build understands. Exporters write it
// into every manifest; the runtime refuses any other.
const ContractVersion = 1

// Manifest is the JSON file that sits beside every model file (model.onnx ->
// model.onnx.json, or an engine plan -> plan.json). It states the contract the file
// implements so that the runtime can refuse a mismatch before running anything.
type Manifest struct {
	// Contract is ContractVersion at export time.
	Contract int `json:"contract"`
	// Model names the network family and part: "medlam", "medlam-encoder", "sam-encoder",
	// "sam-decoder".
	Model string `json:"model"`
	// File is the model file's base name; SHA256 its hex digest.
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	// Inputs and Outputs list the named tensors; dimension -1 is the dynamic batch.
	Inputs  []TensorSpec `json:"inputs"`
	Outputs []TensorSpec `json:"outputs"`
	// SpacingMM is the voxel spacing the network expects (MedLAM: 3 mm), z, y, x order.
	SpacingMM []float64 `json:"spacing_mm,omitempty"`
	// PatchSize is the network's input patch, z, y, x (MedLAM) or H, W (SAM).
	PatchSize []int `json:"patch_size,omitempty"`
	// Normalisation names the intensity transform the network was trained with, e.g.
	// "medlam-piecewise-hu" or "sam-window-500-1000".
	Normalisation string `json:"normalisation,omitempty"`
	// Source says where the weights came from: a checkpoint file and its digest, or
	// "random seed N" for test models.
	Source string `json:"source"`
	// Config carries the architecture's hyper-parameters (widths, depths) as exported.
	Config map[string]any `json:"config,omitempty"`
}

// TensorSpec is one tensor of a Manifest.
type TensorSpec struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
	Type  string  `json:"type"`
}

// ManifestPath returns the manifest path for a model file: the file name plus ".json".
func ManifestPath(modelPath string) string { return modelPath + ".json" }

// LoadManifest reads and validates the manifest of modelPath and checks the model file's
// digest against it.
func LoadManifest(modelPath string) (*Manifest, error) {
	mp := ManifestPath(modelPath)
	b, err := os.ReadFile(mp)
	if err != nil {
		return nil, fmt.Errorf("backend: manifest for %s: %w", modelPath, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("backend: %s: %w", mp, err)
	}
	if m.Contract != ContractVersion {
		return nil, fmt.Errorf("backend: %s: contract %d, this build understands %d; re-export the model",
			mp, m.Contract, ContractVersion)
	}
	if m.File != filepath.Base(modelPath) {
		return nil, fmt.Errorf("backend: %s describes %q, not %q", mp, m.File, filepath.Base(modelPath))
	}
	sum, err := fileSHA256(modelPath)
	if err != nil {
		return nil, fmt.Errorf("backend: %w", err)
	}
	if sum != m.SHA256 {
		return nil, fmt.Errorf("backend: %s: sha256 %s does not match its manifest %s (%s); re-export",
			modelPath, sum[:12], m.SHA256[:min(12, len(m.SHA256))], mp)
	}
	return &m, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Check compares a loaded model's tensors with the manifest: the same names, shapes (-1 only
// where the manifest has -1) and types, in any order. name is used in the error.
func (m *Manifest) Check(name string, model Model) error {
	if err := checkSpecs(name, "input", m.Inputs, model.Inputs()); err != nil {
		return err
	}
	return checkSpecs(name, "output", m.Outputs, model.Outputs())
}

func checkSpecs(name, kind string, want []TensorSpec, got []TensorInfo) error {
	if len(want) != len(got) {
		return fmt.Errorf("%w: %s has %d %ss, its manifest %d", ErrShape, name, len(got), kind, len(want))
	}
	for _, w := range want {
		i := slices.IndexFunc(got, func(t TensorInfo) bool { return t.Name == w.Name })
		if i < 0 {
			return fmt.Errorf("%w: %s has no %s %q named in its manifest", ErrShape, name, kind, w.Name)
		}
		g := got[i]
		if g.Type.String() != w.Type {
			return fmt.Errorf("%w: %s %s %q is %s, manifest says %s", ErrShape, name, kind, w.Name, g.Type, w.Type)
		}
		if !slices.Equal(g.Shape, w.Shape) {
			return fmt.Errorf("%w: %s %s %q has shape %v, manifest says %v", ErrShape, name, kind, w.Name, g.Shape, w.Shape)
		}
	}
	return nil
}

// Spec returns the manifest's tensor named name among inputs and outputs.
func (m *Manifest) Spec(name string) (TensorSpec, bool) {
	for _, s := range append(slices.Clone(m.Inputs), m.Outputs...) {
		if s.Name == name {
			return s, true
		}
	}
	return TensorSpec{}, false
}
