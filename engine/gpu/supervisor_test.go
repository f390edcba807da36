package gpu

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medlsam-fast/medlsam-fast/trt"
)

// The test binary doubles as a fake worker: with MEDLSAM_FAKE_WORKER set, TestMain serves
// jobs instead of running tests. The fake crashes (exit 3, as a segfault in a driver would
// end the process) on batches above FAKE_CRASH_ABOVE, reports running out of memory above
// FAKE_OOM_ABOVE, fails jobs named "bad", and otherwise answers with its pid and the batch.
func TestMain(m *testing.M) {
	if os.Getenv("MEDLSAM_FAKE_WORKER") != "" {
		os.Exit(fakeWorker())
	}
	os.Exit(m.Run())
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

type fakeResult struct {
	Volume string `json:"volume"`
	Batch  int    `json:"batch"`
	PID    int    `json:"pid"`
}

func fakeWorker() int {
	crashAbove, oomAbove := envInt("FAKE_CRASH_ABOVE", 1<<30), envInt("FAKE_OOM_ABOVE", 1<<30)
	err := ServeWorker(context.Background(), os.Stdin, os.Stdout,
		func(ctx context.Context, job json.RawMessage, batch int) (json.RawMessage, error) {
			var vol string
			if err := json.Unmarshal(job, &vol); err != nil {
				return nil, err
			}
			switch {
			case batch > crashAbove:
				os.Exit(3)
			case batch > oomAbove:
				return nil, fmt.Errorf("encoder batch %d: %w", batch, trt.ErrOutOfMemory)
			case vol == "bad":
				return nil, errors.New("volume bad is unreadable")
			}
			return json.Marshal(fakeResult{Volume: vol, Batch: batch, PID: os.Getpid()})
		})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake worker:", err)
		return 1
	}
	return 0
}

func fakeSupervisor(t *testing.T, batch, crashAbove, oomAbove int) *Supervisor {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{
		Command: func() *exec.Cmd {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "MEDLSAM_FAKE_WORKER=1",
				fmt.Sprintf("FAKE_CRASH_ABOVE=%d", crashAbove),
				fmt.Sprintf("FAKE_OOM_ABOVE=%d", oomAbove))
			cmd.Stderr = io.Discard
			return cmd
		},
		Batch: batch,
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func batches(o Outcome) []int {
	var b []int
	for _, a := range o.Attempts {
		b = append(b, a.Batch)
	}
	return b
}

func TestSupervisorRestartsCrashedWorker(t *testing.T) {
	s := fakeSupervisor(t, 32, 8, 1<<30)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := s.Do(ctx, "ct1.nii.gz")
	if err != nil {
		t.Fatal(err)
	}
	if got := batches(out); !slices.Equal(got, []int{32, 16, 8}) {
		t.Errorf("attempt batches %v, want [32 16 8]", got)
	}
	if !out.Attempts[0].Crashed || !out.Attempts[1].Crashed || out.Attempts[2].Crashed {
		t.Errorf("attempts %+v: want two crashes then success", out.Attempts)
	}
	if !strings.Contains(out.Attempts[0].Err, "exit status 3") {
		t.Errorf("crash report %q does not give the exit status", out.Attempts[0].Err)
	}
	var r fakeResult
	if err := json.Unmarshal(out.Result, &r); err != nil || r.Volume != "ct1.nii.gz" || r.Batch != 8 {
		t.Fatalf("result %s (%v)", out.Result, err)
	}
	if s.Restarts() != 2 {
		t.Errorf("Restarts = %d, want 2", s.Restarts())
	}
	// The next volume starts at the batch that worked, in the same worker.
	out2, err := s.Do(ctx, "ct2.nii.gz")
	if err != nil {
		t.Fatal(err)
	}
	var r2 fakeResult
	if err := json.Unmarshal(out2.Result, &r2); err != nil || r2.PID != r.PID ||
		!slices.Equal(batches(out2), []int{8}) {
		t.Errorf("second job: %s, attempts %v; want batch 8 in worker %d", out2.Result,
			batches(out2), r.PID)
	}
}

func TestSupervisorOutOfMemoryRetriesInPlace(t *testing.T) {
	s := fakeSupervisor(t, 16, 1<<30, 4)
	out, err := s.Do(context.Background(), "ct.nii.gz")
	if err != nil {
		t.Fatal(err)
	}
	if got := batches(out); !slices.Equal(got, []int{16, 8, 4}) {
		t.Errorf("attempt batches %v, want [16 8 4]", got)
	}
	for _, a := range out.Attempts {
		if a.Crashed {
			t.Errorf("attempt %+v marked crashed", a)
		}
	}
	if s.Restarts() != 0 {
		t.Errorf("out of memory restarted the worker %d times", s.Restarts())
	}
}

func TestSupervisorGivesUp(t *testing.T) {
	s := fakeSupervisor(t, 4, 0, 1<<30)
	s.MinBatch = 2
	out, err := s.Do(context.Background(), "ct.nii.gz")
	if !errors.Is(err, ErrWorkerFailed) {
		t.Fatalf("Do: %v, want ErrWorkerFailed", err)
	}
	if got := batches(out); !slices.Equal(got, []int{4, 2}) {
		t.Errorf("attempt batches %v, want [4 2]", got)
	}
}

func TestSupervisorJobError(t *testing.T) {
	s := fakeSupervisor(t, 8, 1<<30, 1<<30)
	out, err := s.Do(context.Background(), "bad")
	if !errors.Is(err, ErrJob) || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("Do: %v, want ErrJob with the worker's message", err)
	}
	if len(out.Attempts) != 1 {
		t.Errorf("a job error was retried: %+v", out.Attempts)
	}
	if _, err := s.Do(context.Background(), "good"); err != nil {
		t.Errorf("the worker did not survive a job error: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSupervisorCancel(t *testing.T) {
	s := fakeSupervisor(t, 8, 1<<30, 1<<30)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Do(ctx, "ct.nii.gz"); !errors.Is(err, context.Canceled) {
		t.Errorf("Do on a cancelled context: %v", err)
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	want := Request{ID: 7, Batch: 3, Job: json.RawMessage(`"x"`)}
	if err := writeFrame(&buf, want); err != nil {
		t.Fatal(err)
	}
	whole := buf.Bytes()
	big := binary.BigEndian.AppendUint32(nil, MaxFrame+1)
	tests := []struct {
		name string
		in   []byte
		want string // "" for success
	}{
		{"round trip", whole, ""},
		{"empty", nil, "EOF"},
		{"short header", whole[:2], "frame header"},
		{"truncated body", whole[:len(whole)-1], "unexpected EOF"},
		{"oversized", big, "exceeds"},
		{"not json", append(binary.BigEndian.AppendUint32(nil, 3), "{{{"...), "decode"},
	}
	for _, tc := range tests {
		var got Request
		err := readFrame(bytes.NewReader(tc.in), &got)
		if tc.want == "" {
			if err != nil || got.ID != 7 || got.Batch != 3 || string(got.Job) != `"x"` {
				t.Errorf("%s: %+v, %v", tc.name, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestSupervisorWorkerDoesNotStart: a worker that cannot be started fails the job at once,
// naming the program, and leaves the batch as it was (no smaller batch would help).
func TestSupervisorWorkerDoesNotStart(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-worker")
	s := &Supervisor{Command: func() *exec.Cmd { return exec.Command(missing) }, Batch: 16}
	out, err := s.Do(context.Background(), "ct.nii.gz")
	if !errors.Is(err, ErrWorkerFailed) || !strings.Contains(err.Error(), missing) ||
		len(out.Attempts) != 1 || s.Batch != 16 {
		t.Errorf("Do: %v, attempts %+v, batch %d", err, out.Attempts, s.Batch)
	}
}
