// Package gpu chooses and guards the GPU backend: it decides whether a run uses TensorRT
// engines with the CUDA kernels or falls back to the CPU backend (Select), sizes the SAM
// encoder batch from free device memory read through NVML (EncoderBatch, NVML), and runs GPU
// work in a supervised child process so that a CUDA or TensorRT fault costs one retry, not a
// batch of many volumes (Supervisor, ServeWorker).
//
// The package is pure Go: it talks to the native parts through small interfaces (Prober for
// the GPUs, the trt package's build and engine checks) so that the decisions are tested with
// fakes on machines without a GPU. github.com/NVIDIA/go-nvml loads libnvidia-ml at run time;
// without the driver, NVML.Probe returns an error wrapping ErrNoGPU.
//
// Isolation: the supervisor starts the same binary in a hidden worker mode, talking
// length-prefixed JSON over the child's stdin and stdout. When the child dies mid-job (a
// segfault in a driver, an abort in TensorRT, a sticky CUDA error that poisons the context),
// the supervisor starts a new child and retries the job with half the batch; when the child
// reports running out of device memory, it retries in the same child with half the batch.
// Each job's attempts are reported.
//
// The device pipeline (pipeline.go): a Scheduler moves a batch of queries through Stages on
// two lanes, each a stream with its own buffers. A lane reads its query into pinned memory
// and enqueues the volume's one copy to the device, then waits for its turn to compute
// (turns pass in job order when the previous job's stream has drained); so the copy of
// volume k+1 overlaps the compute of volume k, and stage workspace is never shared by two
// jobs at once. Only the boxes and the label map come back. A job either gives its boxes or
// a template set, with which DeviceLocaliser localises the query on the device: the volume
// is reoriented, resampled and normalised there, crops are cut into the MedLAM engine's
// input, and the similarity search runs on the engine's features against template kernels
// uploaded once; it drives localize.LocateWith through device Steps, so the arithmetic
// between the steps is the CPU path's. The scheduler and the segmentation plan are pure Go,
// tested with fake streams; their device implementations (CUDA, DeviceStages,
// DeviceLocaliser, DevicePipeline, TRTMemory for trt.Model) are built with the `cuda` tag
// and run TensorRT engines in a `cuda,tensorrt` build. PipelineWorker serves the pipeline in
// the supervised worker process, opened for a Work: segmentation (SAM engines, and MedLAM
// when present) or localisation only (MedLAM engines; jobs without a mask).
package gpu
