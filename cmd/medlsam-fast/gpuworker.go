package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
)

func init() {
	register(command{
		name:    gpu.WorkerArg,
		summary: "internal: serve GPU pipeline batches on stdin/stdout for a supervisor",
		run:     runGPUWorker,
		hidden:  true,
	})
}

// workerStdin is where the worker reads requests; tests replace it.
var workerStdin io.Reader = os.Stdin

// runGPUWorker is the child side of gpu.Supervisor: it reads length-prefixed JSON requests
// (gpu.Batch jobs) from stdin and writes responses to stdout until stdin closes. Logs go to
// stderr, which the supervisor passes through. The pipeline opens on the first request, so
// a worker that cannot open it still answers every request with the reason. With --work
// select it writes one gpu.SelectAnswer instead and exits.
func runGPUWorker(args []string, stdout io.Writer) error {
	fs := newFlags(gpu.WorkerArg, "", os.Stderr)
	engines := fs.String("engines", "engines", "directory of TensorRT engine plans")
	workFlag := fs.String("work", string(gpu.WorkSegment), "what the pipeline is opened "+
		"for: segment (SAM engines required) or localise (the MedLAM engine required); "+
		"select answers once which backend runs here, as JSON, and exits")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: %s takes no arguments", errUsage, gpu.WorkerArg)
	}
	work, err := gpu.ParseWork(*workFlag)
	if err != nil {
		return fmt.Errorf("%w: --work: %v", errUsage, err)
	}
	if work == gpu.WorkSelect { // one answer, no pipeline
		return gpu.ServeSelect(stdout, gpuEnv(*engines, nil))
	}
	w := &gpu.PipelineWorker{Open: workerOpener(*engines, work, slog.Default())}
	err = gpu.ServeWorker(context.Background(), workerStdin, stdout, w.Handle)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// workerOpener opens the device pipeline; tests replace it.
var workerOpener = gpu.DevicePipeline
