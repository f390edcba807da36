package gpu

import (
	"fmt"
	"slices"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// ModelOpener opens the model whose ONNX export is onnxPath (with its manifest man, read
// and checked by the caller) on some backend; engine.Opener has the same shape.
type ModelOpener func(onnxPath string, man *backend.Manifest) (backend.Model, error)

// LocalizeModels are the engines the MedLAM localisation needs on the GPU backend;
// LocalizeOptional those it uses when present (the encoder-only variant of the coarse
// step).
var (
	LocalizeModels   = []string{"medlam"}
	LocalizeOptional = []string{"medlam-encoder"}
)

// SegmentModels are the engines the device pipeline needs to segment (manifest "model"
// fields).
var SegmentModels = []string{"sam-encoder", "sam-decoder"}

// Work is what a device pipeline (and the worker process serving it) is opened for, which
// decides the engines it must have.
type Work string

const (
	// WorkSegment: SAM segmentation, localising too when a MedLAM engine is there (jobs
	// given a template set). The SAM engines are required.
	WorkSegment Work = "segment"
	// WorkLocalise: MedLAM localisation only (jobs with a template set and no mask). The
	// MedLAM engine is required; SAM is neither needed nor opened.
	WorkLocalise Work = "localise"
	// WorkSelect: no pipeline; the worker answers which backend it can run with the
	// engines it was given (ServeSelect), so that a program built without CUDA and
	// TensorRT can drive one that has them (SelectInWorker). It requires the MedLAM engine
	// and looks for the encoder-only MedLAM and the SAM engines too.
	WorkSelect Work = "select"
)

// ParseWork reads a Work ("" is WorkSegment; "localize" is WorkLocalise too).
func ParseWork(s string) (Work, error) {
	switch w := Work(strings.ToLower(s)); w {
	case "", WorkSegment:
		return WorkSegment, nil
	case WorkLocalise, "localize":
		return WorkLocalise, nil
	case WorkSelect:
		return WorkSelect, nil
	}
	return "", fmt.Errorf("gpu: work %q: want %s, %s or %s", s, WorkSegment, WorkLocalise,
		WorkSelect)
}

// Models returns the engines w requires and those it uses when present.
func (w Work) Models() (required, optional []string) {
	switch w {
	case WorkLocalise:
		return slices.Clone(LocalizeModels), slices.Clone(LocalizeOptional)
	case WorkSelect:
		return slices.Clone(LocalizeModels), slices.Concat(LocalizeOptional, SegmentModels)
	}
	return slices.Clone(SegmentModels), slices.Concat(LocalizeModels, LocalizeOptional)
}

// OpenEngineModels returns an opener of the engines of a TensorRT Choice as
// backend.Models (trt.Model: host tensors in and out, one stream per model) on the
// Choice's device, each engine checked against its ONNX export, and the function that
// releases the device once every model is closed. The opener refuses a model that has no
// engine in c.Engines. Without the `cuda` build tag it returns an error saying so.
//
// TODO(#6): these models run in the calling process, outside the supervised worker, so a
// TensorRT fault ends the run. The command line uses them only for `segment
// --gpu-localize=false`, and the engine package when no Options.Worker is given; otherwise
// both run the engines in the worker (DeviceStages).
func OpenEngineModels(c Choice) (ModelOpener, func() error, error) {
	return openEngineModels(c)
}
