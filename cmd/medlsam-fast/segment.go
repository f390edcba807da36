package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/ort"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
)

func init() {
	register(command{
		name:    "segment",
		summary: "localise organs with MedLAM, then segment them with SAM/MedSAM",
		run:     runSegment,
	})
}

// segmentReport is the JSON written by the segment subcommand: per query, the
// localisation (absent with --boxes) and the segmentation report.
type segmentReport struct {
	Queries []segmentQuery `json:"queries"`
}

type segmentQuery struct {
	Query        string           `json:"query"`
	Output       []string         `json:"outputs"`
	Localization *localize.Result `json:"localization,omitempty"`
	Segmentation segment.Report   `json:"segmentation"`
	// Backend is where SAM ran: "cpu" (ONNX Runtime, in this process) or "tensorrt" (the
	// supervised GPU worker, whose attempts at the batch are listed).
	Backend     string        `json:"backend"`
	GPUAttempts []gpu.Attempt `json:"gpu_attempts,omitempty"`
}

func runSegment(args []string, stdout io.Writer) (err error) {
	fs := newFlags("segment", "QUERY.nii[.gz]...", stdout)
	var lf localizeFlags
	lf.addShared(fs)
	boxes := fs.String("boxes", "", "a localize JSON result: segment its boxes, no MedLAM "+
		"(one query only)")
	samName := fs.String("sam-name", "sam", "SAM model base name: NAME-encoder.onnx and "+
		"NAME-decoder.onnx (or NAME-decoder-public.onnx) in --models; on the GPU backend "+
		"the SAM engines must be built from them when they are there")
	samBatch := fs.Int("sam-batch", segment.DefaultBatchSize, "slices per encoder call")
	outDir := fs.StringP("out-dir", "d", ".", "directory for the masks")
	perOrgan := fs.Bool("per-organ", false, "also write one binary mask per organ")
	report := fs.StringP("out", "o", "", "write the JSON report here (default: stdout)")
	summary := fs.Bool("summary", false, "print a summary table on stdout instead of the "+
		"JSON (which --out still writes)")
	gpuLocalize := fs.Bool("gpu-localize", true, "with the GPU backend and a MedLAM engine "+
		"among --engines, localise in the GPU worker, where the volume stays on the device; "+
		"the template set is loaded, or built from --template pairs with MedLAM on the CPU, "+
		"in this process (false: localise in this process)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: no query given", errUsage)
	}
	if *boxes != "" && fs.NArg() > 1 {
		return fmt.Errorf("%w: --boxes goes with exactly one query", errUsage)
	}
	if *boxes == "" && (len(lf.templates) == 0) == (lf.templateSet == "") {
		return fmt.Errorf("%w: give --boxes, or either --template pairs or --templates-file",
			errUsage)
	}
	if *boxes == "" {
		if err := lf.check(); err != nil {
			return err
		}
	}
	_, backendMode, err := lf.gpu.parse()
	if err != nil {
		return err
	}
	masks := map[string]string{}
	for _, q := range fs.Args() {
		m := maskPath(*outDir, q)
		if prev, ok := masks[m]; ok {
			return fmt.Errorf("%w: queries %s and %s would both write %s", errUsage, prev, q, m)
		}
		masks[m] = q
	}
	ctx := context.Background()
	// SAM's backend: TensorRT engines in the supervised worker, or ONNX Runtime here.
	env := gpuEnv(lf.gpu.engines, gpu.SegmentModels)
	env.Optional = slices.Concat(gpu.LocalizeModels, gpu.LocalizeOptional)
	choice, err := gpu.Select(backendMode, env, slog.Default())
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	onGPU := choice.Backend == gpu.TensorRT
	if onGPU { // the engines must be of the SAM --models holds, when it holds one
		enc := filepath.Join(lf.models, *samName+"-encoder.onnx")
		why := choice.NotBuiltFrom("sam-encoder", enc)
		if why == "" {
			why = choice.NotBuiltFrom("sam-decoder",
				filepath.Join(lf.models, *samName+"-decoder.onnx"))
		}
		switch {
		case why != "" && backendMode == gpu.ModeGPU:
			return fmt.Errorf("segment: %w: %s: rebuild the SAM engines from that export "+
				"(build/engines/build.sh) or give --sam-name or --models another SAM",
				gpu.ErrGPURequested, why)
		case why != "":
			slog.Info("segment: SAM runs on the CPU", "reason", why)
			onGPU = false
		}
	}
	// The worker localises when it has MedLAM.
	workerLocalises := onGPU && *boxes == "" && *gpuLocalize && choice.Engines["medlam"] != ""
	if onGPU && *boxes == "" && *gpuLocalize && !workerLocalises {
		slog.Info("segment: localising in this process", "reason", "no MedLAM engine in "+
			lf.gpu.engines)
	}
	kern, err := lf.gpu.openKernels()
	if err != nil {
		return err
	}
	defer kern.Close()
	var sam segment.Models
	if !onGPU {
		opt := ort.Options{LibraryPath: lf.ortLib, IntraOpThreads: lf.threads,
			BatchInvariant: true}
		var closeSAM func()
		if sam, closeSAM, err = openSAM(lf.models, *samName, opt); err != nil {
			return err
		}
		defer closeSAM()
	}

	var locate locator
	var onDevice *deviceLocalisation
	if *boxes != "" {
		if locate, err = boxesLocator(*boxes); err != nil {
			return err
		}
	} else {
		ef := lf
		if workerLocalises { // MedLAM runs here only to build or load the template set
			ef.gpu.backend = string(gpu.CPU)
		}
		eng, err := ef.openEngine(kern)
		if err != nil {
			return err
		}
		// Refused here, before templates are built and any query read, rather than by the
		// worker for every query.
		if workerLocalises {
			if err := checkMedLAMEngine(choice, eng, lf.models, "localise here with "+
				"--gpu-localize=false"); err != nil {
				eng.Close()
				return fmt.Errorf("segment: %w", err)
			}
		}
		defer eng.Close()
		ts, err := lf.loadTemplates(ctx, eng)
		if err != nil {
			return err
		}
		locate = func(path string, img *nifti.Image) (*localize.Result, error) {
			return eng.LocalizeVolume(ctx, ts, img.Volume, path)
		}
		if workerLocalises { // ts is of eng's model (LoadTemplates checks), the engine's
			opt := gpu.LocalizeOptions{Seed: lf.seed} // batch: the engine's optimum
			if fs.Changed("batch") {
				opt.Batch = lf.batch
			}
			onDevice = &deviceLocalisation{set: ts, options: opt}
		}
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return fmt.Errorf("segment: output directory: %w", err)
	}
	// A failed run leaves none of the masks it wrote: they would not match any report.
	var written []string
	defer func() {
		if err != nil {
			for _, f := range written {
				os.Remove(f)
			}
		}
	}()
	var rep segmentReport
	if onGPU {
		batch := choice.EncoderBatch
		if fs.Changed("sam-batch") {
			batch = *samBatch
		}
		rep, err = segmentOnGPU(ctx, fs.Args(), locate, onDevice, *outDir, lf.gpu.engines,
			batch, *perOrgan)
		for _, q := range rep.Queries {
			written = append(written, q.Output...)
		}
		if err != nil {
			return err
		}
		if *boxes != "" {
			rep.Queries[0].Localization = nil
		}
	}
	for _, path := range fs.Args() {
		if onGPU {
			break
		}
		img, err := nifti.Read(path, nifti.ReadOptions{})
		if err != nil {
			return err
		}
		loc, err := locate(path, img)
		if err != nil {
			return err
		}
		res, err := segment.Segment(ctx, sam, img.Volume, path, segment.FromLocalization(loc),
			segment.Config{BatchSize: *samBatch, Logger: slog.Default(), Kernels: kern})
		if err != nil {
			return err
		}
		files, err := segment.Write(res, img.Header, maskPath(*outDir, path), *perOrgan)
		written = append(written, files...)
		if err != nil {
			return err
		}
		q := segmentQuery{Query: path, Output: files, Segmentation: res.Report,
			Backend: string(gpu.CPU)}
		if *boxes == "" {
			q.Localization = loc
		}
		rep.Queries = append(rep.Queries, q)
	}
	var sum func(io.Writer) error
	if *summary {
		sum = func(w io.Writer) error { return writeSegmentSummary(w, rep) }
	}
	return writeReport(stdout, rep, *report, sum)
}

// locator returns the localisation of the query read from path.
type locator func(path string, img *nifti.Image) (*localize.Result, error)

// boxesLocator reads a localize JSON result from path; the locator it returns gives that
// result for a query of the same shape whose boxes fit it, and an error naming the file
// otherwise.
func boxesLocator(path string) (locator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	var r localize.Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("segment: boxes file %s: %w", path, err)
	}
	return func(query string, img *nifti.Image) (*localize.Result, error) {
		if r.Shape != img.Volume.Shape {
			return nil, fmt.Errorf("segment: boxes file %s is for shape %v, query %s is %v",
				path, r.Shape, query, img.Volume.Shape)
		}
		if err := segment.ValidateOrgans(segment.FromLocalization(&r), r.Shape); err != nil {
			return nil, fmt.Errorf("boxes file %s: %w", path, err)
		}
		return &r, nil
	}, nil
}

// openSAM opens NAME-encoder.onnx and NAME-decoder.onnx (else NAME-decoder-public.onnx)
// from dir. The returned function closes them.
func openSAM(dir, name string, opt ort.Options) (segment.Models, func(), error) {
	enc, err := ort.Open(filepath.Join(dir, name+"-encoder.onnx"), opt)
	if err != nil {
		return segment.Models{}, nil, err
	}
	decPath := filepath.Join(dir, name+"-decoder.onnx")
	if _, err := os.Stat(decPath); err != nil {
		decPath = filepath.Join(dir, name+"-decoder-public.onnx")
	}
	dec, err := ort.Open(decPath, opt)
	if err != nil {
		enc.Close()
		return segment.Models{}, nil, err
	}
	return segment.Models{Encoder: enc, Decoder: dec}, func() {
		dec.Close()
		enc.Close()
	}, nil
}

// maskPath is where the label map of query goes in outDir: <base>_mask.nii.gz.
func maskPath(outDir, query string) string {
	base := filepath.Base(query)
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".gz"), ".nii")
	return filepath.Join(outDir, base+"_mask.nii.gz")
}

// workerCommand returns how the supervisor starts a GPU worker for work on the engines in
// dir (this binary's hidden gpu-worker subcommand); tests replace it with a fake worker.
var workerCommand = func(dir string, work gpu.Work) func() *exec.Cmd {
	return gpu.WorkerCommand("--engines", dir, "--work", string(work))
}

// deviceLocalisation is a template set for the GPU worker to localise with, and the options.
type deviceLocalisation struct {
	set     *localize.TemplateSet
	options gpu.LocalizeOptions
}

// segmentOnGPU segments the queries with the TensorRT engines in engines: all queries go
// as one batch to a supervised worker process (gpu.Supervisor, starting `medlsam-fast
// gpu-worker --engines DIR`), which runs the device pipeline (one copy of each volume to the
// GPU; SAM preprocessing, encoder, decoder and mask post-processing on the device; the label
// map written to outDir). With onDevice, the worker also localises each query on the device
// with that template set (saved to a file for it); otherwise each query is localised here
// (locate) and its boxes written to a JSON file for the worker. The supervisor restarts a
// crashed worker and retries with a smaller encoder batch (starting at batch). The label
// maps are read back to count each organ's voxels for the report, and with perOrgan to
// write one binary mask per organ beside each.
func segmentOnGPU(ctx context.Context, queries []string, locate locator,
	onDevice *deviceLocalisation, outDir, engines string, batch int,
	perOrgan bool) (segmentReport, error) {
	tmp, err := os.MkdirTemp("", "medlsam-organs-")
	if err != nil {
		return segmentReport{}, fmt.Errorf("segment: %w", err)
	}
	defer os.RemoveAll(tmp)
	var rep segmentReport
	var jobs []gpu.Job
	var templates string
	if onDevice != nil {
		templates = filepath.Join(tmp, "templates.json")
		if err := onDevice.set.Save(templates); err != nil {
			return rep, fmt.Errorf("segment: %w", err)
		}
	}
	for i, path := range queries {
		// When the worker localises, only the header is needed here (shape and spacing for
		// the report): the voxels are read once, by the worker, into pinned memory.
		img, err := nifti.Read(path, nifti.ReadOptions{HeaderOnly: onDevice != nil})
		if err != nil {
			return rep, err
		}
		job := gpu.Job{Query: path, Mask: maskPath(outDir, path)}
		var loc *localize.Result
		if onDevice != nil {
			opt := onDevice.options
			job.Templates, job.Localize = templates, &opt
		} else if job.Organs, loc, err = localiseForWorker(path, img, locate, tmp,
			i); err != nil {
			return rep, err
		}
		jobs = append(jobs, job)
		rep.Queries = append(rep.Queries, segmentQuery{Query: path,
			Localization: loc, Backend: string(gpu.TensorRT),
			Segmentation: segment.Report{Query: path, Shape: img.Volume.Shape,
				Spacing: img.Volume.Spacing}})
	}
	sup := &gpu.Supervisor{Command: workerCommand(engines, gpu.WorkSegment), Batch: batch,
		Log: slog.Default()}
	defer sup.Close()
	results, attempts, err := sup.RunJobs(ctx, jobs)
	if err != nil {
		return rep, fmt.Errorf("segment: gpu worker: %w", err)
	}
	// Every label map the worker wrote is an output from here on, so that a failure below
	// leaves none of them behind (the caller removes the outputs of a failed run).
	for i, r := range results {
		if r.Err == "" {
			rep.Queries[i].Output = []string{jobs[i].Mask}
		}
	}
	var failed []string
	for i, r := range results {
		q := &rep.Queries[i]
		q.GPUAttempts = attempts
		q.Segmentation.Batch = attempts[len(attempts)-1].Batch
		if r.Err != "" {
			failed = append(failed, r.Err)
			continue
		}
		if onDevice != nil {
			if r.Localization == nil {
				return rep, fmt.Errorf("segment: gpu worker gave no localisation for %s",
					q.Query)
			}
			q.Localization = r.Localization
		}
		m, err := nifti.Read(jobs[i].Mask, nifti.ReadOptions{})
		if err != nil {
			return rep, fmt.Errorf("segment: gpu worker output: %w", err)
		}
		if m.Volume.Shape != q.Segmentation.Shape {
			return rep, fmt.Errorf("segment: gpu worker wrote %s of shape %v for a query "+
				"of shape %v", jobs[i].Mask, m.Volume.Shape, q.Segmentation.Shape)
		}
		q.Segmentation = segment.LabelReport(q.Query, m.Volume,
			segment.FromLocalization(q.Localization), q.Segmentation.Batch)
		if perOrgan {
			files, err := segment.WriteOrganMasks(m.Volume, q.Segmentation.Organs, m.Header,
				jobs[i].Mask)
			q.Output = append(q.Output, files...)
			if err != nil {
				return rep, err
			}
		}
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("segment: %d of %d queries failed on the GPU: %s", len(failed),
			len(jobs), strings.Join(failed, "; "))
	}
	return rep, nil
}

// localiseForWorker localises the query read from path here and writes its boxes to the
// i-th organs file in dir, for a worker that segments given boxes.
func localiseForWorker(path string, img *nifti.Image, locate locator, dir string,
	i int) (string, *localize.Result, error) {
	loc, err := locate(path, img)
	if err != nil {
		return "", nil, err
	}
	organs, err := gpu.OrgansOf(loc, img.Volume.Shape, path)
	if err != nil {
		return "", nil, fmt.Errorf("segment: %w", err)
	}
	b, err := json.Marshal(organs)
	if err != nil {
		return "", nil, fmt.Errorf("segment: %w", err)
	}
	file := filepath.Join(dir, fmt.Sprintf("organs-%d.json", i))
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return "", nil, fmt.Errorf("segment: %w", err)
	}
	return file, loc, nil
}
