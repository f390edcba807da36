package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
)

// frame encodes v as the supervisor does: a 4-byte big-endian length, then JSON.
func frame(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	return append(out, b...)
}

// TestGPUWorker runs the hidden subcommand on two requests. Without CUDA (this machine)
// each is answered with the reason the pipeline cannot open; with it, with the reason the
// engines are missing. Either way the worker answers both and exits 0 when stdin ends.
func TestGPUWorker(t *testing.T) {
	var in bytes.Buffer
	batch := gpu.Batch{Jobs: []gpu.Job{{Query: "q.nii.gz", Mask: "m.nii.gz"}}}
	for id := uint64(1); id <= 2; id++ {
		raw, _ := json.Marshal(batch)
		in.Write(frame(t, gpu.Request{ID: id, Batch: 4, Job: raw}))
	}
	old := workerStdin
	workerStdin = &in
	t.Cleanup(func() { workerStdin = old })

	var out, errOut bytes.Buffer
	dir := t.TempDir()
	if code := run([]string{gpu.WorkerArg, "--engines", dir}, &out, &errOut); code != 0 {
		t.Fatalf("worker exited %d: %s", code, errOut.String())
	}
	for id := uint64(1); id <= 2; id++ {
		var hdr [4]byte
		if _, err := io.ReadFull(&out, hdr[:]); err != nil {
			t.Fatalf("response %d: %v", id, err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(&out, body); err != nil {
			t.Fatalf("response %d: %v", id, err)
		}
		var resp gpu.Response
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.ID != id || !strings.Contains(resp.Err, "open pipeline") {
			t.Errorf("response %+v, want id %d and the reason the pipeline did not open",
				resp, id)
		}
	}
}

func TestGPUWorkerHidden(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"help"}, &out, &errOut); code != 0 {
		t.Fatalf("help exited %d", code)
	}
	if strings.Contains(out.String(), gpu.WorkerArg) {
		t.Errorf("usage lists the hidden %s:\n%s", gpu.WorkerArg, out.String())
	}
	if !strings.Contains(out.String(), "doctor") {
		t.Errorf("usage lacks doctor:\n%s", out.String())
	}
	if code := run([]string{gpu.WorkerArg, "extra"}, &out, &errOut); code != 2 {
		t.Errorf("worker with an argument exited %d, want 2", code)
	}
	errOut.Reset()
	if code := run([]string{gpu.WorkerArg, "--work", "train"}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "--work") {
		t.Errorf("worker with --work train exited %d: %s", code, errOut.String())
	}
}

// TestGPUWorkerWork checks that the worker opens its pipeline for the work it is given
// (segment by default).
func TestGPUWorkerWork(t *testing.T) {
	old, oldIn := workerOpener, workerStdin
	t.Cleanup(func() { workerOpener, workerStdin = old, oldIn })
	for _, tc := range []struct {
		args []string
		want gpu.Work
	}{{nil, gpu.WorkSegment}, {[]string{"--work", "localise"}, gpu.WorkLocalise}} {
		var got gpu.Work
		workerOpener = func(dir string, w gpu.Work, _ *slog.Logger) gpu.PipelineOpener {
			got = w
			return nil
		}
		workerStdin = &bytes.Buffer{}
		var out, errOut bytes.Buffer
		if code := run(append([]string{gpu.WorkerArg}, tc.args...), &out,
			&errOut); code != 0 || got != tc.want {
			t.Errorf("worker %v: exit %d, work %q; want %q (%s)", tc.args, code, got, tc.want,
				errOut.String())
		}
	}
}

// TestGPUWorkerSelect: with --work select the worker writes one gpu.SelectAnswer for the
// engines it was given and exits, serving no request.
func TestGPUWorkerSelect(t *testing.T) {
	var gotEngines string
	old := gpuEnv
	gpuEnv = func(engines string, models []string) gpu.Env {
		gotEngines = engines
		return gpu.Env{Engines: engines, TensorRTBuilt: func() bool { return false }}
	}
	t.Cleanup(func() { gpuEnv = old })
	var out, errOut bytes.Buffer
	dir := t.TempDir()
	code := run([]string{gpu.WorkerArg, "--engines", dir, "--work", "select"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("worker exited %d: %s", code, errOut.String())
	}
	var a gpu.SelectAnswer
	if err := json.Unmarshal(out.Bytes(), &a); err != nil {
		t.Fatalf("answer %q: %v", out.String(), err)
	}
	if a.Choice != nil || !strings.Contains(a.Err, "without TensorRT") || gotEngines != dir {
		t.Errorf("answer %+v for engines %q, want the reason TensorRT is missing for %q", a,
			gotEngines, dir)
	}
}
