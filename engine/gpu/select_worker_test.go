package gpu

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSelectInWorker: the worker's answer (ServeSelect, replayed from a file by sh) is the
// choice; a worker that does not start, fails, answers nonsense, stays silent or cannot
// run the GPU backend is a reason for ModeAuto to fall back to the CPU and for ModeGPU to
// fail, the reason naming the worker and what it said.
func TestSelectInWorker(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh:", err)
	}
	dir := t.TempDir()
	answer := func(name string, env Env) string {
		var b bytes.Buffer
		if err := ServeSelect(&b, env); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, name+".json")
		if err := os.WriteFile(f, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return "cat " + f
	}
	good := goodEnv()
	good.Scan = fakeScan([]string{"medlam", "medlam-encoder", "sam-encoder", "sam-decoder"},
		nil)
	good.Models, good.Optional = WorkSelect.Models()
	want, why := tryGPU(good)
	if why != "" {
		t.Fatal(why)
	}
	noTRT := goodEnv()
	noTRT.TensorRTBuilt = func() bool { return false }

	tests := []struct {
		name, script string
		reason       string // in the CPU choice's reason and the ModeGPU error
		timeout      time.Duration
	}{
		{name: "choice", script: answer("good", good)},
		{name: "worker without TensorRT", script: answer("notrt", noTRT), reason: "without TensorRT"},
		{name: "fails", script: "echo boom >&2; exit 3", reason: "exit status 3 (it said: boom)"},
		{name: "nonsense", script: "echo not json", reason: "answered no backend choice"},
		{name: "other release", script: "echo '{}'", reason: "protocol version 0"},
		{name: "empty answer", script: `echo '{"version": 1}'`,
			reason: "answered no TensorRT choice"},
		{name: "silent", script: "exec sleep 5", reason: "context deadline exceeded",
			timeout: 100 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []Mode{ModeAuto, ModeGPU} {
				timeout := tc.timeout
				if timeout == 0 {
					timeout = time.Minute
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				var log bytes.Buffer
				c, err := SelectInWorker(ctx, mode, exec.Command("sh", "-c", tc.script),
					slog.New(slog.NewTextHandler(&log, nil)))
				switch {
				case tc.reason == "":
					if err != nil || !reflect.DeepEqual(c, want) ||
						c.Engines["sam-decoder"] == "" || c.Engines["medlam-encoder"] == "" ||
						c.EncoderBatch < 1 {
						t.Errorf("%s: choice %+v, %v; want %+v", mode, c, err, want)
					}
				case mode == ModeAuto:
					if err != nil || c.Backend != CPU || !strings.Contains(c.Reason, tc.reason) ||
						!strings.Contains(c.Reason, "gpu worker ") ||
						!strings.Contains(log.String(), "running on the CPU") {
						t.Errorf("auto: choice %+v, %v, log %q; want the CPU because %q", c,
							err, log.String(), tc.reason)
					}
				default:
					if !errors.Is(err, ErrGPURequested) ||
						!strings.Contains(err.Error(), tc.reason) {
						t.Errorf("gpu: %v, want an ErrGPURequested saying %q", err, tc.reason)
					}
				}
			}
		})
	}

	c, err := SelectInWorker(context.Background(), ModeAuto,
		exec.Command(filepath.Join(dir, "no-such-worker")), slog.New(slog.DiscardHandler))
	if err != nil || c.Backend != CPU || !strings.Contains(c.Reason, "no-such-worker") {
		t.Errorf("missing worker: %+v, %v", c, err)
	}
	if c, err := SelectInWorker(context.Background(), ModeCPU, nil,
		slog.New(slog.DiscardHandler)); err != nil || c.Backend != CPU {
		t.Errorf("cpu requested: %+v, %v", c, err)
	}
}

// TestCapped: at most max bytes are kept (the first, or the last with tail), writes never
// fail, and overflow is marked.
func TestCapped(t *testing.T) {
	head := &capped{max: 4}
	tail := &capped{max: 4, tail: true}
	for _, p := range []string{"ab", "cde", "fgh"} {
		for _, c := range []*capped{head, tail} {
			if n, err := c.Write([]byte(p)); n != len(p) || err != nil {
				t.Fatalf("write %q: %d, %v", p, n, err)
			}
		}
	}
	if string(head.b) != "abcd" || !head.over || string(tail.b) != "efgh" || !tail.over {
		t.Errorf("head %q (%v), tail %q (%v)", head.b, head.over, tail.b, tail.over)
	}
}
