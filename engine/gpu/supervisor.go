package gpu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"
)

// ErrWorkerFailed reports a job the supervisor gave up on: the worker kept dying or running
// out of memory down to the smallest batch. Other jobs can still run.
var ErrWorkerFailed = errors.New("gpu: worker failed")

// ErrJob reports an error the worker returned for a job (bad input, say); it is not retried.
var ErrJob = errors.New("gpu: job failed")

// Attempt is one try of a job.
type Attempt struct {
	Batch   int    `json:"batch"`
	Err     string `json:"err,omitempty"`
	Crashed bool   `json:"crashed,omitempty"` // the worker died; a new one was started
}

// Outcome is a job's result with every attempt it took.
type Outcome struct {
	Result   json.RawMessage
	Attempts []Attempt
}

// Supervisor runs jobs in a child worker process (Command, normally this binary with
// WorkerArg) and keeps one alive. A job whose worker dies is retried in a new worker with half
// the batch; one that runs out of device memory is retried in the same worker with half the
// batch; below MinBatch the job fails with ErrWorkerFailed and the next job starts afresh.
// The smaller batch sticks for later jobs (the memory was not there).
//
// Do is safe for concurrent use; jobs run one at a time. Close stops the worker.
type Supervisor struct {
	// Command returns the command that starts a worker; its stdin and stdout are set by
	// the supervisor, its stderr goes to this process's stderr unless set.
	Command func() *exec.Cmd
	// Batch is the first encoder batch to try; MinBatch the smallest (default 1).
	Batch    int
	MinBatch int
	// Log receives restarts and retries (slog.Default() when nil).
	Log *slog.Logger
	// StopTimeout is how long Close waits for the worker to exit before killing it.
	StopTimeout time.Duration

	mu       sync.Mutex
	w        *worker
	nextID   uint64
	restarts int
}

type worker struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  io.ReadCloser
	done chan struct{} // closed when the process has been waited for
	err  error         // Wait's error, valid after done
}

// WorkerCommand returns a Command function that starts this executable in worker mode
// (the hidden `medlsam-fast gpu-worker` subcommand, serving a PipelineWorker).
func WorkerCommand(extraArgs ...string) func() *exec.Cmd {
	return func() *exec.Cmd {
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		return exec.Command(exe, append([]string{WorkerArg}, extraArgs...)...)
	}
}

func (s *Supervisor) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Restarts returns how many workers were started after the first.
func (s *Supervisor) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// errStart marks a worker that could not be started.
var errStart = errors.New("gpu: start worker")

// start launches a worker.
func (s *Supervisor) start() (*worker, error) {
	if s.Command == nil {
		return nil, errors.New("gpu: Supervisor.Command is nil")
	}
	cmd := s.Command()
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("gpu: worker stdin: %w", err)
	}
	// An os.Pipe rather than StdoutPipe: Wait runs concurrently with the reads below, and
	// Wait closes StdoutPipe's read end under them; with our own pipe, a dead worker reads
	// as end of stream.
	out, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("gpu: worker stdout: %w", err)
	}
	cmd.Stdout = pw
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if cmd.WaitDelay == 0 { // a child of the worker's may hold its pipes after a kill
		cmd.WaitDelay = 5 * time.Second
	}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("%w %s: %w", errStart, cmd.Path, err)
	}
	w := &worker{cmd: cmd, in: in, out: out, done: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		close(w.done)
	}()
	return w, nil
}

// kill ends a worker, waits for it and closes our end of its output.
func (w *worker) kill() {
	_ = w.in.Close()
	_ = w.cmd.Process.Kill()
	<-w.done
	_ = w.out.Close()
}

// exitText describes how a dead worker ended.
func (w *worker) exitText() string {
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		return "worker closed its output but did not exit"
	}
	if w.err == nil {
		return "worker exited with status 0 mid-job"
	}
	return "worker died: " + w.err.Error()
}

// Do runs job (marshalled to JSON) in the worker and returns its result and attempts.
func (s *Supervisor) Do(ctx context.Context, job any) (Outcome, error) {
	raw, err := json.Marshal(job)
	if err != nil {
		return Outcome{}, fmt.Errorf("gpu: encode job: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	minBatch := max(s.MinBatch, 1)
	if s.Batch < minBatch {
		s.Batch = minBatch
	}
	var out Outcome
	for {
		a := Attempt{Batch: s.Batch}
		resp, crashed, err := s.roundTrip(ctx, raw, s.Batch)
		switch {
		case err != nil && ctx.Err() != nil:
			return out, err
		case errors.Is(err, errStart): // no batch would help
			a.Err = err.Error()
			out.Attempts = append(out.Attempts, a)
			return out, fmt.Errorf("%w: %w", ErrWorkerFailed, err)
		case err != nil:
			a.Err, a.Crashed = err.Error(), crashed
		case resp.Err != "" && !resp.OOM:
			a.Err = resp.Err
			out.Attempts = append(out.Attempts, a)
			return out, fmt.Errorf("%w: %s", ErrJob, resp.Err)
		case resp.Err != "":
			a.Err = resp.Err
		default:
			out.Attempts = append(out.Attempts, a)
			out.Result = resp.Result
			return out, nil
		}
		out.Attempts = append(out.Attempts, a)
		if s.Batch <= minBatch {
			return out, fmt.Errorf("%w: %s at the smallest batch (%d) after %d attempts",
				ErrWorkerFailed, a.Err, s.Batch, len(out.Attempts))
		}
		s.Batch = max(s.Batch/2, minBatch)
		s.log().Warn("gpu job retried with a smaller batch", "batch", s.Batch,
			"crashed", a.Crashed, "err", a.Err)
	}
}

// roundTrip sends one request to the worker (starting one if needed) and waits for the
// answer. crashed reports a worker that died; it has then been reaped and dropped.
func (s *Supervisor) roundTrip(ctx context.Context, job json.RawMessage,
	batch int) (Response, bool, error) {
	if err := ctx.Err(); err != nil { // no worker started for a job already cancelled
		return Response{}, false, fmt.Errorf("gpu: job cancelled: %w", err)
	}
	if s.w == nil {
		w, err := s.start()
		if err != nil {
			return Response{}, false, err
		}
		if s.nextID > 0 {
			s.restarts++
			s.log().Warn("gpu worker restarted", "restarts", s.restarts)
		}
		s.w = w
	}
	w := s.w
	s.nextID++
	id := s.nextID
	type result struct {
		resp Response
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		if err := writeFrame(w.in, Request{ID: id, Batch: batch, Job: job}); err != nil {
			ch <- result{err: err}
			return
		}
		var resp Response
		err := readFrame(w.out, &resp)
		if err == nil && resp.ID != id {
			err = fmt.Errorf("gpu: worker answered request %d, expected %d", resp.ID, id)
		}
		ch <- result{resp, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			text := w.exitText()
			w.kill()
			s.w = nil
			return Response{}, true, fmt.Errorf("%s (%v)", text, r.err)
		}
		return r.resp, false, nil
	case <-ctx.Done():
		w.kill()
		s.w = nil
		<-ch
		return Response{}, false, fmt.Errorf("gpu: job cancelled: %w", ctx.Err())
	}
}

// Close stops the worker: it closes its input so that it exits, and kills it after
// StopTimeout (default 10 s). Close is idempotent.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.w
	s.w = nil
	if w == nil {
		return nil
	}
	_ = w.in.Close()
	timeout := s.StopTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	select {
	case <-w.done:
		_ = w.out.Close()
		return w.err
	case <-time.After(timeout):
		w.kill()
		return fmt.Errorf("gpu: worker did not exit within %v after its input closed; killed",
			timeout)
	}
}
