// Package engine is the Go API of medlsam-fast for integrators: it opens the MedLAM and
// SAM (or MedSAM) models of a directory on a backend and runs the whole method with them,
// from NIfTI files or in-memory volumes to organ boxes (package localize does the work)
// and from boxes to a label map written on the query's geometry (package segment).
//
//	e, err := engine.Open("models/full", engine.Options{})
//	...
//	defer e.Close()
//	ts, err := e.BuildTemplates(ctx, []engine.TemplateInput{{ImagePath: "ct.nii.gz",
//		LabelsPath: "labels.nii.gz"}}, []localize.Organ{{Label: 1, Name: "spleen"}})
//	loc, err := e.Localize(ctx, ts, "query.nii.gz")          // boxes only
//	res, err := e.Segment(ctx, ts, "query.nii.gz",           // boxes, then masks
//		engine.SegmentOptions{Mask: "query_mask.nii.gz"})
//
// What it offers:
//
//   - Open finds NAME.onnx (MedLAM; Options.ModelName) and NAME-encoder.onnx, checks each
//     against its manifest (kind, digest) and opens it. The SAM models
//     (NAME-encoder.onnx with NAME-decoder.onnx or NAME-decoder-public.onnx;
//     Options.SAMName, default "sam" or the directory's only SAM model) are opened
//     lazily, at the first Segment call, or by OpenSAM for an early error: an Engine used
//     for localisation only works in a directory without SAM.
//   - Templates: BuildTemplates (images and label maps), BuildTemplatesFromPoints (a
//     points file), LoadTemplates (a saved set, refused when another model computed it);
//     ReadOrgans reads a label-name JSON file.
//   - Localisation: Localize (a file) and LocalizeVolume (a volume in memory).
//   - Segmentation: Segment (a file), SegmentVolume (a volume and its header) and
//     SegmentBoxes (boxes found earlier, no MedLAM) return a SegmentResult: the label map,
//     the boxes, the segmenter's report (encoder and decoder call counts, time per SAM
//     stage) and the time per stage of the call; with SegmentOptions.Mask the label map is
//     written atomically with the query's header geometry.
//
// Ownership: whoever calls Open must call Close, which closes every model (MedLAM and SAM)
// and releases the device (with Options.Worker it also ends a worker job in flight, whose
// call fails with ErrClosed, and stops the worker); it is idempotent, and the other
// methods then return ErrClosed.
// Results (template sets, label maps) belong to the caller and outlive the Engine.
//
// Concurrency: the methods may be called from several goroutines. Their network work
// (localisation, opening SAM, segmentation) runs one call at a time under the Engine's
// lock; reading a query and writing its masks run outside it (inside it when the GPU
// worker segments, below). Open several Engines to run networks in parallel (each holds
// its own models).
//
// Backends (Options.Backend): "cpu" (the default) runs every model on ONNX Runtime in this
// process; "auto" runs MedLAM on TensorRT engines (Options.Engines) when engine/gpu finds a
// GPU, a TensorRT build and matching engines, else on the CPU, saying why in the log; "gpu"
// insists on TensorRT. With Options.Worker (a WorkerCommand, such as WorkerBinary of a
// cuda,tensorrt medlsam-fast) the worker process makes that check, so the calling program
// needs no CUDA or TensorRT (nor their build tags), and queries run in the worker on the device pipeline of engine/gpu, as the
// command line runs them: each volume copied to the device once, localised there and, when
// the engines include SAM's (built from the models directory's SAM export, when it holds
// one) and an encoder batch fits, segmented there, with only boxes and the label map coming
// back; a CUDA or TensorRT fault restarts the worker and retries with half the batch.
// Template sets are built here on the CPU and must not change once used. When the worker
// segments, a SegmentResult's Segmentation has the organs' voxel counts and the encoder
// batch but no call counts or per-stage SAM times, and Times.Segment is the worker's whole
// job. Without Options.Worker the engines (SAM's too, when there) run in the calling
// process with host tensors in and out of each call, unisolated (TODO(#6)). Options.Open
// plugs in any other backend (and the tests' fakes) for both networks. The Kernels of
// Options.Localize and Options.Segment choose CPU or GPU kernels for the steps around the
// networks.
//
// The command-line tool (cmd/medlsam-fast localize and segment) is a layer over the same
// packages. Example_segment shows the whole flow on the bundled phantom.
package engine
