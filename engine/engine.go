package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/native"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/ort"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels/cpunet"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

// Model names of the MedLAM manifests (engine/backend Manifest.Model).
const (
	modelFull    = "medlam"
	modelEncoder = "medlam-encoder"
)

// CPU is the default backend: the CPU, with MedLAM on the native network (engine/native)
// or ONNX Runtime (engine/ort; see Options.MedLAMRuntime) and SAM on ONNX Runtime.
const CPU = "cpu"

// The MedLAM runtimes of the CPU backend (Options.MedLAMRuntime).
const (
	Native = "native"
	ORT    = "ort"
)

// Opener opens one model file, whose manifest man (already read and checked against the
// file's digest) sits beside it, on some backend. The caller of Open owns nothing it
// returns: the Engine closes the models.
type Opener func(path string, man *backend.Manifest) (backend.Model, error)

// Options configures Open. The zero value opens "medlam" (or the one MedLAM model of the
// directory) on the CPU backend with the method's defaults.
type Options struct {
	// Backend chooses the backend: "" and CPU ("cpu") mean ONNX Runtime on the CPU; "auto"
	// means TensorRT engines on the GPU when engine/gpu.Select finds a GPU, a TensorRT
	// build and engines in Engines that match them, else the CPU backend (the reason is
	// logged); "gpu" means TensorRT or an error saying why not. Ignored when Open is set.
	Backend string
	// Engines is the directory of TensorRT engine plans for the "auto" and "gpu" backends.
	Engines string
	// GPUEnv, when set, replaces engine/gpu.DefaultEnv as what the backend choice looks at
	// (its Engines, Models and Optional fields are set by Open): the hook for tests. With
	// Worker the worker makes the choice in its own environment, and GPUEnv is not used.
	GPUEnv *gpu.Env
	// Worker, when set, runs the TensorRT backend in a supervised GPU worker process (see
	// WorkerCommand, WorkerBinary), which then needs CUDA, TensorRT and the engines, and
	// this program none of them: the worker checks its GPU, build and the engines in
	// Engines at Open (Backend "auto" falls back to the CPU, logging why, when it cannot
	// run or start; "gpu" fails). Each query is then copied to the device once and
	// localised there, and segmented there when the engines include SAM's (built from the
	// SAM export in the models directory, when it holds one) and an encoder batch fits; a
	// CUDA or TensorRT fault costs a restart and a retry with half the batch instead of
	// this process. Template sets are built on the CPU here; without SAM on the worker,
	// SAM runs here on the CPU. Without Worker the engines run in this process (TODO(#6):
	// with host tensors in and out of each call, and no isolation).
	Worker WorkerCommand
	// Open, when set, opens the model files instead of a built-in backend: the hook for
	// backends built elsewhere (TensorRT engines) and for tests.
	Open Opener
	// ModelName is the model's base name: NAME.onnx (the full network, required) and
	// NAME-encoder.onnx (encoder and regression head, for the coarse step; optional). ""
	// means "medlam", or else the only NAME.onnx of the directory whose manifest is a
	// MedLAM network (such as medlam_tiny).
	ModelName string
	// MedLAMRuntime chooses what runs the MedLAM network on the CPU backend: "" or Native
	// ("native": engine/native, Winograd convolutions, no ONNX Runtime needed) or ORT
	// ("ort": ONNX Runtime, the oracle the native network is tested against). SAM always
	// runs on ONNX Runtime on the CPU backend.
	MedLAMRuntime string
	// ORTLibrary is the ONNX Runtime library for the CPU backend ("" searches for it).
	ORTLibrary string
	// Threads caps the CPU backend's threads (0: all cores).
	Threads int
	// Localize holds the localiser's settings (mode, batch size, seed, logger).
	Localize localize.Config
	// SAMName is the SAM (or MedSAM) model's base name: NAME-encoder.onnx and
	// NAME-decoder.onnx, else NAME-decoder-public.onnx (segment-anything's public export),
	// in the same directory as MedLAM. "" means "sam", or else the directory's only
	// NAME-encoder.onnx whose manifest is a SAM encoder (such as sam_tiny). The SAM models
	// are opened at the first Segment call or by OpenSAM, never by Open, so an Engine used
	// for localisation only needs no SAM model.
	SAMName string
	// Segment holds the segmenter's settings (encoder batch, logger, kernels). A nil
	// Logger means Localize's; nil Kernels mean Localize.Kernels when they also implement
	// segment.Kernels (the engine/gpu kernels do), else the CPU kernels.
	Segment segment.Config
}

// Engine holds an opened MedLAM network (and, once a Segment call or OpenSAM has opened
// them, the SAM encoder and decoder) and runs localisation and segmentation with them. Its
// methods may be called from several goroutines; their network work runs one call at a
// time (reading queries and writing masks do not hold the lock, except when the GPU
// worker segments; open several Engines to run networks in parallel). Whoever calls Open
// must call Close, which closes every model.
type Engine struct {
	mu      sync.Mutex
	net     localize.Network
	models  []backend.Model
	cfg     localize.Config
	closed  bool
	backend string
	release func() error                   // frees what the backend shares between models (the GPU)
	engines map[string]*trt.EngineManifest // the TensorRT backend's engines by model
	dw      *deviceWorker                  // the supervised GPU worker (Options.Worker)
	// closing is done once Close is called: it cancels the worker's jobs in flight, so
	// that Close does not wait on a hung worker (set with dw, never changed).
	closing    context.Context
	closeStart context.CancelFunc

	// SAM, opened lazily (sam.go): where and how to open it, and once open, the models
	// (also listed in models, so that Close closes them).
	dir     string
	samName string
	samOpen Opener
	sam     *segment.Models
	segCfg  segment.Config
}

// Open finds the MedLAM models in modelsDir (see Options.ModelName), checks them against
// their manifests and opens them on the chosen backend.
func Open(modelsDir string, opt Options) (*Engine, error) {
	cfg := opt.Localize
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	e := &Engine{cfg: cfg, backend: CPU, dir: modelsDir, samName: opt.SAMName,
		segCfg: segmentConfig(opt.Segment, cfg)}
	switch opt.MedLAMRuntime {
	case "", Native, ORT:
	default:
		return nil, fmt.Errorf("engine: MedLAM runtime %q: want %s or %s", opt.MedLAMRuntime,
			Native, ORT)
	}
	if err := cfg.Resampling.Check(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	open := opt.Open
	if open == nil {
		var err error
		if open, err = e.chooseBackend(opt); err != nil {
			return nil, err
		}
	} else {
		e.backend = "custom"
	}
	e.samOpen = open
	if e.backend == string(gpu.TensorRT) && e.dw == nil {
		e.samOpen = samOpener(open, cpuOpener(ortOptions(opt), ORT), e.engines, opt.Engines,
			cfg.Logger)
	}
	name, err := findModel(modelsDir, opt.ModelName)
	if err != nil {
		e.Close()
		return nil, err
	}
	fullPath := filepath.Join(modelsDir, name+".onnx")
	full, man, err := openChecked(open, fullPath, modelFull)
	if err != nil {
		e.Close()
		return nil, err
	}
	e.models = append(e.models, full)
	e.net = localize.Network{Full: full, ModelSHA256: man.SHA256}
	if m := e.engines[modelFull]; e.dw != nil && (m == nil || m.ONNXSHA256 != man.SHA256) {
		onnx := "?"
		if m != nil {
			onnx = m.ONNXSHA256
		}
		e.Close()
		return nil, fmt.Errorf("engine: the MedLAM engine in %s was built from ONNX %.12s, "+
			"not from %s (%.12s), whose template sets the worker would refuse: rebuild it "+
			"(build/engines/build.sh) or use the CPU backend", opt.Engines, onnx, fullPath,
			man.SHA256)
	}
	if _, ok := full.(*native.MedLAM); ok {
		cfg.Logger.Info("MedLAM on the native CPU network", "kernels", cpunet.Best().String(),
			"model", fullPath)
	} else if e.backend == CPU {
		cfg.Logger.Info("MedLAM on ONNX Runtime", "model", fullPath)
	}
	encPath := filepath.Join(modelsDir, name+"-encoder.onnx")
	if _, err := os.Stat(encPath); err == nil {
		enc, _, err := openChecked(open, encPath, modelEncoder)
		if err != nil {
			e.Close()
			return nil, err
		}
		e.models = append(e.models, enc)
		e.net.Encoder = enc
	} else {
		cfg.Logger.Warn("engine: no encoder model; the coarse step runs the full network",
			"missing", encPath)
	}
	return e, nil
}

// chooseBackend returns the opener of the backend opt asks for (see Options.Backend),
// recording the backend and what it shares on e.
func (e *Engine) chooseBackend(opt Options) (Opener, error) {
	cpu := func() Opener { return cpuOpener(ortOptions(opt), opt.MedLAMRuntime) }
	var mode gpu.Mode
	switch strings.ToLower(opt.Backend) {
	case "", CPU:
		return cpu(), nil
	case string(gpu.ModeAuto):
		mode = gpu.ModeAuto
	case string(gpu.ModeGPU):
		mode = gpu.ModeGPU
	default:
		return nil, fmt.Errorf("%w: engine: backend %q: want auto, gpu or %s",
			backend.ErrUnavailable, opt.Backend, CPU)
	}
	if opt.Worker != nil {
		return e.chooseWorker(opt, mode, cpu)
	}
	env := gpu.DefaultEnv(opt.Engines, nil)
	if opt.GPUEnv != nil {
		env = *opt.GPUEnv
	}
	env.Engines = opt.Engines
	env.Models, env.Optional = gpu.WorkSelect.Models() // what the worker would choose
	c, err := gpu.Select(mode, env, e.cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if c.Backend != gpu.TensorRT {
		return cpu(), nil
	}
	open, release, err := gpu.OpenEngineModels(c)
	if err != nil {
		if mode == gpu.ModeGPU {
			return nil, fmt.Errorf("engine: %w: %w", gpu.ErrGPURequested, err)
		}
		e.cfg.Logger.Info("gpu backend not used; running on the CPU", "reason", err.Error())
		return cpu(), nil
	}
	e.backend, e.release, e.engines = string(gpu.TensorRT), release, c.Manifests
	return Opener(open), nil
}

// samOpener opens a SAM part on its TensorRT engine (onEngine) when engines, the engines
// the backend choice found in dir, has one for the part's model built from the part's ONNX,
// and otherwise on the CPU (onCPU), logging why: a public-layout decoder has no engine
// recipe, say, or the engines were built from another SAM.
func samOpener(onEngine, onCPU Opener, engines map[string]*trt.EngineManifest, dir string,
	log *slog.Logger) Opener {
	return func(path string, man *backend.Manifest) (backend.Model, error) {
		em := engines[man.Model]
		if em != nil && em.ONNXSHA256 == man.SHA256 {
			log.Info("engine: SAM part on TensorRT", "model", man.Model, "engine", em.File)
			return onEngine(path, man)
		}
		reason := fmt.Sprintf("no %s engine in %s", man.Model, dir)
		if em != nil {
			reason = fmt.Sprintf("the %s engine %s was built from ONNX %.12s, not from %s",
				man.Model, em.File, em.ONNXSHA256, path)
		}
		log.Info("engine: SAM part on ONNX Runtime", "model", man.Model, "reason", reason)
		return onCPU(path, man)
	}
}

// ortOptions are the CPU backend's settings for opt.
func ortOptions(opt Options) ort.Options {
	return ort.Options{LibraryPath: opt.ORTLibrary, IntraOpThreads: opt.Threads,
		BatchInvariant: true}
}

// cpuOpener opens MedLAM models on the runtime medlam names (Options.MedLAMRuntime) and
// every other model on ONNX Runtime with o; tests replace it.
var cpuOpener = func(o ort.Options, medlam string) Opener {
	return func(path string, man *backend.Manifest) (backend.Model, error) {
		if medlam != ORT && (man.Model == modelFull || man.Model == modelEncoder) {
			return native.Open(path)
		}
		return ort.Open(path, o)
	}
}

// Backend names the backend the MedLAM models run on: "cpu" (the native network or ONNX
// Runtime, Options.MedLAMRuntime), "tensorrt", or "custom" (Options.Open). SAM runs on ONNX
// Runtime on the "cpu" backend; with "tensorrt", each SAM part runs on its engine when the
// engines directory has one, else on ONNX Runtime (logged). With Options.Worker,
// "tensorrt" means the GPU worker localises, and segments too when it has SAM's engines.
func (e *Engine) Backend() string { return e.backend }

// findModel returns the base name of the MedLAM model to open in dir.
func findModel(dir, name string) (string, error) {
	if name != "" {
		return name, nil
	}
	if _, err := os.Stat(filepath.Join(dir, modelFull+".onnx")); err == nil {
		return modelFull, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.onnx"))
	if err != nil {
		return "", fmt.Errorf("engine: %w", err)
	}
	var found []string
	for _, f := range files {
		man, err := backend.LoadManifest(f)
		if err == nil && man.Model == modelFull {
			found = append(found, strings.TrimSuffix(filepath.Base(f), ".onnx"))
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("engine: %s holds no MedLAM model (%s.onnx, or NAME.onnx with "+
			"a manifest of model %q); run `make models-medlam-full` or give the model name",
			dir, modelFull, modelFull)
	default:
		slices.Sort(found)
		return "", fmt.Errorf("engine: %s holds several MedLAM models (%s); give the model "+
			"name", dir, strings.Join(found, ", "))
	}
}

// openChecked reads path's manifest, checks that it is a model of the wanted kind and opens
// it.
func openChecked(open Opener, path, want string) (backend.Model, *backend.Manifest, error) {
	man, err := backend.LoadManifest(path)
	if err != nil {
		return nil, nil, fmt.Errorf("engine: %w", err)
	}
	if man.Model != want {
		return nil, nil, fmt.Errorf("engine: %s is a %q model (its manifest), want %q", path,
			man.Model, want)
	}
	m, err := open(path, man)
	if err != nil {
		return nil, nil, err
	}
	return m, man, nil
}

// Close closes the models and stops the GPU worker, ending a job in flight there (its call
// fails with ErrClosed). It is idempotent; later calls of the other methods fail.
func (e *Engine) Close() error {
	if e == nil {
		return nil
	}
	if e.closeStart != nil {
		e.closeStart() // a worker job in flight ends, releasing the lock
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	for i := len(e.models) - 1; i >= 0; i-- {
		errs = append(errs, e.models[i].Close())
	}
	if e.release != nil {
		errs = append(errs, e.release())
	}
	if e.dw != nil {
		errs = append(errs, e.dw.close())
	}
	return errors.Join(errs...)
}

// ErrClosed is returned by the methods of a closed Engine.
var ErrClosed = errors.New("engine: closed")

// Network returns the engine's network, for callers that drive package localize
// themselves. It stays usable until Close; calls through it are not serialised with the
// Engine's own.
func (e *Engine) Network() *localize.Network { return &e.net }

// ModelSHA256 returns the digest of the full network, which template sets record.
func (e *Engine) ModelSHA256() string { return e.net.ModelSHA256 }

// TemplateInput is one template: an image and its label map, as files or as volumes (a
// volume, when set, is used instead of reading its path; the path then only names it).
type TemplateInput struct {
	ImagePath, LabelsPath string
	Image, Labels         *volume.Volume
}

// BuildTemplates computes the template set of organs over the templates (see
// localize.BuildTemplateSet): every template must hold every organ, and a label map must
// share its image's grid.
func (e *Engine) BuildTemplates(ctx context.Context, templates []TemplateInput,
	organs []localize.Organ) (*localize.TemplateSet, error) {
	var tpl []localize.Template
	for i, t := range templates {
		img, err := prepared(e.cfg, t.Image, t.ImagePath, localize.Image)
		if err != nil {
			return nil, fmt.Errorf("engine: template %d: %w", i, err)
		}
		lab, err := prepared(e.cfg, t.Labels, t.LabelsPath, localize.Labels)
		if err != nil {
			return nil, fmt.Errorf("engine: template %d: %w", i, err)
		}
		tpl = append(tpl, localize.Template{Image: img, Labels: lab})
	}
	return e.build(ctx, tpl, organs, e.cfg)
}

// BuildTemplatesFromPoints computes the template set from a template-points file (see
// localize.TemplatePoints): its images are read, its points used as given. organs selects
// some of the file's organs; nil means all of them. The mode (WPL or SPL) is the file's.
func (e *Engine) BuildTemplatesFromPoints(ctx context.Context, pointsFile string,
	organs []localize.Organ) (*localize.TemplateSet, error) {
	tp, err := localize.ReadTemplatePoints(pointsFile)
	if err != nil {
		return nil, err
	}
	if organs == nil {
		organs = tp.Organs()
	}
	var tpl []localize.Template
	for i := range tp.Templates {
		img, err := prepared(e.cfg, nil, tp.ImagePath(i), localize.Image)
		if err != nil {
			return nil, fmt.Errorf("engine: %s: %w", pointsFile, err)
		}
		t, err := tp.Template(i, img)
		if err != nil {
			return nil, err
		}
		tpl = append(tpl, t)
	}
	cfg := e.cfg
	cfg.Mode = tp.Mode()
	return e.build(ctx, tpl, organs, cfg)
}

func (e *Engine) build(ctx context.Context, tpl []localize.Template, organs []localize.Organ,
	cfg localize.Config) (*localize.TemplateSet, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	return localize.BuildTemplateSet(ctx, &e.net, tpl, organs, cfg)
}

// LoadTemplates reads a template set saved with (*localize.TemplateSet).Save, refusing one
// computed by another model.
func (e *Engine) LoadTemplates(path string) (*localize.TemplateSet, error) {
	ts, err := localize.LoadTemplateSet(path, e.net.ModelSHA256)
	if err != nil {
		return nil, err
	}
	if err := ts.CheckResampling(e.cfg.Resampling); err != nil {
		return nil, fmt.Errorf("engine: %s: %w", path, err)
	}
	return ts, nil
}

// Localize finds the boxes of every organ of ts in the query NIfTI file.
func (e *Engine) Localize(ctx context.Context, ts *localize.TemplateSet,
	queryPath string) (*localize.Result, error) {
	return e.LocalizeVolume(ctx, ts, nil, queryPath)
}

// LocalizeVolume is Localize on a volume already in memory; source names it in the result
// and in errors. With v nil, source is read as a NIfTI file.
func (e *Engine) LocalizeVolume(ctx context.Context, ts *localize.TemplateSet,
	v *volume.Volume, source string) (*localize.Result, error) {
	if ts == nil {
		return nil, fmt.Errorf("engine: %s: no template set given", source)
	}
	if err := ts.CheckResampling(e.cfg.Resampling); err != nil {
		return nil, fmt.Errorf("engine: %s: %w", source, err)
	}
	if e.dw != nil {
		ctx, end, err := e.workerCall(ctx)
		if err != nil {
			return nil, err
		}
		defer end()
		return e.dw.localize(ctx, ts, v, nil, source)
	}
	q, err := prepared(e.cfg, v, source, localize.Image)
	if err != nil {
		return nil, fmt.Errorf("engine: query: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	res, _, err := localize.Localize(ctx, &e.net, ts, q, e.cfg)
	return res, err
}

// prepared returns v (or the NIfTI file at path when v is nil) prepared for the network
// with the kernels and the resampling of c.
func prepared(c localize.Config, v *volume.Volume, path string,
	kind localize.Kind) (*localize.Grid, error) {
	if v == nil {
		if path == "" {
			return nil, fmt.Errorf("no volume and no file given")
		}
		f, err := nifti.Read(path, nifti.ReadOptions{})
		if err != nil {
			return nil, err
		}
		v = f.Volume
	}
	return localize.PrepareWith(c, v, path, kind)
}
