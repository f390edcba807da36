package gpu

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/medlsam-fast/medlsam-fast/trt"
)

// WorkerArg is the hidden subcommand that runs ServeWorker (medlsam-fast gpu-worker).
const WorkerArg = "gpu-worker"

// Handler runs one job in the worker with the given encoder batch and returns its result.
// An error wrapping trt.ErrOutOfMemory tells the supervisor to retry with a smaller batch.
type Handler func(ctx context.Context, job json.RawMessage, batch int) (json.RawMessage, error)

// ServeWorker is the child's side: it reads Requests from r, runs h on each, one at a time,
// and writes a Response to w, until r ends (the supervisor closed the pipe) or ctx is done.
// A crash inside h ends the process, which is the point: the supervisor sees the pipe close
// and recovers.
func ServeWorker(ctx context.Context, r io.Reader, w io.Writer, h Handler) error {
	for {
		var req Request
		if err := readFrame(r, &req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		resp := Response{ID: req.ID}
		res, err := h(ctx, req.Job, req.Batch)
		if err != nil {
			resp.Err = err.Error()
			resp.OOM = errors.Is(err, trt.ErrOutOfMemory)
		} else {
			resp.Result = res
		}
		if err := writeFrame(w, resp); err != nil {
			return err
		}
	}
}
