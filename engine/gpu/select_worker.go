package gpu

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"time"
)

// SelectVersion is the version of SelectAnswer this build writes and reads: a worker from
// another release may encode its Choice differently.
const SelectVersion = 1

// SelectAnswer is what a worker started for WorkSelect writes on its stdout: the Choice it
// made for its engines, or why the GPU backend cannot run there.
type SelectAnswer struct {
	Version int     `json:"version"`
	Choice  *Choice `json:"choice,omitempty"`
	Err     string  `json:"err,omitempty"`
}

// ServeSelect is the worker's side of WorkSelect: it checks env as Select does, for the
// models of WorkSelect (env.Models and env.Optional are replaced), and writes the
// SelectAnswer as JSON to w.
func ServeSelect(w io.Writer, env Env) error {
	env.Models, env.Optional = WorkSelect.Models()
	a := SelectAnswer{Version: SelectVersion}
	if c, why := tryGPU(env); why != "" {
		a.Err = why
	} else {
		a.Choice = &c
	}
	if err := json.NewEncoder(w).Encode(a); err != nil {
		return fmt.Errorf("gpu: select answer: %w", err)
	}
	return nil
}

// SelectInWorker is Select made by a worker process: cmd is a worker started for
// WorkSelect (ServeSelect), which checks the GPU, its own CUDA and TensorRT build and the
// engines it was given, so that the caller needs neither. A worker that does not start,
// fails, outlives ctx or answers nonsense is one more reason the GPU backend cannot run:
// ModeAuto falls back to the CPU, logging why, and ModeGPU returns an error wrapping
// ErrGPURequested. The worker's stderr, unless cmd sets it, is kept for that reason.
func SelectInWorker(ctx context.Context, mode Mode, cmd *exec.Cmd,
	log *slog.Logger) (Choice, error) {
	if mode == ModeCPU {
		return Choice{Backend: CPU, Reason: "--backend cpu requested"}, nil
	}
	c, why := askWorker(ctx, cmd)
	return decide(mode, c, why, log)
}

// askWorker runs cmd and reads its SelectAnswer: the Choice, or why there is none.
func askWorker(ctx context.Context, cmd *exec.Cmd) (Choice, string) {
	name := "gpu worker " + cmd.Path
	out := &capped{max: MaxFrame}
	cmd.Stdout = out
	var stderr *capped
	if cmd.Stderr == nil {
		stderr = &capped{max: 4 << 10, tail: true}
		cmd.Stderr = stderr
	}
	said := func() string {
		if stderr == nil {
			return ""
		}
		if s := strings.TrimSpace(string(stderr.b)); s != "" {
			return " (it said: " + s + ")"
		}
		return ""
	}
	if cmd.WaitDelay == 0 { // a child of the worker's may hold its pipes after a kill
		cmd.WaitDelay = 5 * time.Second
	}
	if err := cmd.Start(); err != nil {
		return Choice{}, fmt.Sprintf("%s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return Choice{}, fmt.Sprintf("%s: %v%s", name, err, said())
		}
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return Choice{}, fmt.Sprintf("%s gave no backend choice: %v", name, ctx.Err())
	}
	var a SelectAnswer
	if out.over {
		return Choice{}, fmt.Sprintf("%s wrote more than %d bytes for its backend choice",
			name, MaxFrame)
	}
	if err := json.Unmarshal(out.b, &a); err != nil {
		return Choice{}, fmt.Sprintf("%s answered no backend choice: %v%s", name, err,
			said())
	}
	switch {
	case a.Version != SelectVersion:
		return Choice{}, fmt.Sprintf("%s answered in protocol version %d, this program "+
			"reads %d: use a worker built from the same release", name, a.Version,
			SelectVersion)
	case a.Err != "":
		return Choice{}, fmt.Sprintf("%s: %s", name, a.Err)
	case a.Choice == nil || a.Choice.Backend != TensorRT || a.Choice.Engines == nil:
		return Choice{}, fmt.Sprintf("%s answered no TensorRT choice", name)
	}
	return *a.Choice, ""
}

// capped keeps the first max bytes written to it (with tail, the last max), and whether
// more came; it never fails a write, so the writer is never stalled.
type capped struct {
	max  int
	tail bool
	b    []byte
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	n := len(p)
	switch {
	case c.tail:
		c.b = append(c.b, p...)
		if len(c.b) > c.max {
			c.b, c.over = c.b[len(c.b)-c.max:], true
		}
	case len(c.b)+len(p) > c.max:
		c.b, c.over = append(c.b, p[:c.max-len(c.b)]...), true
	default:
		c.b = append(c.b, p...)
	}
	return n, nil
}
