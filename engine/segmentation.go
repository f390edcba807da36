package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// SegmentOptions tunes one Segment call. The zero value segments and writes nothing.
type SegmentOptions struct {
	// Mask, when set, is where the label map is written (.nii or .nii.gz): atomically (a
	// temporary file renamed into place), on the query's exact geometry (its header's
	// qform/sform codes and affine), uint8 voxels (int16 when a label exceeds 255). Its
	// directory must exist.
	Mask string
	// PerOrgan also writes one binary mask per organ beside Mask, named
	// <Mask without extension>_label<N>.nii.gz (see segment.Write).
	PerOrgan bool
}

// SegmentResult is what the Segment methods return.
type SegmentResult struct {
	// Query names the query (its file, or the source given with a volume).
	Query string `json:"query"`
	// Labels is the label map on the query's grid (label values as float32, 0 background).
	// The caller owns it.
	Labels *volume.Volume `json:"-"`
	// Localization holds the MedLAM boxes the organs were segmented in (for SegmentBoxes,
	// the result it was given).
	Localization *localize.Result `json:"localization"`
	// Segmentation is the segmenter's report: per organ its boxes, slices and voxel count;
	// the encoder and decoder call counts; the time per SAM stage (the counts and times
	// are 0 when the GPU worker segments: Options.Worker).
	Segmentation segment.Report `json:"segmentation"`
	// Files lists the masks written (empty without SegmentOptions.Mask).
	Files []string `json:"outputs,omitempty"`
	// Times are the wall-clock milliseconds of the call's stages.
	Times SegmentTimes `json:"times_ms"`
}

// SegmentTimes are wall-clock milliseconds per stage of a Segment call: reading the query
// file (0 for a volume in memory), localisation (0 for SegmentBoxes), segmentation (whose
// breakdown is SegmentResult.Segmentation.Times), writing the masks, and the whole call.
// When the GPU worker segments (Options.Worker), Segment is its whole job: reading the
// query there, localising, segmenting and writing the label map; Read and Localize are 0
// and Write is the per-organ masks'.
type SegmentTimes struct {
	Read     float64 `json:"read"`
	Localize float64 `json:"localize"`
	Segment  float64 `json:"segment"`
	Write    float64 `json:"write"`
	Total    float64 `json:"total"`
}

// Segment localises every organ of ts in the query NIfTI file with MedLAM, segments each in
// its box with SAM (opening SAM on first use, see Options.SAMName) and, when opt.Mask is
// set, writes the label map on the query's geometry.
func (e *Engine) Segment(ctx context.Context, ts *localize.TemplateSet, queryPath string,
	opt SegmentOptions) (*SegmentResult, error) {
	return e.SegmentVolume(ctx, ts, nil, nil, queryPath, opt)
}

// SegmentVolume is Segment on a query already in memory: v is its volume and hdr the
// header it was read with (used only to write the mask; with hdr nil the mask's geometry
// comes from v's affine alone). source names the query in the result and in errors. With v
// nil, source is read as a NIfTI file. v is only read.
func (e *Engine) SegmentVolume(ctx context.Context, ts *localize.TemplateSet,
	v *volume.Volume, hdr *nifti.Header, source string,
	opt SegmentOptions) (*SegmentResult, error) {
	if ts == nil {
		return nil, fmt.Errorf("engine: %s: no template set given", source)
	}
	if err := ts.CheckResampling(e.cfg.Resampling); err != nil {
		return nil, fmt.Errorf("engine: %s: %w", source, err)
	}
	return e.segment(ctx, ts, nil, v, hdr, source, opt)
}

// SegmentBoxes segments the organs of a localisation found earlier (a Localize result, or
// one read back from its JSON) in the query: with v nil, source is read as a NIfTI file,
// else v and hdr are the query as in SegmentVolume. The result must be for a query of v's
// shape; no MedLAM network runs.
func (e *Engine) SegmentBoxes(ctx context.Context, loc *localize.Result, v *volume.Volume,
	hdr *nifti.Header, source string, opt SegmentOptions) (*SegmentResult, error) {
	if loc == nil {
		return nil, fmt.Errorf("engine: %s: no localisation given", source)
	}
	return e.segment(ctx, nil, loc, v, hdr, source, opt)
}

// segment runs a Segment call: the query read unless given, localised with ts unless loc is
// given, segmented, and its masks written. Reading and writing run outside the Engine's
// lock; the networks inside it.
func (e *Engine) segment(ctx context.Context, ts *localize.TemplateSet, loc *localize.Result,
	v *volume.Volume, hdr *nifti.Header, source string,
	opt SegmentOptions) (*SegmentResult, error) {
	start := time.Now()
	res := &SegmentResult{Query: source}
	if e.dw != nil { // the supervised GPU worker segments, or localises for SAM here
		wctx, end, err := e.workerCall(ctx)
		if err != nil {
			return nil, err
		}
		if e.dw.work == gpu.WorkSegment {
			defer end()
			return e.dw.segment(wctx, ts, loc, v, hdr, source, opt)
		}
		if ts != nil {
			t := time.Now()
			loc, err = e.dw.localize(wctx, ts, v, hdr, source)
			ts = nil
			res.Times.Localize = msSince(t)
		}
		end()
		if err != nil {
			return nil, err
		}
	}
	if v == nil {
		if source == "" {
			return nil, fmt.Errorf("engine: no query volume and no query file given")
		}
		t := time.Now()
		img, err := nifti.Read(source, nifti.ReadOptions{})
		if err != nil {
			return nil, fmt.Errorf("engine: query: %w", err)
		}
		v, hdr = img.Volume, img.Header
		res.Times.Read = msSince(t)
	}
	if loc != nil && loc.Shape != v.Shape {
		return nil, fmt.Errorf("engine: localisation of %q is for a grid of shape %v, query "+
			"%s has shape %v", loc.Query, loc.Shape, source, v.Shape)
	}
	var q *localize.Grid
	if ts != nil {
		var err error
		if q, err = localize.PrepareWith(e.cfg, v, source, localize.Image); err != nil {
			return nil, fmt.Errorf("engine: query: %w", err)
		}
	}
	seg, err := e.runNetworks(ctx, ts, q, &loc, v, source, &res.Times)
	if err != nil {
		return nil, err
	}
	res.Labels, res.Localization, res.Segmentation = seg.Labels, loc, seg.Report
	if opt.Mask != "" {
		t := time.Now()
		files, err := segment.Write(seg, hdr, opt.Mask, opt.PerOrgan)
		res.Files = files
		if err != nil {
			return res, fmt.Errorf("engine: mask of %s: %w", source, err)
		}
		res.Times.Write = msSince(t)
	}
	res.Times.Total = msSince(start)
	return res, nil
}

// runNetworks localises q with ts when ts is set (storing the result in *loc), then segments
// v in *loc's boxes, all under the Engine's lock.
func (e *Engine) runNetworks(ctx context.Context, ts *localize.TemplateSet, q *localize.Grid,
	loc **localize.Result, v *volume.Volume, source string,
	times *SegmentTimes) (*segment.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	sam, err := e.samLocked()
	if err != nil {
		return nil, err
	}
	if ts != nil {
		t := time.Now()
		if *loc, _, err = localize.Localize(ctx, &e.net, ts, q, e.cfg); err != nil {
			return nil, err
		}
		times.Localize = msSince(t)
	}
	organs := segment.FromLocalization(*loc)
	if len(organs) == 0 {
		return nil, fmt.Errorf("engine: %s: the localisation holds no organ to segment",
			source)
	}
	t := time.Now()
	seg, err := segment.Segment(ctx, sam, v, source, organs, e.segCfg)
	if err != nil {
		return nil, err
	}
	times.Segment = msSince(t)
	return seg, nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// ReadOrgans reads a label-name file, a JSON object from label value to organ name such as
// {"1": "spleen", "5": "liver"}, and returns its organs in increasing label order.
func ReadOrgans(path string) ([]localize.Organ, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	var raw map[string]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("engine: label names %s: %w", path, err)
	}
	var out []localize.Organ
	for k, name := range raw {
		n, err := strconv.Atoi(k)
		if err != nil || n <= 0 || n > 32767 {
			return nil, fmt.Errorf("engine: label names %s: key %q is not a label value in "+
				"1..32767", path, k)
		}
		out = append(out, localize.Organ{Label: n, Name: name})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("engine: label names %s: no organ", path)
	}
	slices.SortFunc(out, func(a, b localize.Organ) int { return a.Label - b.Label })
	return out, nil
}
