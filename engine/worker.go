package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// WorkerCommand returns the command that starts a GPU worker process for work: a program
// that serves gpu.ServeWorker with a gpu.PipelineWorker opened for that work, such as the
// gpu-worker subcommand of a cuda,tensorrt build of medlsam-fast (WorkerBinary). Its stdin
// and stdout carry the protocol; its stderr is this process's unless the command sets it.
type WorkerCommand func(work gpu.Work) *exec.Cmd

// WorkerBinary returns the WorkerCommand that runs `binary gpu-worker --engines engines
// --work WORK`.
func WorkerBinary(binary, engines string) WorkerCommand {
	return func(w gpu.Work) *exec.Cmd {
		return exec.Command(binary, gpu.WorkerArg, "--engines", engines, "--work", string(w))
	}
}

// deviceWorker runs an Engine's queries in a supervised GPU worker process on the device
// pipeline (engine/gpu): the query is read there into pinned memory, copied to the device
// once, localised (and segmented) there; the boxes come back, and the label map through a
// file. A fault in CUDA or TensorRT kills the worker, not the caller: the supervisor starts
// a new one and retries with half the batch.
type deviceWorker struct {
	sup  *gpu.Supervisor
	work gpu.Work
	opt  gpu.LocalizeOptions
	dir  string                           // temporary files (removed by close)
	sets map[*localize.TemplateSet]string // template sets saved for the worker
	n    int                              // files made in dir
}

// newDeviceWorker prepares a worker for the engines of c (started at the first job): a
// segmentation worker when c has both SAM engines, else a localisation one. cfg gives the
// localisation's seed, coarse crops and batch (0: the engine's optimum); segBatch the SAM
// encoder batch (0: what fits in c's free memory).
func newDeviceWorker(cmd WorkerCommand, c gpu.Choice, cfg localize.Config, segBatch int,
	log *slog.Logger) (*deviceWorker, error) {
	dir, err := os.MkdirTemp("", "medlsam-engine-")
	if err != nil {
		return nil, fmt.Errorf("engine: gpu worker: %w", err)
	}
	w := &deviceWorker{work: gpu.WorkLocalise, dir: dir,
		sets: map[*localize.TemplateSet]string{},
		opt:  gpu.LocalizeOptions{Seed: cfg.Seed, CoarseCrops: cfg.CoarseCrops, Batch: cfg.BatchSize}}
	// The first batch: the SAM encoder's, or the cap on MedLAM patches per call, which
	// starts at the engines' largest so that the first try is not capped.
	batch := cfg.BatchSize
	if batch <= 0 {
		batch = c.LocalizeBatchCap()
	}
	if c.Engines["sam-encoder"] != "" && c.Engines["sam-decoder"] != "" {
		w.work, batch = gpu.WorkSegment, segBatch
		if batch <= 0 {
			batch = c.EncoderBatch
		}
	}
	w.sup = &gpu.Supervisor{Command: func() *exec.Cmd { return cmd(w.work) },
		Batch: max(batch, 1), Log: log}
	log.Info("engine: queries run in a supervised GPU worker", "work", string(w.work),
		"gpu", c.Device.Name)
	return w, nil
}

// close stops the worker and removes the temporary files.
func (w *deviceWorker) close() error {
	return errors.Join(w.sup.Close(), os.RemoveAll(w.dir))
}

// temp returns a new path in the worker's directory ending in suffix.
func (w *deviceWorker) temp(suffix string) string {
	w.n++
	return filepath.Join(w.dir, fmt.Sprintf("%d%s", w.n, suffix))
}

// setFile returns the file of ts for the worker, saving it at its first use. A template set
// must not change once used.
func (w *deviceWorker) setFile(ts *localize.TemplateSet) (string, error) {
	if f, ok := w.sets[ts]; ok {
		return f, nil
	}
	f := w.temp(".mlts")
	if err := ts.Save(f); err != nil {
		return "", err
	}
	w.sets[ts] = f
	return f, nil
}

// queryFile returns the file the worker reads the query from: source itself when v is nil,
// else v written (float32, with hdr's geometry when given) to a temporary file, removed by
// the returned function.
func (w *deviceWorker) queryFile(v *volume.Volume, hdr *nifti.Header,
	source string) (string, func(), error) {
	if v == nil {
		if source == "" {
			return "", nil, errors.New("engine: no query volume and no query file given")
		}
		return source, func() {}, nil
	}
	f := w.temp(".nii")
	if err := nifti.Write(f, v, nifti.WriteOptions{Like: hdr}); err != nil {
		return "", nil, fmt.Errorf("engine: %s: volume for the gpu worker: %w", source, err)
	}
	return f, func() { os.Remove(f) }, nil
}

// run sends one job and returns its result and the attempts it took.
func (w *deviceWorker) run(ctx context.Context, job gpu.Job) (gpu.Result, []gpu.Attempt,
	error) {
	out, err := w.sup.Do(ctx, gpu.Batch{Jobs: []gpu.Job{job}})
	if err != nil {
		return gpu.Result{}, out.Attempts, fmt.Errorf("engine: gpu worker: %w", err)
	}
	var res []gpu.Result
	if err := json.Unmarshal(out.Result, &res); err != nil {
		return gpu.Result{}, out.Attempts, fmt.Errorf("engine: gpu worker answer: %w", err)
	}
	if len(res) != 1 {
		return gpu.Result{}, out.Attempts, fmt.Errorf("engine: gpu worker answered %d "+
			"results for one query", len(res))
	}
	if res[0].Err != "" {
		return res[0], out.Attempts, fmt.Errorf("engine: %s", res[0].Err)
	}
	return res[0], out.Attempts, nil
}

// localize localises the query (v, or the file source) with ts in the worker.
func (w *deviceWorker) localize(ctx context.Context, ts *localize.TemplateSet,
	v *volume.Volume, hdr *nifti.Header, source string) (*localize.Result, error) {
	set, err := w.setFile(ts)
	if err != nil {
		return nil, err
	}
	q, done, err := w.queryFile(v, hdr, source)
	if err != nil {
		return nil, err
	}
	defer done()
	opt := w.opt
	r, _, err := w.run(ctx, gpu.Job{Query: q, Templates: set, Localize: &opt})
	if err != nil {
		return nil, err
	}
	if r.Localization == nil {
		return nil, fmt.Errorf("engine: gpu worker gave no localisation for %s", source)
	}
	r.Localization.Query = source
	return r.Localization, nil
}

// segment localises (with ts) or takes loc's boxes, and segments the query in the worker,
// which writes the label map to opt.Mask (or a temporary file); the map is read back for
// the result. It needs a segmentation worker.
func (w *deviceWorker) segment(ctx context.Context, ts *localize.TemplateSet,
	loc *localize.Result, v *volume.Volume, hdr *nifti.Header, source string,
	opt SegmentOptions) (_ *SegmentResult, err error) {
	start := time.Now()
	res := &SegmentResult{Query: source}
	if loc != nil {
		shape := [3]int{}
		if v != nil {
			shape = v.Shape
		} else if h, err := nifti.Read(source, nifti.ReadOptions{HeaderOnly: true}); err != nil {
			return nil, fmt.Errorf("engine: query: %w", err)
		} else {
			shape = h.Volume.Shape
		}
		if loc.Shape != shape {
			return nil, fmt.Errorf("engine: localisation of %q is for a grid of shape %v, "+
				"query %s has shape %v", loc.Query, loc.Shape, source, shape)
		}
	}
	q, done, err := w.queryFile(v, hdr, source)
	if err != nil {
		return nil, err
	}
	defer done()
	job := gpu.Job{Query: q, Mask: opt.Mask}
	if job.Mask == "" {
		job.Mask = w.temp("_mask.nii.gz")
		defer os.Remove(job.Mask)
	}
	if ts != nil {
		if job.Templates, err = w.setFile(ts); err != nil {
			return nil, err
		}
		o := w.opt
		job.Localize = &o
	} else if job.Organs, err = w.organsFile(loc, source); err != nil {
		return nil, err
	}
	defer func() {
		if job.Organs != "" {
			os.Remove(job.Organs)
		}
	}()
	t := time.Now()
	r, attempts, err := w.run(ctx, job)
	if err != nil {
		return nil, err
	}
	// From here the worker has written opt.Mask: a failure removes what was written.
	defer func() {
		if err != nil && opt.Mask != "" {
			for _, f := range append([]string{opt.Mask}, res.Files...) {
				os.Remove(f)
			}
		}
	}()
	res.Times.Segment = msSince(t)
	if ts != nil {
		if r.Localization == nil {
			return nil, fmt.Errorf("engine: gpu worker gave no localisation for %s", source)
		}
		loc = r.Localization
		loc.Query = source
	}
	m, err := nifti.Read(job.Mask, nifti.ReadOptions{})
	if err != nil {
		return nil, fmt.Errorf("engine: gpu worker output: %w", err)
	}
	if loc.Shape != m.Volume.Shape {
		return nil, fmt.Errorf("engine: gpu worker wrote a label map of shape %v for %s, "+
			"localised on a grid of %v", m.Volume.Shape, source, loc.Shape)
	}
	if opt.Mask != "" {
		res.Files = []string{opt.Mask}
	}
	res.Labels, res.Localization = m.Volume, loc
	res.Segmentation = segment.LabelReport(source, m.Volume, segment.FromLocalization(loc),
		attempts[len(attempts)-1].Batch)
	if opt.Mask != "" && opt.PerOrgan {
		t := time.Now()
		var labels []int
		for _, o := range res.Segmentation.Organs {
			labels = append(labels, o.Label)
		}
		files, err := segment.WriteOrganMasks(m.Volume, labels, m.Header, opt.Mask)
		res.Files = append(res.Files, files...)
		if err != nil {
			return nil, fmt.Errorf("engine: mask of %s: %w", source, err)
		}
		res.Times.Write = msSince(t)
	}
	res.Times.Total = msSince(start)
	return res, nil
}

// organsFile writes loc's boxes for the worker (gpu.Organ JSON) and returns the file.
func (w *deviceWorker) organsFile(loc *localize.Result, source string) (string, error) {
	seg := segment.FromLocalization(loc)
	if err := segment.ValidateOrgans(seg, loc.Shape); err != nil {
		return "", fmt.Errorf("engine: %s: %w", source, err)
	}
	if len(seg) == 0 {
		return "", fmt.Errorf("engine: %s: the localisation holds no organ to segment",
			source)
	}
	organs := make([]gpu.Organ, 0, len(seg))
	for _, o := range seg {
		organs = append(organs, gpu.Organ{Label: o.Label, Name: o.Name, Box: o.Box,
			Chunks: o.Chunks})
	}
	b, err := json.Marshal(organs)
	if err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	f := w.temp("_organs.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	return f, nil
}
