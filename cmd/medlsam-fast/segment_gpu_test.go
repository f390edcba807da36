package main

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

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/phantom"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// The test binary doubles as a fake GPU worker: with MEDLSAM_FAKE_SEG_WORKER set to the
// work it was started for (gpu.Work), TestMain serves gpu.Batch requests as the device
// pipeline would, "segmenting" each organ as its box filled with its label (later organs
// win), and writing the label map where the job says; a localisation worker refuses jobs
// with a mask, a segmentation worker jobs without. With FAKE_SEG_CRASH_ONCE naming a file
// that does not exist yet, it creates the file and dies on its first request, as a driver
// fault would end the process.
func TestMain(m *testing.M) {
	if os.Getenv("MEDLSAM_FAKE_SEG_WORKER") != "" {
		err := gpu.ServeWorker(context.Background(), os.Stdin, os.Stdout, fakeSegHandler)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakeSegHandler(ctx context.Context, raw json.RawMessage, batch int) (json.RawMessage,
	error) {
	if f := os.Getenv("FAKE_SEG_CRASH_ONCE"); f != "" {
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			os.WriteFile(f, nil, 0o600)
			os.Exit(3)
		}
	}
	var b gpu.Batch
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, err
	}
	if f := os.Getenv("FAKE_SEG_RECORD"); f != "" {
		// The request's batch and each job's localisation batch, for the test to check.
		rec, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, err
		}
		for _, j := range b.Jobs {
			lb := -1
			if j.Localize != nil {
				lb = j.Localize.Batch
			}
			fmt.Fprintf(rec, "%d %d %s\n", batch, lb, filepath.Base(j.Templates))
		}
		if err := rec.Close(); err != nil {
			return nil, err
		}
	}
	var out []gpu.Result
	for _, job := range b.Jobs {
		res := gpu.Result{Job: job}
		if err := fakeSegment(job, &res); err != nil {
			res.Err = err.Error()
		}
		out = append(out, res)
	}
	return json.Marshal(out)
}

func fakeSegment(job gpu.Job, res *gpu.Result) error {
	if localiser := os.Getenv("MEDLSAM_FAKE_SEG_WORKER") == string(gpu.WorkLocalise); localiser !=
		(job.Mask == "") {
		return fmt.Errorf("fake %s worker given a job with mask %q",
			os.Getenv("MEDLSAM_FAKE_SEG_WORKER"), job.Mask)
	}
	q, err := nifti.Read(job.Query, nifti.ReadOptions{})
	if err != nil {
		return err
	}
	if job.Templates != "" {
		if err := fakeLocalise(job, q.Volume.Shape, res); err != nil {
			return err
		}
		if job.Mask == "" {
			return nil
		}
	} else {
		data, err := os.ReadFile(job.Organs)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, &res.Organs); err != nil {
			return err
		}
	}
	v := q.Volume
	m := &volume.Volume{Data: make([]float32, len(v.Data)), Shape: v.Shape,
		Spacing: v.Spacing, Affine: v.Affine}
	for _, o := range res.Organs {
		for k := o.Box.Min[2]; k <= o.Box.Max[2]; k++ {
			for j := o.Box.Min[1]; j <= o.Box.Max[1]; j++ {
				for i := o.Box.Min[0]; i <= o.Box.Max[0]; i++ {
					m.Data[m.Index(i, j, k)] = float32(o.Label)
				}
			}
		}
	}
	return nifti.Write(job.Mask, m, nifti.WriteOptions{Datatype: nifti.Uint8, Like: q.Header})
}

// fakeDeviceModel marks the localisations the fake worker makes.
const fakeDeviceModel = "fake-device-localisation"

// fakeLocalise "localises" on the device as the fake worker: every organ of the job's
// template set gets the box of the volume's first half, and the result records the seed.
func fakeLocalise(job gpu.Job, shape [3]int, res *gpu.Result) error {
	ts, err := localize.LoadTemplateSet(job.Templates, "")
	if err != nil {
		return err
	}
	if job.Localize == nil {
		return errors.New("fake worker: no localisation options")
	}
	loc := &localize.Result{Query: job.Query, Shape: shape, ModelSHA256: fakeDeviceModel,
		Seed: job.Localize.Seed, Mode: ts.Mode}
	box := eval.Box{Max: [3]int{shape[0]/2 - 1, shape[1]/2 - 1, shape[2]/2 - 1}}
	for _, o := range ts.Organs {
		loc.Organs = append(loc.Organs, localize.OrganBox{Organ: o.Organ,
			BoxOnGrid: localize.BoxOnGrid{Box: box}})
		res.Organs = append(res.Organs, gpu.Organ{Label: o.Label, Name: o.Name, Box: box})
	}
	res.Localization = loc
	return nil
}

// fakeRecord, when set, is a file where the fake worker appends a line per job: the
// request's batch, the job's localisation batch (-1 without options) and the base name of
// its template set.
var fakeRecord string

// fakeMedLAMEngines, when set, makes the fake environment also find MedLAM engines, the
// full one built from the ONNX of digest fakeMedLAMONNX.
var (
	fakeMedLAMEngines bool
	fakeMedLAMONNX    string
)

type fakeProber struct{}

func (fakeProber) Probe() (gpu.Report, error) {
	return gpu.Report{Devices: []gpu.Device{{Name: "NVIDIA H200", ComputeCapability: "9.0",
		MemoryFree: 100 << 30}}}, nil
}

// fakeGPU makes the backend choice see a TensorRT build, an H200 and matching engines for
// every model, and the supervisor start this test binary as the fake worker.
func fakeGPU(t *testing.T, crashOnce string) {
	oldEnv, oldCmd := gpuEnv, workerCommand
	t.Cleanup(func() { gpuEnv, workerCommand = oldEnv, oldCmd })
	gpuEnv = func(engines string, models []string) gpu.Env {
		return gpu.Env{Probe: fakeProber{}, Engines: engines, Models: models,
			TensorRTBuilt:   func() bool { return true },
			CUDABuilt:       func() bool { return true },
			TensorRTVersion: func() (trt.Version, error) { return trt.Version{Major: 10}, nil },
			Scan: func(dir string, _ trt.Machine) ([]trt.EngineStatus, error) {
				var out []trt.EngineStatus
				all := slices.Clone(models)
				if fakeMedLAMEngines {
					all = append(all, "medlam", "medlam-encoder")
				}
				for _, m := range all {
					man := &trt.EngineManifest{Manifest: backend.Manifest{Model: m}}
					if m == "medlam" {
						man.ONNXSHA256 = fakeMedLAMONNX
					}
					out = append(out, trt.EngineStatus{Plan: filepath.Join(dir, m+".plan"),
						Manifest: man})
				}
				return out, nil
			}}
	}
	workerCommand = func(dir string, work gpu.Work) func() *exec.Cmd {
		return func() *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "MEDLSAM_FAKE_SEG_WORKER="+string(work),
				"FAKE_SEG_CRASH_ONCE="+crashOnce, "FAKE_SEG_RECORD="+fakeRecord)
			return cmd
		}
	}
}

// TestSegmentGPUBackend runs segment with the GPU backend chosen (fakes) on a boxes file:
// the job goes through the supervisor to the fake worker, whose label map is reported with
// each organ's voxel count; a worker crash is retried with half the batch and reported.
func TestSegmentGPUBackend(t *testing.T) {
	cases := []struct {
		name     string
		crash    bool
		attempts []gpu.Attempt
	}{
		{"first try", false, []gpu.Attempt{{Batch: 8}}},
		{"worker crashes once", true, []gpu.Attempt{{Batch: 8, Crashed: true}, {Batch: 4}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			crash := ""
			if tc.crash {
				crash = filepath.Join(dir, "crashed")
			}
			fakeGPU(t, crash)
			shape := [3]int{24, 20, 6}
			q := filepath.Join(dir, "q.nii.gz")
			writeVol(t, q, shape, func(i, j, k int) float32 { return float32(i + j + k) })
			boxes := []eval.Box{{Min: [3]int{1, 2, 0}, Max: [3]int{5, 6, 2}},
				{Min: [3]int{10, 10, 3}, Max: [3]int{20, 15, 5}}}
			loc := localize.Result{Shape: shape, Organs: []localize.OrganBox{
				{Organ: localize.Organ{Label: 3, Name: "a"},
					BoxOnGrid: localize.BoxOnGrid{Box: boxes[0]}},
				{Organ: localize.Organ{Label: 9, Name: "b"},
					BoxOnGrid: localize.BoxOnGrid{Box: boxes[1]}}}}
			b, _ := json.Marshal(loc)
			boxesFile := filepath.Join(dir, "boxes.json")
			if err := os.WriteFile(boxesFile, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out, errs, code := runCmd(t, "segment", "--boxes", boxesFile, "--backend", "gpu",
				"--engines", filepath.Join(dir, "engines"), "--sam-batch", "8", "--per-organ",
				"-d", dir, q)
			if code != 0 {
				t.Fatalf("segment: exit %d: %s", code, errs)
			}
			var rep segmentReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatal(err)
			}
			if len(rep.Queries) != 1 {
				t.Fatalf("report: %s", out)
			}
			r := rep.Queries[0]
			mask := filepath.Join(dir, "q_mask.nii.gz")
			perOrgan := []string{filepath.Join(dir, "q_mask_label3.nii.gz"),
				filepath.Join(dir, "q_mask_label9.nii.gz")}
			if r.Backend != "tensorrt" || len(r.Output) != 3 || r.Output[0] != mask ||
				r.Output[1] != perOrgan[0] || r.Output[2] != perOrgan[1] ||
				r.Localization != nil {
				t.Errorf("report: backend %q, outputs %v, localisation %v", r.Backend,
					r.Output, r.Localization)
			}
			if fmt.Sprint(stripErrs(r.GPUAttempts)) != fmt.Sprint(tc.attempts) {
				t.Errorf("attempts %+v, want %+v", r.GPUAttempts, tc.attempts)
			}
			if len(r.Segmentation.Organs) != 2 {
				t.Fatalf("organs %+v", r.Segmentation.Organs)
			}
			for n, o := range r.Segmentation.Organs {
				bx := boxes[n]
				want := 1
				for a := 0; a < 3; a++ {
					want *= bx.Max[a] - bx.Min[a] + 1
				}
				m, err := nifti.Read(perOrgan[n], nifti.ReadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				ones := 0
				for _, v := range m.Volume.Data {
					if v == 1 {
						ones++
					} else if v != 0 {
						t.Fatalf("%s holds %v", perOrgan[n], v)
					}
				}
				if ones != want {
					t.Errorf("%s: %d voxels set, want %d", perOrgan[n], ones, want)
				}
				if o.Voxels != want || o.FirstSlice != bx.Min[2] || o.LastSlice != bx.Max[2] ||
					o.Slices != bx.Max[2]-bx.Min[2]+1 {
					t.Errorf("organ %d: %d voxels, slices %d..%d (%d); want %d, %d..%d",
						o.Label, o.Voxels, o.FirstSlice, o.LastSlice, o.Slices, want,
						bx.Min[2], bx.Max[2])
				}
			}
		})
	}
}

// TestSegmentGPULocalisesOnDevice: with a MedLAM engine among the engines, segment builds
// the template set here (MedLAM on the CPU), hands it to the worker with the seed, and
// reports the worker's localisation; with --gpu-localize=false MedLAM runs in this process
// on the GPU backend.
func TestSegmentGPULocalisesOnDevice(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: tiny MedLAM over a template")
	}
	dir := t.TempDir()
	fakeGPU(t, "")
	sha := fakeTinyMedLAMEngines(t)
	img, labels, names := phantomTemplate(t, dir)
	args := func(onDevice bool) []string {
		return []string{"segment", "--models", "../../testdata/models", "--template",
			img + ":" + labels, "--organs", "spleen", "--label-names", names, "--seed", "7",
			"--backend", "gpu", "--engines", filepath.Join(dir, "engines"),
			fmt.Sprintf("--gpu-localize=%v", onDevice), "-d", dir, img}
	}
	// An engine from another ONNX is refused before the worker starts, saying how to fix it.
	fakeMedLAMONNX = "0123456789abcdef"
	if _, errs, code := runCmd(t, args(true)...); code != 1 ||
		!strings.Contains(errs, "built from ONNX 0123456789ab") ||
		!strings.Contains(errs, "--gpu-localize=false") {
		t.Errorf("engine of another model: exit %d: %s", code, errs)
	}
	fakeMedLAMONNX = sha
	for _, onDevice := range []bool{true, false} {
		out, errs, code := runCmd(t, args(onDevice)...)
		if !onDevice {
			// MedLAM now runs in this process on the (fake) TensorRT backend, which this
			// build cannot open: the error says so, and no worker was asked to localise.
			if gpu.CUDABuilt() {
				continue
			}
			if code != 1 || !strings.Contains(errs, "TensorRT models") {
				t.Errorf("segment --gpu-localize=false: exit %d: %s", code, errs)
			}
			continue
		}
		if code != 0 {
			t.Fatalf("segment (device %v): exit %d: %s", onDevice, code, errs)
		}
		var rep segmentReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Queries) != 1 || rep.Queries[0].Localization == nil {
			t.Fatalf("report: %s", out)
		}
		loc := rep.Queries[0].Localization
		if got := loc.ModelSHA256 == fakeDeviceModel; got != onDevice || loc.Seed != 7 ||
			len(loc.Organs) != 1 || loc.Organs[0].Name != "spleen" {
			t.Errorf("device %v: localisation %+v", onDevice, loc)
		}
		org := rep.Queries[0].Segmentation.Organs
		if len(org) != 1 || org[0].Voxels == 0 {
			t.Errorf("device %v: segmentation organs %+v", onDevice, org)
		}
	}
}

// fakeTinyMedLAMEngines makes the fake environment find MedLAM engines built from the
// tiny test model's ONNX, whose digest it returns.
func fakeTinyMedLAMEngines(t *testing.T) string {
	t.Helper()
	man, err := backend.LoadManifest("../../testdata/models/medlam_tiny.onnx")
	if err != nil {
		t.Fatal(err)
	}
	fakeMedLAMEngines, fakeMedLAMONNX = true, man.SHA256
	t.Cleanup(func() { fakeMedLAMEngines, fakeMedLAMONNX = false, "" })
	return man.SHA256
}

// phantomTemplate writes a phantom CT, its labels and a label-name file naming label 1
// "spleen" into dir.
func phantomTemplate(t *testing.T, dir string) (img, labels, names string) {
	t.Helper()
	ph, err := phantom.Generate(phantom.Config{Shape: [3]int{80, 80, 70},
		Spacing: [3]float64{3, 3, 3}, Seed: 2, Noise: 20})
	if err != nil {
		t.Fatal(err)
	}
	img = filepath.Join(dir, "ct.nii.gz")
	if err := nifti.Write(img, ph.Image, nifti.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	labels = filepath.Join(dir, "labels.nii.gz")
	if err := nifti.Write(labels, ph.Labels, nifti.WriteOptions{Datatype: nifti.Uint8}); err != nil {
		t.Fatal(err)
	}
	names = filepath.Join(dir, "names.json")
	if err := os.WriteFile(names, []byte(`{"1": "spleen"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return img, labels, names
}

// TestLocalizeGPUWorker: with the GPU backend chosen (fakes), localize builds the template
// set here (MedLAM on the CPU) and localises the query in a supervised localisation worker
// with the seed, writing the worker's result; a worker that dies is replaced and the query
// retried; an engine built from another ONNX is refused before any worker starts, saying
// how to fix it; a missing query is refused by name before any worker starts.
func TestLocalizeGPUWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: tiny MedLAM over a template")
	}
	dir := t.TempDir()
	crashed := filepath.Join(dir, "crashed")
	fakeGPU(t, crashed)
	sha := fakeTinyMedLAMEngines(t)
	img, labels, names := phantomTemplate(t, dir)
	out := filepath.Join(dir, "boxes.json")
	args := func(query string) []string {
		return []string{"localize", "--models", "../../testdata/models", "--template",
			img + ":" + labels, "--organs", "spleen", "--label-names", names, "--seed", "7",
			"--backend", "gpu", "--engines", filepath.Join(dir, "engines"), "-o", out, query}
	}
	fakeMedLAMONNX = "0123456789abcdef"
	if _, errs, code := runCmd(t, args(img)...); code != 1 ||
		!strings.Contains(errs, "built from ONNX 0123456789ab") ||
		!strings.Contains(errs, "--backend cpu") {
		t.Errorf("engine of another model: exit %d: %s", code, errs)
	}
	fakeMedLAMONNX = sha
	missing := filepath.Join(dir, "missing.nii.gz")
	if _, errs, code := runCmd(t, args(missing)...); code != 1 ||
		!strings.Contains(errs, missing) {
		t.Errorf("missing query: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(crashed); err == nil {
		t.Fatal("a worker was started for a refused run")
	}
	fakeRecord = filepath.Join(dir, "record.txt")
	t.Cleanup(func() { fakeRecord = "" })
	set := filepath.Join(dir, "set.mlts")
	if _, errs, code := runCmd(t, append(args(img), "--save-templates", set)...); code != 0 {
		t.Fatalf("localize: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(crashed); err != nil {
		t.Errorf("the fake worker did not crash once: %v", err)
	}
	// With a template-set file and --batch, the worker is given that file and batch.
	if _, errs, code := runCmd(t, "localize", "--models", "../../testdata/models",
		"--templates-file", set, "--backend", "gpu", "--engines", filepath.Join(dir,
			"engines"), "--batch", "5", "-o", filepath.Join(dir, "again.json"), img); code != 0 {
		t.Fatalf("localize --templates-file: exit %d: %s", code, errs)
	}
	// The first run's cap starts at the engines' largest batch (the fake manifests give no
	// profile: localize.DefaultBatchSize) and is halved after the crash; the job's own
	// batch is left to the engine (0).
	rec, err := os.ReadFile(fakeRecord)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%d 0 templates.json\n5 5 set.mlts\n", localize.DefaultBatchSize/2)
	if string(rec) != want {
		t.Errorf("worker requests:\n%s\nwant:\n%s", rec, want)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var loc localize.Result
	if err := json.Unmarshal(b, &loc); err != nil {
		t.Fatal(err)
	}
	if loc.ModelSHA256 != fakeDeviceModel || loc.Seed != 7 || loc.Query != img ||
		len(loc.Organs) != 1 || loc.Organs[0].Name != "spleen" {
		t.Errorf("localisation %+v, want the fake worker's for %s with seed 7", loc, img)
	}
}

// stripErrs keeps what the test can predict of the attempts.
func stripErrs(as []gpu.Attempt) []gpu.Attempt {
	out := make([]gpu.Attempt, len(as))
	for i, a := range as {
		out[i] = gpu.Attempt{Batch: a.Batch, Crashed: a.Crashed}
	}
	return out
}

// TestDeviceFlags checks the device flags on this machine (no TensorRT, no CUDA build):
// explicit gpu requests fail saying why, bad values are usage errors, and the per-organ
// masks are refused on the GPU backend.
func TestDeviceFlags(t *testing.T) {
	dir := t.TempDir()
	q := filepath.Join(dir, "q.nii.gz")
	boxes := filepath.Join(dir, "boxes.json")
	tpl := "--template=" + q + ":" + q
	cases := []struct {
		name string
		args []string
		gpu  bool // with the fake GPU environment
		code int
		want string
	}{
		{"segment backend gpu", []string{"segment", "--boxes", boxes, "--backend", "gpu", q},
			false, 1, "--backend gpu requested but unavailable"},
		{"segment backend gpu reason", []string{"segment", "--boxes", boxes, "--backend",
			"gpu", q}, false, 1, "built without TensorRT"},
		{"localize backend gpu", []string{"localize", tpl, "--organs", "1", "--backend",
			"gpu", q}, false, 1, "built without TensorRT"},
		{"segment bad backend", []string{"segment", "--boxes", boxes, "--backend", "tpu", q},
			false, 2, "--backend"},
		{"localize bad kernels", []string{"localize", tpl, "--organs", "1", "--kernels",
			"fpga", q}, false, 2, "--kernels"},
	}
	if gpu.CUDABuilt() {
		t.Log("CUDA build: the --kernels gpu case depends on the device")
	} else {
		cases = append(cases, struct {
			name string
			args []string
			gpu  bool
			code int
			want string
		}{"segment kernels gpu", []string{"segment", "--boxes", boxes, "--backend", "cpu",
			"--kernels", "gpu", q}, false, 1, "--kernels gpu requested but unavailable"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.gpu {
				fakeGPU(t, "")
			}
			_, errs, code := runCmd(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, tc.code,
					tc.want)
			}
		})
	}
}

// TestSegmentGPUSAMOfOtherExport: SAM engines not built from the SAM export that --models
// and --sam-name name are refused with --backend gpu, saying how to fix it, and leave SAM
// to the CPU with --backend auto (logged).
func TestSegmentGPUSAMOfOtherExport(t *testing.T) {
	dir := t.TempDir()
	fakeGPU(t, "") // engines whose manifests name no ONNX digest
	shape := [3]int{24, 20, 6}
	q := filepath.Join(dir, "q.nii.gz")
	writeVol(t, q, shape, func(i, j, k int) float32 { return float32(i + j + k) })
	loc := localize.Result{Shape: shape, Organs: []localize.OrganBox{{
		Organ:     localize.Organ{Label: 3, Name: "a"},
		BoxOnGrid: localize.BoxOnGrid{Box: eval.Box{Max: [3]int{5, 6, 2}}}}}}
	b, _ := json.Marshal(loc)
	boxes := filepath.Join(dir, "boxes.json")
	if err := os.WriteFile(boxes, b, 0o644); err != nil {
		t.Fatal(err)
	}
	args := func(mode string) []string {
		return []string{"segment", "--boxes", boxes, "--backend", mode, "--engines",
			filepath.Join(dir, "engines"), "--models", "../../testdata/models", "--sam-name",
			"sam_tiny", "-d", dir, q}
	}
	_, errs, code := runCmd(t, args("gpu")...)
	if code == 0 || !strings.Contains(errs, "sam-encoder engine") ||
		!strings.Contains(errs, "sam_tiny-encoder.onnx") || !strings.Contains(errs, "rebuild") {
		t.Errorf("gpu: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "q_mask.nii.gz")); err == nil {
		t.Error("a refused run wrote a mask")
	}
	// auto: SAM here on ONNX Runtime, which this machine may lack (the run then fails
	// opening it, which shows the same choice).
	out, errs, code := runCmd(t, args("auto")...)
	var rep segmentReport
	switch {
	case code != 0 && strings.Contains(errs, "ONNX Runtime library"):
		t.Logf("SAM on the CPU not run: %s", errs)
	case code != 0:
		t.Errorf("auto: exit %d: %s", code, errs)
	case json.Unmarshal([]byte(out), &rep) != nil || len(rep.Queries) != 1 ||
		rep.Queries[0].Backend != "cpu":
		t.Errorf("auto: report %s, want SAM on the CPU", out)
	}
}
