package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// The test binary doubles as a fake GPU worker: with fakeWorkerEnv set to the work it was
// started for, TestMain serves gpu.Batch requests as the device pipeline would. It
// "localises" organ n of a template set to the box fakeBox(shape, n) and "segments" each
// organ as its box filled with its label; a localisation worker refuses jobs with a mask
// (a segmentation worker, like the device pipeline, also serves jobs without). With FAKE_CRASH_ONCE naming a file that does not
// exist yet, it creates the file and dies on its first request; with FAKE_RECORD it
// appends "WORK BATCH" for every request it answers.
const fakeWorkerEnv = "MEDLSAM_ENGINE_FAKE_WORKER"

// fakeWorkerModel marks the localisations the fake worker makes.
const fakeWorkerModel = "fake-worker"

func TestMain(m *testing.M) {
	if w := os.Getenv(fakeWorkerEnv); w != "" {
		var err error
		if gpu.Work(w) == gpu.WorkSelect {
			env := workerEnv(os.Getenv("FAKE_MEDLAM_ONNX"), os.Getenv("FAKE_SAM"))
			env.Engines = os.Getenv("FAKE_ENGINES")
			err = gpu.ServeSelect(os.Stdout, env)
		} else {
			err = gpu.ServeWorker(context.Background(), os.Stdin, os.Stdout,
				fakeWorker(gpu.Work(w)))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakeWorker(work gpu.Work) gpu.Handler {
	return func(ctx context.Context, raw json.RawMessage, batch int) (json.RawMessage, error) {
		if os.Getenv("FAKE_HANG") != "" {
			time.Sleep(time.Hour) // a worker stuck in a CUDA call
		}
		if f := os.Getenv("FAKE_CRASH_ONCE"); f != "" {
			if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
				os.WriteFile(f, nil, 0o600)
				os.Exit(3)
			}
		}
		if f := os.Getenv("FAKE_RECORD"); f != "" {
			rec, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(rec, "%s %d\n", work, batch)
			if err := rec.Close(); err != nil {
				return nil, err
			}
		}
		var b gpu.Batch
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, err
		}
		var out []gpu.Result
		for _, job := range b.Jobs {
			r := gpu.Result{Job: job}
			if err := fakeJob(work, job, &r); err != nil {
				r.Err = err.Error()
			}
			out = append(out, r)
		}
		return json.Marshal(out)
	}
}

// fakeBox is where the fake worker "finds" organ n of a volume of the given shape.
func fakeBox(shape [3]int, n int) eval.Box {
	return eval.Box{Min: [3]int{shape[0]/4 + 3*n, shape[1] / 4, shape[2] / 4},
		Max: [3]int{shape[0]/2 + 3*n, shape[1] / 2, shape[2] / 2}}
}

func fakeJob(work gpu.Work, job gpu.Job, r *gpu.Result) error {
	if work == gpu.WorkLocalise && job.Mask != "" {
		return fmt.Errorf("fake %s worker given a job with mask %q", work, job.Mask)
	}
	q, err := nifti.Read(job.Query, nifti.ReadOptions{})
	if err != nil {
		return err
	}
	shape := q.Volume.Shape
	if job.Templates != "" {
		ts, err := localize.LoadTemplateSet(job.Templates, "")
		if err != nil {
			return err
		}
		loc := &localize.Result{Query: job.Query, Shape: shape, ModelSHA256: fakeWorkerModel,
			Seed: job.Localize.Seed, Mode: ts.Mode}
		for n, o := range ts.Organs {
			box := fakeBox(shape, n)
			loc.Organs = append(loc.Organs, localize.OrganBox{Organ: o.Organ,
				BoxOnGrid: localize.BoxOnGrid{Box: box}})
			r.Organs = append(r.Organs, gpu.Organ{Label: o.Label, Name: o.Name, Box: box})
		}
		r.Localization = loc
	} else {
		b, err := os.ReadFile(job.Organs)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &r.Organs); err != nil {
			return err
		}
	}
	if job.Mask == "" {
		return nil
	}
	if strings.HasPrefix(filepath.Base(job.Query), "wrongshape") { // a faulty worker
		shape[0]++
	}
	m := &volume.Volume{Data: make([]float32, shape[0]*shape[1]*shape[2]), Shape: shape,
		Spacing: q.Volume.Spacing, Affine: q.Volume.Affine}
	for _, o := range r.Organs {
		fillBox(m, o.Box, float32(o.Label))
	}
	return nifti.Write(job.Mask, m, nifti.WriteOptions{Datatype: nifti.Uint8, Like: q.Header})
}

func fillBox(v *volume.Volume, b eval.Box, value float32) {
	for k := b.Min[2]; k <= b.Max[2]; k++ {
		for j := b.Min[1]; j <= b.Max[1]; j++ {
			for i := b.Min[0]; i <= b.Max[0]; i++ {
				v.Data[v.Index(i, j, k)] = value
			}
		}
	}
}

func boxVoxels(b eval.Box) int {
	n := 1
	for a := range 3 {
		n *= b.Max[a] - b.Min[a] + 1
	}
	return n
}

// workerEnv is the fake worker's GPU environment: a MedLAM engine built from the ONNX of
// digest medlamONNX and, with sam "tiny", both SAM engines built from the tiny SAM exports
// (with sam "other", from other ONNX; with "", none).
func workerEnv(medlamONNX, sam string) gpu.Env {
	probes := 0
	env := gpuEnv(&probes)
	env.Scan = func(dir string, _ trt.Machine) ([]trt.EngineStatus, error) {
		models := []string{"medlam"}
		if sam != "" {
			models = append(models, samEncoder, samDecoder)
		}
		var out []trt.EngineStatus
		for _, m := range models {
			man := &trt.EngineManifest{Manifest: backend.Manifest{Model: m, File: m + ".plan"}}
			switch m {
			case "medlam":
				man.ONNXSHA256 = medlamONNX
			case samEncoder, samDecoder:
				man.ONNXSHA256 = "other"
				if sam == "tiny" {
					onnx, err := backend.LoadManifest(filepath.Join(tinyDir,
						"sam_tiny"+strings.TrimPrefix(m, "sam")+".onnx"))
					if err != nil {
						return nil, err
					}
					man.ONNXSHA256 = onnx.SHA256
				}
			}
			out = append(out, trt.EngineStatus{Plan: filepath.Join(dir, m+".plan"),
				Manifest: man})
		}
		return out, nil
	}
	return env
}

// fakeWorkerCommand starts this test binary as the fake worker, its engines those of
// workerEnv(medlamONNX, sam). The engines directory it was given is stored in *engines
// when engines is not nil.
func fakeWorkerCommand(crashOnce, record, medlamONNX, sam string,
	engines *string) WorkerCommand {
	return func(w gpu.Work, dir string) *exec.Cmd {
		if engines != nil {
			*engines = dir
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fakeWorkerEnv+"="+string(w),
			"FAKE_CRASH_ONCE="+crashOnce, "FAKE_RECORD="+record,
			"FAKE_MEDLAM_ONNX="+medlamONNX, "FAKE_SAM="+sam, "FAKE_ENGINES="+dir)
		return cmd
	}
}

const (
	phantomCT     = "../testdata/phantom/phantom_ct.nii.gz"
	phantomLabels = "../testdata/phantom/phantom_labels.nii.gz"
	phantomQuery  = "../testdata/phantom/query/phantom_ct.nii.gz"
)

// workerEngine opens the tiny MedLAM with the TensorRT backend (fakes) and the fake worker,
// and builds the template set of spleen and liver on the phantom (MedLAM on the CPU here).
func workerEngine(t *testing.T, sam bool, crashOnce, record string) (*Engine,
	*localize.TemplateSet) {
	t.Helper()
	man, err := backend.LoadManifest(filepath.Join(tinyDir, "medlam_tiny.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := quiet
	cfg.Seed = 5
	samEngines := ""
	if sam {
		samEngines = "tiny"
	}
	e, err := Open(tinyDir, Options{Backend: "gpu", Engines: "eng",
		Worker:   fakeWorkerCommand(crashOnce, record, man.SHA256, samEngines, nil),
		Localize: cfg, MedLAMRuntime: Native})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if e.Backend() != "tensorrt" {
		t.Fatalf("backend %q, want tensorrt", e.Backend())
	}
	ts, err := e.BuildTemplates(context.Background(), []TemplateInput{{ImagePath: phantomCT,
		LabelsPath: phantomLabels}}, []localize.Organ{{Label: 1, Name: "spleen"},
		{Label: 5, Name: "liver"}})
	if err != nil {
		t.Fatal(err)
	}
	return e, ts
}

// TestWorkerSegments runs the Engine's TensorRT backend through a segmentation worker
// (fakes): localisation and segmentation of a file and of a volume in memory, the label
// map and per-organ masks written where asked and read back for the result and its voxel
// counts, boxes given instead of templates, a crashed worker replaced and its job retried
// with half the batch, and the temporary files removed by Close.
func TestWorkerSegments(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record.txt")
	e, ts := workerEngine(t, true, filepath.Join(dir, "crashed"), record)
	e.dw.sup.Batch = 8 // the first batch to try (else what fits in the fake's free memory)
	ctx := context.Background()

	loc, err := e.Localize(ctx, ts, phantomQuery)
	if err != nil {
		t.Fatal(err)
	}
	q, err := nifti.Read(phantomQuery, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	shape := q.Volume.Shape
	if loc.ModelSHA256 != fakeWorkerModel || loc.Query != phantomQuery || loc.Seed != 5 ||
		len(loc.Organs) != 2 || loc.Organs[1].Box != fakeBox(shape, 1) {
		t.Fatalf("localisation %+v, want the fake worker's with seed 5", loc)
	}

	mask := filepath.Join(dir, "q_mask.nii.gz")
	res, err := e.Segment(ctx, ts, phantomQuery, SegmentOptions{Mask: mask, PerOrgan: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{mask, filepath.Join(dir, "q_mask_label1.nii.gz"),
		filepath.Join(dir, "q_mask_label5.nii.gz")}
	if !slices.Equal(res.Files, want) || res.Localization.ModelSHA256 != fakeWorkerModel {
		t.Errorf("files %v (want %v), localisation by %q", res.Files, want,
			res.Localization.ModelSHA256)
	}
	for _, f := range want {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	// Organ 1 (liver) is filled after organ 0 (spleen) and covers part of its box.
	b0, b1 := fakeBox(shape, 0), fakeBox(shape, 1)
	overlap := eval.Box{Min: b1.Min, Max: b0.Max}
	org := res.Segmentation.Organs
	if len(org) != 2 || org[0].Voxels != boxVoxels(b0)-boxVoxels(overlap) ||
		org[1].Voxels != boxVoxels(b1) || res.Segmentation.Batch != 4 ||
		res.Labels.Shape != shape {
		t.Errorf("report %+v (batch %d), labels %v", org, res.Segmentation.Batch,
			res.Labels.Shape)
	}
	if res.Labels.At(b1.Min[0], b1.Min[1], b1.Min[2]) != 5 ||
		res.Labels.At(b0.Min[0], b0.Min[1], b0.Min[2]) != 1 || res.Labels.At(0, 0, 0) != 0 {
		t.Error("the label map read back is not the worker's")
	}

	// A volume in memory gives the same label map; no file is written without Mask.
	mem, err := e.SegmentVolume(ctx, ts, q.Volume, q.Header, "in memory", SegmentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mem.Labels.Data, res.Labels.Data) || len(mem.Files) != 0 ||
		mem.Localization.Query != "in memory" {
		t.Errorf("in memory: files %v, query %q, same labels %v", mem.Files,
			mem.Localization.Query, slices.Equal(mem.Labels.Data, res.Labels.Data))
	}

	// Boxes given: the worker segments them without templates.
	given := &localize.Result{Shape: shape, Organs: []localize.OrganBox{{
		Organ: localize.Organ{Label: 7}, BoxOnGrid: localize.BoxOnGrid{Box: b0}}}}
	boxes, err := e.SegmentBoxes(ctx, given, nil, nil, phantomQuery, SegmentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := boxes.Segmentation.Organs[0].Voxels; n != boxVoxels(b0) {
		t.Errorf("given box: %d voxels, want %d", n, boxVoxels(b0))
	}
	given.Shape[0]++
	if _, err := e.SegmentBoxes(ctx, given, nil, nil, phantomQuery,
		SegmentOptions{}); err == nil || !strings.Contains(err.Error(), "grid of shape") {
		t.Errorf("boxes for another shape: %v", err)
	}

	// A failed job names the query and leaves no mask, nor the worker's temporary one:
	// the worker fails, or writes a label map that is refused.
	missing := filepath.Join(dir, "missing.nii.gz")
	bad := filepath.Join(dir, "bad_mask.nii.gz")
	if _, err := e.Segment(ctx, ts, missing, SegmentOptions{Mask: bad}); err == nil ||
		!strings.Contains(err.Error(), "engine: "+missing+": gpu worker") {
		t.Errorf("missing query: %v", err)
	}
	wrong := filepath.Join(dir, "wrongshape.nii.gz")
	if err := nifti.Write(wrong, q.Volume, nifti.WriteOptions{Like: q.Header}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Segment(ctx, ts, wrong, SegmentOptions{Mask: bad}); err == nil ||
		!strings.Contains(err.Error(), "label map of shape") {
		t.Errorf("label map of another shape: %v", err)
	}
	if _, err := e.Segment(ctx, ts, phantomQuery, SegmentOptions{Mask: filepath.Join(dir,
		"none", "m.nii.gz")}); err == nil || !strings.Contains(err.Error(), "no directory") {
		t.Errorf("mask in a missing directory: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*bad_mask*"))
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".medlsam-*")); len(left)+len(tmp) != 0 {
		left = append(left, tmp...)
		t.Errorf("a failed job left %v", left)
	}

	rec, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(rec)); len(got) != 12 || got[0] != "segment" ||
		got[1] != "4" {
		t.Errorf("worker requests %q: want six segmentation requests at batch 4 after "+
			"the crash", rec)
	}
	tmp := e.dw.dir
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary directory %s left after Close: %v", tmp, err)
	}
	if _, err := e.Localize(ctx, ts, phantomQuery); !errors.Is(err, ErrClosed) {
		t.Errorf("Localize after Close: %v", err)
	}
}

// TestWorkerLocalises: without SAM engines the worker only localises (a localisation
// worker) and SAM runs here on the CPU in the worker's boxes; an engine built from another
// MedLAM export is refused at Open, saying how to fix it.
func TestWorkerLocalises(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record.txt")
	e, ts := workerEngine(t, false, "", record)
	v, err := nifti.Read(phantomQuery, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	loc, err := e.LocalizeVolume(context.Background(), ts, v.Volume, "in memory")
	if err != nil {
		t.Fatal(err)
	}
	if loc.ModelSHA256 != fakeWorkerModel || loc.Query != "in memory" {
		t.Errorf("localisation %+v", loc)
	}
	rec, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	// The cap on MedLAM patches starts at the engines' largest batch; the fake manifests
	// give no profile, so at localize's default.
	if want := fmt.Sprintf("localise %d\n", localize.DefaultBatchSize); string(rec) != want {
		t.Errorf("worker requests %q", rec)
	}

	res, err := e.Segment(context.Background(), ts, phantomQuery, SegmentOptions{})
	switch {
	case errors.Is(err, backend.ErrUnavailable):
		t.Logf("SAM on the CPU not checked: %v", err)
	case err != nil:
		t.Fatal(err)
	case res.Localization.ModelSHA256 != fakeWorkerModel || res.Segmentation.EncoderBatches < 1 ||
		res.Times.Localize <= 0:
		t.Errorf("localised by %q, %d encoder batches here, localisation %v ms",
			res.Localization.ModelSHA256, res.Segmentation.EncoderBatches,
			res.Times.Localize)
	}

	_, err = Open(tinyDir, Options{Backend: "gpu", Engines: "eng",
		Worker:   fakeWorkerCommand("", "", "0123456789abcdef", "", nil),
		Localize: quiet, MedLAMRuntime: Native})
	if err == nil || !strings.Contains(err.Error(), "built from ONNX 0123456789ab") ||
		!strings.Contains(err.Error(), "rebuild") {
		t.Errorf("engine of another model: %v", err)
	}
}

// TestWorkerChoice: with Options.Worker the worker, not this test binary (built without
// TensorRT), chooses the backend, given the engines directory as an absolute path; SAM
// engines built from another SAM than the models directory's leave SAM here; a worker that
// does not start, or cannot run the GPU backend, means the CPU with "auto" and an error
// with "gpu".
func TestWorkerChoice(t *testing.T) {
	man, err := backend.LoadManifest(filepath.Join(tinyDir, "medlam_tiny.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	open := func(mode, engines string, w WorkerCommand) (*Engine, error) {
		e, err := Open(tinyDir, Options{Backend: mode, Engines: engines, Worker: w,
			Localize: quiet, MedLAMRuntime: Native})
		if err == nil {
			t.Cleanup(func() { e.Close() })
		}
		return e, err
	}

	var given string
	e, err := open("auto", "eng", fakeWorkerCommand("", "", man.SHA256, "tiny", &given))
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("eng")
	if e.Backend() != "tensorrt" || e.dw.work != gpu.WorkSegment || given != abs {
		t.Errorf("backend %s, work %s, engines %q (want %q)", e.Backend(), e.dw.work, given,
			abs)
	}
	if err := e.OpenSAM(); err != nil || e.sam != nil {
		t.Errorf("OpenSAM with SAM on the worker: %v, opened here %v", err, e.sam != nil)
	}

	e, err = open("gpu", "eng", fakeWorkerCommand("", "", man.SHA256, "other", nil))
	if err != nil {
		t.Fatal(err)
	}
	if e.dw == nil || e.dw.work != gpu.WorkLocalise {
		t.Errorf("SAM engines of another SAM: worker %+v, want a localisation worker", e.dw)
	}

	missing := WorkerBinary(filepath.Join(t.TempDir(), "medlsam-fast"))
	for _, tc := range []struct {
		name, engines string
		w             WorkerCommand
		reason        string
	}{
		{"missing worker", "eng", missing, "medlsam-fast"},
		{"worker without engines", "", fakeWorkerCommand("", "", man.SHA256, "", nil),
			"no engines directory"},
	} {
		e, err := open("auto", tc.engines, tc.w)
		if err != nil || e.Backend() != CPU || e.dw != nil {
			t.Errorf("%s, auto: %v", tc.name, err)
		}
		if _, err := open("gpu", tc.engines, tc.w); !errors.Is(err, gpu.ErrGPURequested) ||
			!strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s, gpu: %v, want the GPU refused because %q", tc.name, err, tc.reason)
		}
	}
}

// TestWorkerTemplateSets: a template set is saved for the worker once, and at most
// maxWorkerSets stay saved, the least recently used dropped with its file.
func TestWorkerTemplateSets(t *testing.T) {
	e, ts := workerEngine(t, false, "", "")
	w := e.dw
	first, err := w.setFile(ts)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for range maxWorkerSets {
		c := *ts
		f, err := w.setFile(&c)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		if again, err := w.setFile(ts); err != nil || again != first {
			t.Fatalf("set used again: %q, %v; want %q", again, err, first)
		}
	}
	if _, err := os.Stat(files[0]); !errors.Is(err, os.ErrNotExist) || len(w.sets) !=
		maxWorkerSets {
		t.Errorf("oldest set's file: %v; %d sets kept", err, len(w.sets))
	}
	if _, err := os.Stat(first); err != nil {
		t.Errorf("the set in use was dropped: %v", err)
	}
}

// TestWorkerCloseInterrupts: Close ends a job stuck in the worker, which then fails with
// ErrClosed, instead of waiting for it.
func TestWorkerCloseInterrupts(t *testing.T) {
	man, err := backend.LoadManifest(filepath.Join(tinyDir, "medlam_tiny.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeWorkerCommand("", "", man.SHA256, "", nil)
	hang := func(w gpu.Work, engines string) *exec.Cmd {
		cmd := fake(w, engines)
		if w != gpu.WorkSelect {
			cmd.Env = append(cmd.Env, "FAKE_HANG=1")
		}
		return cmd
	}
	e, err := Open(tinyDir, Options{Backend: "gpu", Engines: "eng", Worker: hang,
		Localize: quiet, MedLAMRuntime: Native})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := e.BuildTemplates(context.Background(), []TemplateInput{{ImagePath: phantomCT,
		LabelsPath: phantomLabels}}, []localize.Organ{{Label: 1, Name: "spleen"}})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := e.Localize(context.Background(), ts, phantomQuery)
		got <- err
	}()
	// Give the job time to reach the worker (if Close came first, the call would fail
	// with ErrClosed all the same).
	time.Sleep(500 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Close waits for the job stuck in the worker")
	}
	select {
	case err := <-got:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("job stuck in the worker ended with %v, want ErrClosed", err)
		}
		t.Log(err)
	case <-time.After(time.Minute):
		t.Fatal("the job did not end after Close")
	}
}
