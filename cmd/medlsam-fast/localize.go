package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/medlsam-fast/medlsam-fast/engine"
	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
)

func init() {
	register(command{
		name:    "localize",
		summary: "find organs' 3D boxes in a CT with MedLAM few-shot localisation",
		run:     runLocalize,
	})
}

// localizeFlags are the options of the localize subcommand.
type localizeFlags struct {
	templates     []string
	templateSet   string
	points        string
	saveTemplates string
	organs        []string
	labelNames    string
	models        string
	modelName     string
	medlamRuntime string
	ortLib        string
	threads       int
	batch         int
	seed          uint64
	mode          string
	sliceInterval int
	resample      string
	out           string
	gpu           gpuFlags
}

// gpuFlags are the device options of localize and segment.
type gpuFlags struct {
	kernels string
	backend string
	engines string
}

// add registers the flags on fs.
func (g *gpuFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&g.kernels, "kernels", "auto", "where the resampling, normalisation, "+
		"similarity search and SAM pre/post-processing run: auto (the GPU when this build "+
		"has CUDA and a device is present, else the CPU; the choice is logged), gpu (or "+
		"fail saying why), cpu")
	fs.StringVar(&g.backend, "backend", "auto", "where the networks run: auto (TensorRT "+
		"engines from --engines when this build has TensorRT and CUDA, a GPU is present and "+
		"the engines match it, else ONNX Runtime on the CPU; the reason is logged), gpu (or "+
		"fail saying why), cpu")
	fs.StringVar(&g.engines, "engines", "engines", "directory of TensorRT engine plans "+
		"(build/engines) for --backend auto or gpu")
}

// Hooks of the device choice; tests replace them with fakes.
var (
	kernelEnv = gpu.DefaultKernelEnv
	gpuEnv    = func(engines string, models []string) gpu.Env {
		return gpu.DefaultEnv(engines, models)
	}
)

// parse checks the modes, as usage errors.
func (g gpuFlags) parse() (kernels, backend gpu.Mode, err error) {
	if kernels, err = gpu.ParseKernelMode(g.kernels); err != nil {
		return "", "", fmt.Errorf("%w: --kernels: %v", errUsage, err)
	}
	if backend, err = gpu.ParseMode(g.backend); err != nil {
		return "", "", fmt.Errorf("%w: --backend: %v", errUsage, err)
	}
	return kernels, backend, nil
}

// openKernels selects the kernels (logged); the caller closes them.
func (g gpuFlags) openKernels() (gpu.Kernels, error) {
	mode, _, err := g.parse()
	if err != nil {
		return nil, err
	}
	return gpu.SelectKernels(mode, kernelEnv(), slog.Default())
}

// engineOptions returns the backend part of engine.Options for these flags.
func (g gpuFlags) engineOptions(o engine.Options) engine.Options {
	env := gpuEnv(g.engines, nil)
	o.Backend, o.Engines, o.GPUEnv = strings.ToLower(g.backend), g.engines, &env
	return o
}

// addShared registers the MedLAM options that localize and segment share: the template
// sources (--template, --templates-file), the organs, the models, ONNX Runtime, the
// localisation settings and the device flags.
func (f *localizeFlags) addShared(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.templates, "template", nil,
		"template IMAGE:LABELS pair of NIfTI files (repeat for several templates)")
	fs.StringVar(&f.templateSet, "templates-file", "",
		"load a template set saved by localize --save-templates instead of computing it "+
			"from --template pairs")
	fs.StringSliceVar(&f.organs, "organs", nil,
		"organs to localise: label numbers or names from --label-names (comma-separated)")
	fs.StringVar(&f.labelNames, "label-names", "",
		`JSON object mapping label values to names, e.g. {"5": "liver"}`)
	fs.StringVar(&f.models, "models", "models/full", "directory of the ONNX models")
	fs.StringVar(&f.modelName, "model-name", "",
		"MedLAM model base name: NAME.onnx (full) and NAME-encoder.onnx (optional, coarse "+
			"step); default medlam, or the directory's only MedLAM model")
	fs.StringVar(&f.medlamRuntime, "medlam-runtime", engine.Native,
		"what runs MedLAM on the CPU: native (Winograd convolutions, no ONNX Runtime) or "+
			"ort (ONNX Runtime)")
	fs.StringVar(&f.ortLib, "ort-lib", "", "path of libonnxruntime.so.1 (default: search)")
	fs.IntVar(&f.threads, "threads", 0, "CPU threads for ONNX Runtime (0: all; the native "+
		"runtime uses GOMAXPROCS)")
	fs.IntVar(&f.batch, "batch", localize.DefaultBatchSize, "MedLAM patches per network call")
	fs.Uint64Var(&f.seed, "seed", 2023, "seed of the coarse step's random crops")
	fs.StringVar(&f.mode, "mode", "WPL", "WPL (one box per organ) or SPL (one box per z chunk)")
	fs.IntVar(&f.sliceInterval, "slice-interval", localize.DefaultSliceInterval,
		"SPL chunk length in 3 mm slices")
	fs.StringVar(&f.resample, "resample", string(localize.Linear),
		"how volumes are brought to 3 mm: linear (trilinear images, nearest-neighbour "+
			"labels, an exact 3 mm grid) or reference (the reference implementation's cubic "+
			"spline and one-hot label interpolation, as the network was trained; CPU only); "+
			"templates and queries must share it")
	f.gpu.add(fs)
}

// check validates the template source (exactly one of --template pairs, --template-points,
// --templates-file), the mode and the device modes, as usage errors.
func (f *localizeFlags) check() error {
	given := 0
	for _, set := range []bool{len(f.templates) > 0, f.templateSet != "", f.points != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return fmt.Errorf("%w: give one of --template pairs, --template-points or "+
			"--templates-file", errUsage)
	}
	if f.batch < 1 {
		return fmt.Errorf("%w: --batch %d: give at least 1 patch per call", errUsage, f.batch)
	}
	if r := f.medlamRuntime; r != engine.Native && r != engine.ORT {
		return fmt.Errorf("%w: --medlam-runtime %q is neither %s nor %s", errUsage, r,
			engine.Native, engine.ORT)
	}
	if m := localize.Mode(strings.ToUpper(f.mode)); m != localize.WPL && m != localize.SPL {
		return fmt.Errorf("%w: --mode %q is neither WPL nor SPL", errUsage, f.mode)
	}
	f.resample = strings.ToLower(f.resample)
	if err := localize.Resampling(f.resample).Check(); err != nil || f.resample == "" {
		return fmt.Errorf("%w: --resample %q is neither %s nor %s", errUsage, f.resample,
			localize.Linear, localize.Reference)
	}
	_, _, err := f.gpu.parse()
	return err
}

// openEngine opens MedLAM (engine.Open on the backend of f.gpu) with the localisation
// settings of f and the kernels kern. f must have passed check. The caller closes the engine.
func (f *localizeFlags) openEngine(kern localize.Kernels) (*engine.Engine, error) {
	cfg := localize.Config{Mode: localize.Mode(strings.ToUpper(f.mode)),
		SliceInterval: f.sliceInterval, BatchSize: f.batch, Seed: f.seed,
		Logger: slog.Default(), Kernels: kern, Resampling: localize.Resampling(f.resample)}
	return engine.Open(f.models, f.gpu.engineOptions(engine.Options{
		ModelName: f.modelName, MedLAMRuntime: f.medlamRuntime, ORTLibrary: f.ortLib,
		Threads: f.threads, Localize: cfg}))
}

// loadTemplates loads the template set (--templates-file) or builds it with eng from
// --template-points or --template pairs, for the organs of --organs.
func (f *localizeFlags) loadTemplates(ctx context.Context, eng *engine.Engine) (
	*localize.TemplateSet, error) {
	switch {
	case f.templateSet != "":
		ts, err := eng.LoadTemplates(f.templateSet)
		if err != nil {
			return nil, err
		}
		slog.Info("template set loaded", "file", f.templateSet, "organs", len(ts.Organs),
			"points", ts.NumPoints())
		return ts, nil
	case f.points != "":
		var organs []localize.Organ // default: every organ of the points file
		if len(f.organs) > 0 {
			var err error
			if organs, err = parseOrgans(f.organs, f.labelNames); err != nil {
				return nil, err
			}
		}
		return eng.BuildTemplatesFromPoints(ctx, f.points, organs)
	}
	organs, err := parseOrgans(f.organs, f.labelNames)
	if err != nil {
		return nil, err
	}
	tpl, err := templateInputs(f.templates)
	if err != nil {
		return nil, err
	}
	return eng.BuildTemplates(ctx, tpl, organs)
}

func runLocalize(args []string, stdout io.Writer) error {
	fs := newFlags("localize", "[QUERY.nii[.gz]]", stdout)
	var f localizeFlags
	f.addShared(fs)
	fs.StringVar(&f.points, "template-points", "",
		"JSON file of template images and their organs' points (schema: localize."+
			"TemplatePoints), instead of --template pairs")
	fs.StringVar(&f.saveTemplates, "save-templates", "",
		"write the template set to this file (atomically) for later runs")
	fs.StringVarP(&f.out, "out", "o", "", "write the JSON result here (atomically) "+
		"instead of stdout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("%w: at most one query, got %d", errUsage, fs.NArg())
	}
	if fs.NArg() == 0 && f.saveTemplates == "" {
		return fmt.Errorf("%w: no query given (and no --save-templates)", errUsage)
	}
	if err := f.check(); err != nil {
		return err
	}
	_, backendMode, err := f.gpu.parse()
	if err != nil {
		return err
	}
	// MedLAM's backend for the query: TensorRT engines in the supervised worker, or here.
	// Template sets are built on the CPU, so without a query there is nothing to choose.
	var choice gpu.Choice
	if fs.NArg() == 1 {
		required, optional := gpu.WorkLocalise.Models()
		env := gpuEnv(f.gpu.engines, required)
		env.Optional = optional
		if choice, err = gpu.Select(backendMode, env, slog.Default()); err != nil {
			return err
		}
	}
	onGPU := choice.Backend == gpu.TensorRT
	kern, err := f.gpu.openKernels()
	if err != nil {
		return err
	}
	defer kern.Close()
	// The choice is made: MedLAM runs here on the CPU, on the GPU backend only to build or
	// load the template set.
	ef := f
	ef.gpu.backend = string(gpu.CPU)
	eng, err := ef.openEngine(kern)
	if err != nil {
		return err
	}
	defer eng.Close()
	if onGPU {
		if err := checkMedLAMEngine(choice, eng, f.models, "localise on the CPU with "+
			"--backend cpu"); err != nil {
			return err
		}
	}
	// The query's header is read before the template set is built, so that a bad query
	// fails at once.
	var query *nifti.Image
	if fs.NArg() == 1 {
		if query, err = nifti.Read(fs.Arg(0), nifti.ReadOptions{HeaderOnly: true}); err != nil {
			return err
		}
	}
	ctx := context.Background()
	ts, err := f.loadTemplates(ctx, eng)
	if err != nil {
		return err
	}
	if f.saveTemplates != "" {
		if err := ts.Save(f.saveTemplates); err != nil {
			return err
		}
		slog.Info("template set saved", "file", f.saveTemplates)
	}
	if fs.NArg() == 0 {
		return nil
	}
	var res *localize.Result
	if onGPU {
		// By default the worker batches at the engine's optimum within its memory bound
		// (gpu.LocalizeOptions.Batch 0), under a cap that starts at the engines' largest
		// batch; --batch sets both.
		opt, maxBatch := gpu.LocalizeOptions{Seed: f.seed}, choice.LocalizeBatchCap()
		if fs.Changed("batch") {
			opt.Batch, maxBatch = f.batch, f.batch
		}
		set := f.templateSet // the worker loads (and checks) a set file itself
		res, err = localiseOnGPU(ctx, fs.Arg(0), query.Volume.Shape, ts, set, opt,
			f.gpu.engines, maxBatch)
	} else {
		res, err = eng.Localize(ctx, ts, fs.Arg(0))
	}
	if err != nil {
		return err
	}
	return writeReport(stdout, res, f.out, nil)
}

// checkMedLAMEngine refuses the MedLAM engine of c when it was not built from the ONNX
// model eng runs (from models): the template set eng builds would not fit the engine's
// features. It runs before templates are built or queries read; fix says what else the
// user can do.
func checkMedLAMEngine(c gpu.Choice, eng *engine.Engine, models, fix string) error {
	m := c.Manifests["medlam"]
	if m != nil && m.ONNXSHA256 == eng.ModelSHA256() {
		return nil
	}
	onnx := "?"
	if m != nil {
		onnx = m.ONNXSHA256
	}
	return fmt.Errorf("the MedLAM engine %s was built from ONNX %.12s, MedLAM here is "+
		"model %.12s (%s): rebuild the engine from that ONNX (build/engines/build.sh), or %s",
		c.Engines["medlam"], onnx, eng.ModelSHA256(), models, fix)
}

// localiseOnGPU localises query (of grid shape) with the MedLAM engines in engines, in a
// supervised worker process (`medlsam-fast gpu-worker --work localise`) that reads the
// volume into pinned memory, copies it to the device once and runs the whole localisation
// there with the template set ts (from the file set, or saved to a temporary file for it
// when set is empty). maxBatch caps the patches per engine call; the supervisor halves it
// and retries when the worker runs out of device memory or dies.
func localiseOnGPU(ctx context.Context, query string, shape [3]int, ts *localize.TemplateSet,
	set string, opt gpu.LocalizeOptions, engines string, maxBatch int) (*localize.Result,
	error) {
	if set == "" {
		tmp, err := os.MkdirTemp("", "medlsam-localize-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		set = filepath.Join(tmp, "templates.json")
		if err := ts.Save(set); err != nil {
			return nil, err
		}
	}
	sup := &gpu.Supervisor{Command: workerCommand(engines, gpu.WorkLocalise), Batch: maxBatch,
		Log: slog.Default()}
	defer sup.Close()
	job := gpu.Job{Query: query, Templates: set, Localize: &opt}
	results, attempts, err := sup.RunJobs(ctx, []gpu.Job{job})
	switch {
	case err != nil:
		return nil, fmt.Errorf("gpu worker: %w", err)
	case results[0].Err != "":
		return nil, errors.New(results[0].Err)
	case results[0].Localization == nil:
		return nil, fmt.Errorf("gpu worker gave no localisation for %s", query)
	case results[0].Localization.Shape != shape:
		return nil, fmt.Errorf("gpu worker localised %s on a grid of %v, the file's is %v",
			query, results[0].Localization.Shape, shape)
	}
	slog.Info("localised in the GPU worker", "query", query, "attempts", len(attempts),
		"batch", attempts[len(attempts)-1].Batch)
	return results[0].Localization, nil
}

// templateInputs parses IMAGE:LABELS pairs.
func templateInputs(pairs []string) ([]engine.TemplateInput, error) {
	var out []engine.TemplateInput
	for _, p := range pairs {
		imgPath, labPath, ok := strings.Cut(p, ":")
		if !ok || imgPath == "" || labPath == "" {
			return nil, fmt.Errorf("%w: --template %q: want IMAGE:LABELS", errUsage, p)
		}
		out = append(out, engine.TemplateInput{ImagePath: imgPath, LabelsPath: labPath})
	}
	return out, nil
}

// parseOrgans resolves organ arguments (numbers or names) through the optional label-name
// file.
func parseOrgans(args []string, namesPath string) ([]localize.Organ, error) {
	names := map[int]string{}
	if namesPath != "" {
		b, err := os.ReadFile(namesPath)
		if err != nil {
			return nil, fmt.Errorf("localize: %w", err)
		}
		var raw map[string]string
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("localize: label names %s: %w", namesPath, err)
		}
		for k, v := range raw {
			n, err := strconv.Atoi(k)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("localize: label names %s: key %q is not a positive "+
					"label value", namesPath, k)
			}
			names[n] = v
		}
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: no --organs given", errUsage)
	}
	byName := map[string]int{}
	for n, s := range names {
		byName[strings.ToLower(s)] = n
	}
	var out []localize.Organ
	for _, a := range args {
		a = strings.TrimSpace(a)
		if n, err := strconv.Atoi(a); err == nil {
			out = append(out, localize.Organ{Label: n, Name: names[n]})
			continue
		}
		n, ok := byName[strings.ToLower(a)]
		if !ok {
			known := make([]string, 0, len(byName))
			for s := range byName {
				known = append(known, s)
			}
			sort.Strings(known)
			hint := "give --label-names"
			if len(known) > 0 {
				hint = fmt.Sprintf("%s has %d names, e.g. %s", namesPath, len(known),
					strings.Join(known[:min(5, len(known))], ", "))
			}
			return nil, fmt.Errorf("%w: organ %q is not a label number or a known name (%s)",
				errUsage, a, hint)
		}
		out = append(out, localize.Organ{Label: n, Name: names[n]})
	}
	return out, nil
}
