package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/medlsam-fast/medlsam-fast/engine"
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
}

func runSegment(args []string, stdout io.Writer) error {
	fs := newFlags("segment", "QUERY.nii[.gz]...", stdout)
	var lf localizeFlags
	fs.StringArrayVar(&lf.templates, "template", nil,
		"template IMAGE:LABELS pair (repeatable); or use --templates-file")
	fs.StringVar(&lf.templateSet, "templates-file", "", "template set saved by localize")
	fs.StringSliceVar(&lf.organs, "organs", nil, "organs to find: label values or names")
	fs.StringVar(&lf.labelNames, "label-names", "", "JSON file mapping label value -> name")
	fs.StringVar(&lf.models, "models", "models/full", "directory of the ONNX models")
	fs.StringVar(&lf.modelName, "model-name", "", "MedLAM model base name (default medlam, "+
		"or the directory's only MedLAM model)")
	fs.StringVar(&lf.ortLib, "ort-lib", "", "path of libonnxruntime.so.1 (default: search)")
	fs.IntVar(&lf.threads, "threads", 0, "CPU threads for ONNX Runtime (0: all)")
	fs.IntVar(&lf.batch, "batch", localize.DefaultBatchSize, "MedLAM patches per network call")
	fs.Uint64Var(&lf.seed, "seed", 2023, "seed of the coarse step's random crops")
	fs.StringVar(&lf.mode, "mode", "WPL", "WPL (one box per organ) or SPL (per z chunk)")
	fs.IntVar(&lf.sliceInterval, "slice-interval", localize.DefaultSliceInterval,
		"SPL chunk length in 3 mm slices")
	boxes := fs.String("boxes", "", "a localize JSON result: segment its boxes, no MedLAM "+
		"(one query only)")
	samName := fs.String("sam-name", "sam", "SAM model base name: NAME-encoder.onnx and "+
		"NAME-decoder.onnx (or NAME-decoder-public.onnx) in --models")
	samBatch := fs.Int("sam-batch", segment.DefaultBatchSize, "slices per encoder call")
	outDir := fs.StringP("out-dir", "d", ".", "directory for the masks")
	perOrgan := fs.Bool("per-organ", false, "also write one binary mask per organ")
	report := fs.StringP("out", "o", "", "write the JSON report here (default: stdout)")
	summary := fs.Bool("summary", false, "print a summary table on stdout instead of the "+
		"JSON (which --out still writes)")
	if err := fs.Parse(args); err != nil {
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
	ctx := context.Background()
	opt := ort.Options{LibraryPath: lf.ortLib, IntraOpThreads: lf.threads, BatchInvariant: true}
	sam, closeSAM, err := openSAM(lf.models, *samName, opt)
	if err != nil {
		return err
	}
	defer closeSAM()

	var locate func(path string, img *nifti.Image) (*localize.Result, error)
	if *boxes != "" {
		b, err := os.ReadFile(*boxes)
		if err != nil {
			return fmt.Errorf("segment: %w", err)
		}
		var r localize.Result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("segment: boxes file %s: %w", *boxes, err)
		}
		locate = func(path string, img *nifti.Image) (*localize.Result, error) {
			if r.Shape != img.Volume.Shape {
				return nil, fmt.Errorf("segment: boxes file %s is for shape %v, query %s is %v",
					*boxes, r.Shape, path, img.Volume.Shape)
			}
			return &r, nil
		}
	} else {
		var closeNet func()
		locate, closeNet, err = localizer(ctx, lf)
		if err != nil {
			return err
		}
		defer closeNet()
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	var rep segmentReport
	for _, path := range fs.Args() {
		img, err := nifti.Read(path, nifti.ReadOptions{})
		if err != nil {
			return err
		}
		loc, err := locate(path, img)
		if err != nil {
			return err
		}
		res, err := segment.Segment(ctx, sam, img.Volume, path, segment.FromLocalization(loc),
			segment.Config{BatchSize: *samBatch, Logger: slog.Default()})
		if err != nil {
			return err
		}
		base := filepath.Base(path)
		base = strings.TrimSuffix(strings.TrimSuffix(base, ".gz"), ".nii")
		files, err := segment.Write(res, img.Header,
			filepath.Join(*outDir, base+"_mask.nii.gz"), *perOrgan)
		if err != nil {
			return err
		}
		q := segmentQuery{Query: path, Output: files, Segmentation: res.Report}
		if *boxes == "" {
			q.Localization = loc
		}
		rep.Queries = append(rep.Queries, q)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	b = append(b, '\n')
	if *report != "" {
		if err := writeFileAtomic(*report, b); err != nil {
			return err
		}
	}
	switch {
	case *summary:
		return writeSegmentSummary(stdout, rep)
	case *report == "":
		_, err = stdout.Write(b)
		return err
	}
	return nil
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

// localizer opens MedLAM (engine.Open), builds or loads the template set once, and returns
// a function that localises one query with it, and one that closes the network.
func localizer(ctx context.Context, lf localizeFlags) (func(string, *nifti.Image) (
	*localize.Result, error), func(), error) {
	mode := localize.Mode(strings.ToUpper(lf.mode))
	if mode != localize.WPL && mode != localize.SPL {
		return nil, nil, fmt.Errorf("%w: --mode %q is neither WPL nor SPL", errUsage, lf.mode)
	}
	cfg := localize.Config{Mode: mode, SliceInterval: lf.sliceInterval, BatchSize: lf.batch,
		Seed: lf.seed, Logger: slog.Default()}
	eng, err := engine.Open(lf.models, engine.Options{ModelName: lf.modelName,
		ORTLibrary: lf.ortLib, Threads: lf.threads, Localize: cfg})
	if err != nil {
		return nil, nil, err
	}
	var ts *localize.TemplateSet
	if lf.templateSet != "" {
		ts, err = eng.LoadTemplates(lf.templateSet)
	} else {
		var organs []localize.Organ
		organs, err = parseOrgans(lf.organs, lf.labelNames)
		if err == nil {
			var tpl []engine.TemplateInput
			tpl, err = templateInputs(lf.templates)
			if err == nil {
				ts, err = eng.BuildTemplates(ctx, tpl, organs)
			}
		}
	}
	if err != nil {
		eng.Close()
		return nil, nil, err
	}
	return func(path string, img *nifti.Image) (*localize.Result, error) {
		return eng.LocalizeVolume(ctx, ts, img.Volume, path)
	}, func() { eng.Close() }, nil
}
