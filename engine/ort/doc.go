// Package ort is the CPU inference backend: it runs ONNX models through ONNX Runtime
// (libonnxruntime.so.1, version 1.30.0, loaded at run time by github.com/yalue/onnxruntime_go)
// and implements backend.Model.
//
// The shared library is not linked in: the package builds without it, and Open finds it at
// run time (see FindLibrary). Where it is missing, Open fails with an error wrapping
// backend.ErrUnavailable that says how to install it (`bash build/install-onnxruntime.sh`).
// ONNX Runtime's environment is process-wide; the package initialises it once, on the first
// successful Open, and keeps it for the life of the process.
//
// Every model file is opened together with its manifest (backend.LoadManifest): the digest,
// tensor names, shapes and types read from the ONNX file must match it, or Open refuses the
// model before any inference runs.
//
// Memory: Run hands the caller's input slices and freshly allocated output slices to ONNX
// Runtime without copying them. onnxruntime_go wraps such a slice in a native tensor that
// keeps its address after the wrapping call returns, which the cgo pointer rules allow only
// for pinned memory; Run therefore pins each slice with runtime.Pinner for exactly the span
// of the call and releases every native tensor before unpinning. No native object holds Go
// memory once Run returns.
//
// Outputs whose size only the run can tell (a dynamic dimension other than the batch, or a
// dynamic batch that no input sets, as in the public SAM decoder whose masks follow the value
// of orig_im_size) cannot be preallocated: for such a model, and only for it, Run lets ONNX
// Runtime allocate every output, copies the requested ones out and frees the rest.
package ort
