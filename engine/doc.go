// Package engine is the Go API of medlsam-fast for integrators: it opens the MedLAM models
// of a directory on a backend (ONNX Runtime on the CPU; other backends plug in through
// Options.Open and the backend.Model interface) and runs few-shot localisation with them,
// from NIfTI files or in-memory volumes to organ boxes (package localize does the work).
//
//	e, err := engine.Open("models/full", engine.Options{})
//	...
//	defer e.Close()
//	ts, err := e.BuildTemplates(ctx, []engine.TemplateInput{{ImagePath: "ct.nii.gz",
//		LabelsPath: "labels.nii.gz"}}, []localize.Organ{{Label: 1, Name: "spleen"}})
//	res, err := e.Localize(ctx, ts, "query.nii.gz")
//
// The command-line tool (cmd/medlsam-fast localize) is a thin layer over this package.
package engine
