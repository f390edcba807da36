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
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// WorkerCommand returns the command that starts a GPU worker process for work on the
// engines in the directory engines (absolute): a program that serves gpu.ServeWorker with
// a gpu.PipelineWorker opened for that work, and answers gpu.WorkSelect with
// gpu.ServeSelect, such as the gpu-worker subcommand of a cuda,tensorrt build of
// medlsam-fast (WorkerBinary). Its stdin and stdout carry the protocol; its stderr is this
// process's unless the command sets it (for WorkSelect, it is kept for the reason given
// when the worker fails). It runs as this process's user (it reads the
// temporary files the Engine writes with mode 0600).
type WorkerCommand func(work gpu.Work, engines string) *exec.Cmd

// WorkerBinary returns the WorkerCommand that runs `binary gpu-worker --engines ENGINES
// --work WORK`.
func WorkerBinary(binary string) WorkerCommand {
	return func(w gpu.Work, engines string) *exec.Cmd {
		return exec.Command(binary, gpu.WorkerArg, "--engines", engines, "--work", string(w))
	}
}

// workerSelectTimeout bounds the worker's backend choice at Open, which reads NVML and the
// engines' manifests: seconds at most.
const workerSelectTimeout = 2 * time.Minute

// maxWorkerSets bounds the template sets kept saved for the worker; the oldest is dropped
// (and its file removed) first.
const maxWorkerSets = 8

// chooseWorker is chooseBackend with Options.Worker: the worker, not this process, checks
// the GPU, its own CUDA and TensorRT build and the engines (gpu.SelectInWorker), so that a
// program built without CUDA and TensorRT can drive a cuda,tensorrt worker. It returns the opener of this
// process's models (MedLAM for the template sets; SAM when the worker does not segment).
func (e *Engine) chooseWorker(opt Options, mode gpu.Mode, cpu func() Opener) (Opener, error) {
	engines := opt.Engines
	if engines != "" {
		abs, err := filepath.Abs(engines)
		if err != nil {
			return nil, fmt.Errorf("engine: engines directory %s: %w", engines, err)
		}
		engines = abs
	}
	command := func(w gpu.Work) *exec.Cmd { return opt.Worker(w, engines) }
	ctx, cancel := context.WithTimeout(context.Background(), workerSelectTimeout)
	defer cancel()
	c, err := gpu.SelectInWorker(ctx, mode, command(gpu.WorkSelect), e.cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if c.Backend != gpu.TensorRT {
		return cpu(), nil
	}
	why := e.samHere(c, opt.Segment.BatchSize)
	if why != "" {
		e.cfg.Logger.Info("engine: SAM runs in this process", "reason", why)
	}
	e.dw = newDeviceWorker(command, c, e.cfg, why == "", opt.Segment.BatchSize,
		e.cfg.Logger)
	e.closing, e.closeStart = context.WithCancel(context.Background())
	e.backend, e.engines = string(gpu.TensorRT), c.Manifests
	return cpu(), nil
}

// workerCall starts a call into the GPU worker: it takes the Engine's lock and returns the
// call's context (ctx, also ended by Close, which then fails the job with ErrClosed) and
// end, which ends the call and unlocks. Once Close is called (it may be waiting for the
// lock) it returns ErrClosed, unlocked.
func (e *Engine) workerCall(ctx context.Context) (_ context.Context, end func(), _ error) {
	e.mu.Lock()
	if e.closing.Err() != nil {
		e.mu.Unlock()
		return nil, nil, ErrClosed
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(e.closing, func() { cancel(ErrClosed) })
	return ctx, func() {
		stop()
		cancel(nil)
		e.mu.Unlock()
	}, nil
}

// samHere says why SAM cannot run in the worker on the engines of c ("" when it can): no
// SAM engines, no encoder batch that fits (segBatch 0: the choice's), or engines built
// from another SAM than the one this Engine would open (when the models directory has one).
func (e *Engine) samHere(c gpu.Choice, segBatch int) string {
	if c.Engines[samEncoder] == "" || c.Engines[samDecoder] == "" {
		return "no SAM encoder and decoder engines"
	}
	if segBatch <= 0 && c.EncoderBatch <= 0 {
		return fmt.Sprintf("no SAM encoder batch fits in the free memory of %s",
			c.Device.Name)
	}
	name, err := findSAM(e.dir, e.samName)
	switch {
	case errors.Is(err, errNoSAM):
		return "" // no SAM export here: the engines are the model
	case err != nil:
		return err.Error() // SAM stays here, where OpenSAM reports it
	}
	if why := c.NotBuiltFrom(samEncoder, filepath.Join(e.dir, name+suffixEncoder)); why != "" {
		return why
	}
	// A directory with only the public-layout decoder has nothing to compare.
	return c.NotBuiltFrom(samDecoder, filepath.Join(e.dir, name+suffixDecoder))
}

// deviceWorker runs an Engine's queries in a supervised GPU worker process on the device
// pipeline (engine/gpu): the query is read there into pinned memory, copied to the device
// once, localised (and segmented) there; the boxes come back, and the label map through a
// file. A fault in CUDA or TensorRT kills the worker, not the caller: the supervisor starts
// a new one and retries with half the batch. Its methods run under the Engine's lock.
type deviceWorker struct {
	sup  *gpu.Supervisor
	work gpu.Work
	opt  gpu.LocalizeOptions
	dir  string // temporary files (removed by close)
	// sets are the template sets saved for the worker, the most recently used last.
	sets []savedSet
	n    int // files made in dir
}

// savedSet is a template set and the file it was saved to for the worker.
type savedSet struct {
	ts   *localize.TemplateSet
	file string
}

// newDeviceWorker prepares a worker for the engines of c (started at the first job): a
// segmentation worker with segment, else a localisation one. cfg gives the localisation's
// seed, coarse crops and batch (0: the engine's optimum); segBatch the SAM encoder batch
// (0: what fits in c's free memory).
func newDeviceWorker(cmd func(gpu.Work) *exec.Cmd, c gpu.Choice, cfg localize.Config,
	segment bool, segBatch int, log *slog.Logger) *deviceWorker {
	w := &deviceWorker{work: gpu.WorkLocalise,
		opt: gpu.LocalizeOptions{Seed: cfg.Seed, CoarseCrops: cfg.CoarseCrops,
			Batch: cfg.BatchSize}}
	// The first batch: the SAM encoder's, or the cap on MedLAM patches per call, which
	// starts at the engines' largest so that the first try is not capped.
	batch := cfg.BatchSize
	if batch <= 0 {
		batch = c.LocalizeBatchCap()
	}
	if segment {
		w.work, batch = gpu.WorkSegment, segBatch
		if batch <= 0 {
			batch = c.EncoderBatch
		}
	}
	w.sup = &gpu.Supervisor{Command: func() *exec.Cmd { return cmd(w.work) },
		Batch: max(batch, 1), Log: log}
	log.Info("engine: queries run in a supervised GPU worker", "work", string(w.work),
		"gpu", c.Device.Name)
	return w
}

// close stops the worker and removes the temporary files.
func (w *deviceWorker) close() error {
	err := w.sup.Close()
	if w.dir != "" {
		err = errors.Join(err, os.RemoveAll(w.dir))
	}
	return err
}

// temp returns a new path in the worker's directory (made at the first call) ending in
// suffix.
func (w *deviceWorker) temp(suffix string) (string, error) {
	if w.dir == "" {
		dir, err := os.MkdirTemp("", "medlsam-engine-")
		if err != nil {
			return "", fmt.Errorf("engine: gpu worker files: %w", err)
		}
		w.dir = dir
	}
	w.n++
	return filepath.Join(w.dir, fmt.Sprintf("%d%s", w.n, suffix)), nil
}

// setFile returns the file of ts for the worker, saving it at its first use; the least
// recently used of more than maxWorkerSets sets is dropped. A template set must not change
// once used (its file is not saved again).
func (w *deviceWorker) setFile(ts *localize.TemplateSet) (string, error) {
	for i, s := range w.sets {
		if s.ts == ts {
			w.sets = append(append(w.sets[:i:i], w.sets[i+1:]...), s)
			return s.file, nil
		}
	}
	f, err := w.temp(".mlts")
	if err != nil {
		return "", err
	}
	if err := ts.Save(f); err != nil {
		os.Remove(f)
		return "", fmt.Errorf("engine: template set for the gpu worker: %w", err)
	}
	if len(w.sets) == maxWorkerSets {
		os.Remove(w.sets[0].file)
		w.sets = slices.Delete(w.sets, 0, 1)
	}
	w.sets = append(w.sets, savedSet{ts: ts, file: f})
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
		abs, err := filepath.Abs(source) // the worker's directory may be another
		if err != nil {
			return "", nil, fmt.Errorf("engine: query %s: %w", source, err)
		}
		return abs, func() {}, nil
	}
	f, err := w.temp(".nii")
	if err != nil {
		return "", nil, err
	}
	if err := nifti.Write(f, v, nifti.WriteOptions{Like: hdr}); err != nil {
		return "", nil, fmt.Errorf("engine: %s: volume for the gpu worker: %w", source, err)
	}
	return f, func() { os.Remove(f) }, nil
}

// hiddenSeq numbers the hidden masks of this process (hiddenBeside).
var hiddenSeq atomic.Uint64

// hiddenBeside checks that mask can be written (a NIfTI name in a directory that exists)
// and returns the absolute path of a hidden file beside it, unique in this process, for the
// worker to write the label map to before it is renamed to mask.
func hiddenBeside(mask string) (string, error) {
	if !strings.HasSuffix(mask, ".nii") && !strings.HasSuffix(mask, ".nii.gz") {
		return "", fmt.Errorf("engine: mask %s: the name must end in .nii or .nii.gz", mask)
	}
	abs, err := filepath.Abs(mask)
	if err != nil {
		return "", fmt.Errorf("engine: mask %s: %w", mask, err)
	}
	dir := filepath.Dir(abs)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf("engine: mask %s: no directory %s", mask, dir)
	}
	return filepath.Join(dir, fmt.Sprintf(".medlsam-%d-%d-%s", os.Getpid(),
		hiddenSeq.Add(1), filepath.Base(abs))), nil
}

// run sends one job for the query source and returns its result and the attempts it took.
// The worker's error names source and mask (when given), not the files it was handed.
func (w *deviceWorker) run(ctx context.Context, job gpu.Job, source, mask string) (gpu.Result,
	[]gpu.Attempt, error) {
	res, attempts, err := w.sup.RunJobs(ctx, []gpu.Job{job})
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrClosed) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
		return gpu.Result{}, attempts, fmt.Errorf("engine: %s: gpu worker: %w", source, err)
	}
	if msg := res[0].Err; msg != "" {
		var names []string
		if source != "" && job.Query != source {
			names = append(names, job.Query, source)
		}
		if mask != "" && job.Mask != mask {
			names = append(names, job.Mask, mask)
		}
		msg = strings.NewReplacer(names...).Replace(msg)
		return res[0], attempts, fmt.Errorf("engine: %s: gpu worker: %s", source, msg)
	}
	return res[0], attempts, nil
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
	r, _, err := w.run(ctx, gpu.Job{Query: q, Templates: set, Localize: &opt}, source, "")
	if err != nil {
		return nil, err
	}
	if r.Localization == nil {
		return nil, fmt.Errorf("engine: %s: gpu worker gave no localisation", source)
	}
	r.Localization.Query = source
	return r.Localization, nil
}

// segment localises (with ts) or takes loc's boxes, and segments the query in the worker,
// which writes the label map to a temporary file (beside opt.Mask, renamed to it once
// checked); the map is read back for the result. A failed call leaves no mask behind. It
// needs a segmentation worker. Times: Segment is the worker's whole job (reading the query
// there, localising, segmenting, writing the map), Write the per-organ masks'.
func (w *deviceWorker) segment(ctx context.Context, ts *localize.TemplateSet,
	loc *localize.Result, v *volume.Volume, hdr *nifti.Header, source string,
	opt SegmentOptions) (*SegmentResult, error) {
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
	job := gpu.Job{Query: q}
	if opt.Mask != "" {
		if job.Mask, err = hiddenBeside(opt.Mask); err != nil {
			return nil, err
		}
	} else if job.Mask, err = w.temp("_mask.nii"); err != nil {
		return nil, err
	}
	defer os.Remove(job.Mask) // gone once renamed
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
	r, attempts, err := w.run(ctx, job, source, opt.Mask)
	if err != nil {
		return nil, err
	}
	res.Times.Segment = msSince(t)
	if ts != nil {
		if r.Localization == nil {
			return nil, fmt.Errorf("engine: %s: gpu worker gave no localisation", source)
		}
		loc = r.Localization
		loc.Query = source
	}
	m, err := nifti.Read(job.Mask, nifti.ReadOptions{})
	if err != nil {
		return nil, fmt.Errorf("engine: %s: label map from the gpu worker: %w", source, err)
	}
	if loc.Shape != m.Volume.Shape {
		return nil, fmt.Errorf("engine: gpu worker wrote a label map of shape %v for %s, "+
			"localised on a grid of %v", m.Volume.Shape, source, loc.Shape)
	}
	res.Labels, res.Localization = m.Volume, loc
	res.Segmentation = segment.LabelReport(source, m.Volume, segment.FromLocalization(loc),
		attempts[len(attempts)-1].Batch)
	if opt.Mask != "" {
		t := time.Now()
		if err := os.Rename(job.Mask, opt.Mask); err != nil {
			return nil, fmt.Errorf("engine: mask of %s: %w", source, err)
		}
		res.Files = []string{opt.Mask}
		if opt.PerOrgan {
			files, err := segment.WriteOrganMasks(m.Volume, res.Segmentation.Organs, m.Header,
				opt.Mask)
			if err != nil { // it removed the organ masks it wrote
				os.Remove(opt.Mask)
				return nil, fmt.Errorf("engine: mask of %s: %w", source, err)
			}
			res.Files = append(res.Files, files...)
		}
		res.Times.Write = msSince(t)
	}
	res.Times.Total = msSince(start)
	return res, nil
}

// organsFile writes loc's boxes for the worker (gpu.Organ JSON) and returns the file.
func (w *deviceWorker) organsFile(loc *localize.Result, source string) (string, error) {
	if len(loc.Organs) == 0 { // as the CPU path says it
		return "", fmt.Errorf("engine: %s: the localisation holds no organ to segment",
			source)
	}
	organs, err := gpu.OrgansOf(loc, loc.Shape, source)
	if err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	b, err := json.Marshal(organs)
	if err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	f, err := w.temp("_organs.json")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(f, b, 0o600); err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	return f, nil
}
