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
package gpu
