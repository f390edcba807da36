package gpu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/medlsam-fast/medlsam-fast/trt"
)

// Batch is what the supervisor sends the worker: queries that go through the device
// pipeline together, so that their copies and computes overlap.
type Batch struct {
	Jobs []Job `json:"jobs"`
}

// PipelineOpener opens the device pipeline with a batch (the SAM encoder's, or the cap on
// MedLAM patches per call of a localisation pipeline: DevicePipeline); release frees what
// it opened (streams are the Scheduler's; engines, workspace and device are release's).
type PipelineOpener func(encoderBatch int) (s *Scheduler, release func() error, err error)

// PipelineWorker is the worker side of the supervised GPU pipeline: Handle (a Handler for
// ServeWorker) runs each Batch through the pipeline Open returns, kept open between
// requests and reopened when the supervisor changes the encoder batch, and answers with
// the []Result. When a job ran out of device memory the request fails with an error
// wrapping trt.ErrOutOfMemory, so that the supervisor retries it with half the batch.
// Handle calls are serialised; Close releases the pipeline.
type PipelineWorker struct {
	Open PipelineOpener

	mu      sync.Mutex
	batch   int
	sched   *Scheduler
	release func() error
}

// Handle implements Handler.
func (w *PipelineWorker) Handle(ctx context.Context, job json.RawMessage,
	batch int) (json.RawMessage, error) {
	var b Batch
	if err := json.Unmarshal(job, &b); err != nil {
		return nil, fmt.Errorf("gpu: worker request: %w", err)
	}
	if len(b.Jobs) == 0 {
		return nil, errors.New("gpu: worker request has no jobs")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sched == nil || w.batch != batch {
		if err := w.closeLocked(); err != nil {
			return nil, err
		}
		s, rel, err := w.Open(batch)
		if err != nil {
			return nil, fmt.Errorf("gpu: open pipeline (batch %d): %w", batch, err)
		}
		w.sched, w.release, w.batch = s, rel, batch
	}
	res, err := w.sched.Run(ctx, b.Jobs)
	if err != nil {
		return nil, err
	}
	var oom []string
	for _, r := range res {
		if r.OOM {
			oom = append(oom, r.Err)
		}
	}
	if len(oom) > 0 {
		return nil, fmt.Errorf("%w: %s", trt.ErrOutOfMemory, strings.Join(oom, "; "))
	}
	return json.Marshal(res)
}

// Close releases the pipeline. It is idempotent.
func (w *PipelineWorker) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closeLocked()
}

func (w *PipelineWorker) closeLocked() error {
	rel := w.release
	w.sched, w.release = nil, nil
	if rel == nil {
		return nil
	}
	return rel()
}

// RunJobs sends jobs to the worker as one Batch (Do) and returns their Results, one per job
// in order, and the attempts it took. A job's own failure is its Result's Err; the error is
// for the batch: the worker failed, or answered nonsense.
func (s *Supervisor) RunJobs(ctx context.Context, jobs []Job) ([]Result, []Attempt, error) {
	out, err := s.Do(ctx, Batch{Jobs: jobs})
	if err != nil {
		return nil, out.Attempts, err
	}
	var res []Result
	if err := json.Unmarshal(out.Result, &res); err != nil {
		return nil, out.Attempts, fmt.Errorf("gpu: worker answer: %w", err)
	}
	if len(res) != len(jobs) || len(out.Attempts) == 0 {
		return nil, out.Attempts, fmt.Errorf("gpu: worker answered %d results for %d jobs "+
			"after %d attempts", len(res), len(jobs), len(out.Attempts))
	}
	return res, out.Attempts, nil
}
