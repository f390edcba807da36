package gpu

import "github.com/medlsam-fast/medlsam-fast/engine/backend"

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

// OpenEngineModels returns an opener of the engines of a TensorRT Choice as
// backend.Models (trt.Model: host tensors in and out, one stream per model) on the
// Choice's device, each engine checked against its ONNX export, and the function that
// releases the device once every model is closed. The opener refuses a model that has no
// engine in c.Engines. Without the `cuda` build tag it returns an error saying so.
//
// TODO(#6): these models run in the calling process, outside the supervised worker, so a
// TensorRT fault during `localize` (or `segment --gpu-localize=false`) ends the run;
// `segment` localises in the worker (DeviceStages.Localise) when it has a MedLAM engine.
func OpenEngineModels(c Choice) (ModelOpener, func() error, error) {
	return openEngineModels(c)
}
