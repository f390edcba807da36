package segment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// Tensor names of the SAM model contract (models/sam.py).
const (
	InputImages     = "images"
	OutputEmbedding = "image_embeddings"
	InputBoxes      = "boxes"
	OutputMasks     = "masks"
	OutputIoU       = "iou_predictions"
	// The public decoder layout (segment-anything's scripts/export_onnx_model.py).
	InputPointCoords = "point_coords"
	InputPointLabels = "point_labels"
	InputMaskInput   = "mask_input"
	InputHasMask     = "has_mask_input"
	InputOrigSize    = "orig_im_size"
	OutputLowRes     = "low_res_masks"
)

// Layout names a decoder's input convention.
type Layout string

// Decoder layouts.
const (
	// LayoutBoxes takes image_embeddings [B,256,64,64] and boxes [B,4] and returns masks
	// [B,1,256,256] and iou_predictions [B,1]: every box of a slice in one call.
	LayoutBoxes Layout = "boxes"
	// LayoutPublic is segment-anything's public ONNX export: a batch of one embedding, a box
	// as two corner points labelled 2 and 3, low_res_masks [1,K,256,256] of which channel
	// 0 is the single-mask output. Its embedding batch is fixed at 1, so each box is its own
	// call.
	LayoutPublic Layout = "public"
)

// errSingleMask refuses a public-layout decoder exported with --return-single-mask.
var errSingleMask = errors.New("segment: the public-layout decoder returns one mask per " +
	"box (exported with --return-single-mask): that is the best of SAM's three multimask " +
	"outputs, not the single-mask output the method uses; export it again without " +
	"--return-single-mask")

// DetectLayout tells a decoder's layout from its input names. It refuses a public-layout
// decoder whose low_res_masks has one channel (see errSingleMask).
func DetectLayout(dec backend.Model) (Layout, error) {
	names := map[string]bool{}
	var list []string
	for _, in := range dec.Inputs() {
		names[in.Name] = true
		list = append(list, in.Name)
	}
	switch {
	case names[OutputEmbedding] && names[InputBoxes] && len(list) == 2:
		return LayoutBoxes, nil
	case names[OutputEmbedding] && names[InputPointCoords] && names[InputPointLabels] &&
		names[InputMaskInput] && names[InputHasMask] && names[InputOrigSize]:
		for _, out := range dec.Outputs() {
			if out.Name == OutputLowRes && len(out.Shape) == 4 && out.Shape[1] == 1 {
				return "", errSingleMask
			}
		}
		return LayoutPublic, nil
	}
	return "", fmt.Errorf("segment: decoder inputs %v are neither (%s, %s) nor the public "+
		"layout (%s, %s, %s, %s, %s, %s)", list, OutputEmbedding, InputBoxes, OutputEmbedding,
		InputPointCoords, InputPointLabels, InputMaskInput, InputHasMask, InputOrigSize)
}

// Models are the two SAM parts. The segmenter does not own them: whoever opened them
// closes them.
type Models struct {
	Encoder, Decoder backend.Model
}

// Config tunes Segment; the zero value means the defaults.
type Config struct {
	// BatchSize is the number of slices per encoder call (default 2). Results do not
	// depend on it when the backend computes batch entries independently.
	BatchSize int
	// Logger receives progress; nil means slog.Default().
	Logger *slog.Logger
	// Kernels runs the window, the slice preprocessing and the mask post-processing; nil
	// means CPUKernels.
	Kernels Kernels
}

// DefaultBatchSize is Config.BatchSize's default.
const DefaultBatchSize = 2

// Organ is one organ to segment: its label in the output map and its 3D box (voxel
// indices i, j, k of the query, inclusive). When Chunks is not empty (SPL localisation),
// each chunk's box is used on that chunk's slices and Box is ignored.
type Organ struct {
	Label  int        `json:"label"`
	Name   string     `json:"name,omitempty"`
	Box    eval.Box   `json:"box"`
	Chunks []eval.Box `json:"chunks,omitempty"`
}

// FromLocalization turns a localisation result into the organs to segment.
func FromLocalization(r *localize.Result) []Organ {
	out := make([]Organ, 0, len(r.Organs))
	for _, o := range r.Organs {
		og := Organ{Label: o.Label, Name: o.Name, Box: o.Box}
		for _, c := range o.Chunks {
			og.Chunks = append(og.Chunks, c.Box)
		}
		out = append(out, og)
	}
	return out
}

// Report describes one Segment call. It marshals to the JSON that `medlsam-fast segment`
// writes.
type Report struct {
	Query   string        `json:"query"`
	Shape   [3]int        `json:"shape"`
	Spacing [3]float64    `json:"spacing_mm"`
	Layout  Layout        `json:"decoder_layout"`
	Batch   int           `json:"encoder_batch_size"`
	Organs  []OrganReport `json:"organs"`
	// SlicesEncoded is the number of distinct slices touched by any box: each is encoded
	// exactly once. EncoderBatches is the number of encoder calls.
	SlicesEncoded  int `json:"slices_encoded"`
	EncoderBatches int `json:"encoder_batches"`
	// DecoderCalls is the number of decoder calls (one per slice for LayoutBoxes, one per
	// box for LayoutPublic) and BoxesDecoded the number of (slice, organ) boxes.
	DecoderCalls int   `json:"decoder_calls"`
	BoxesDecoded int   `json:"boxes_decoded"`
	Times        Times `json:"times_ms"`
}

// OrganReport is one organ of a Report.
type OrganReport struct {
	Organ
	// FirstSlice and LastSlice are the k range segmented; Slices counts its slices.
	FirstSlice int `json:"first_slice"`
	LastSlice  int `json:"last_slice"`
	Slices     int `json:"slices"`
	// Boxes1024 lists the distinct prompt boxes (x0, y0, x1, y1 in 1024-pixel space), one
	// per box (or chunk).
	Boxes1024 [][4]float32 `json:"boxes_1024"`
	// Voxels is the organ's voxel count in the output label map.
	Voxels int `json:"voxels"`
	// MeanIoUPrediction is the decoder's mean predicted IoU over the organ's slices.
	MeanIoUPrediction float64 `json:"mean_iou_prediction"`
}

// NewOrganReport returns the part of o's report that follows from its boxes on a slice of
// nx x ny voxels: the prompt boxes and the slices segmented (the union of the boxes' k
// ranges, first to last inclusive). Voxels and MeanIoUPrediction are left zero.
func NewOrganReport(o Organ, nx, ny int) OrganReport {
	r := OrganReport{Organ: o, FirstSlice: -1, LastSlice: -1}
	boxes := o.Chunks
	if len(boxes) == 0 {
		boxes = []eval.Box{o.Box}
	}
	ks := map[int]bool{}
	for _, b := range boxes {
		r.Boxes1024 = append(r.Boxes1024, Box1024(b, nx, ny))
		for k := b.Min[2]; k <= b.Max[2]; k++ {
			ks[k] = true
		}
	}
	for k := range ks {
		if r.FirstSlice < 0 || k < r.FirstSlice {
			r.FirstSlice = k
		}
		r.LastSlice = max(r.LastSlice, k)
	}
	r.Slices = len(ks)
	return r
}

// LabelReport returns the report of a label map made elsewhere (by the GPU worker): the
// query's name, shape and spacing, the encoder batch it ran with, and per organ its boxes,
// its slices and its voxel count in labels. The network counters and times stay zero.
func LabelReport(query string, labels *volume.Volume, organs []Organ, batch int) Report {
	r := Report{Query: query, Shape: labels.Shape, Spacing: labels.Spacing, Batch: batch}
	count := map[int]int{}
	for _, v := range labels.Data {
		if v != 0 {
			count[int(v)]++
		}
	}
	for _, o := range organs {
		or := NewOrganReport(o, labels.Shape[0], labels.Shape[1])
		or.Voxels = count[o.Label]
		r.Organs = append(r.Organs, or)
	}
	return r
}

// Times are wall-clock milliseconds per stage.
type Times struct {
	Window     float64 `json:"window"`
	Preprocess float64 `json:"preprocess"`
	Encoder    float64 `json:"encoder"`
	Decoder    float64 `json:"decoder"`
	Post       float64 `json:"post"`
	Total      float64 `json:"total"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sliceBox is one organ's prompt on one slice.
type sliceBox struct {
	organ int
	box   [4]float32
}

// plan maps every slice touched by a box to its prompts, in organ order, and validates the
// organs against the volume's shape.
func plan(organs []Organ, shape [3]int) (map[int][]sliceBox, []int, error) {
	seen := map[int]bool{}
	byK := map[int][]sliceBox{}
	for n, o := range organs {
		if o.Label < 1 || o.Label > math.MaxInt16 {
			return nil, nil, fmt.Errorf("segment: organ %d label %d outside [1, %d]", n,
				o.Label, math.MaxInt16)
		}
		if seen[o.Label] {
			return nil, nil, fmt.Errorf("segment: label %d given twice", o.Label)
		}
		seen[o.Label] = true
		boxes := o.Chunks
		if len(boxes) == 0 {
			boxes = []eval.Box{o.Box}
		}
		// Later chunks overwrite earlier ones on shared slices, as in the reference.
		mine := map[int][4]float32{}
		for c, b := range boxes {
			for a := 0; a < 3; a++ {
				if b.Min[a] < 0 || b.Max[a] >= shape[a] || b.Min[a] > b.Max[a] {
					return nil, nil, fmt.Errorf("segment: organ %d (label %d) box %d %v..%v "+
						"is empty or outside the volume %v", n, o.Label, c, b.Min, b.Max, shape)
				}
			}
			p := Box1024(b, shape[0], shape[1])
			for k := b.Min[2]; k <= b.Max[2]; k++ {
				mine[k] = p
			}
		}
		for k, p := range mine {
			byK[k] = append(byK[k], sliceBox{organ: n, box: p})
		}
	}
	ks := make([]int, 0, len(byK))
	for k, l := range byK {
		ks = append(ks, k)
		slices.SortFunc(l, func(a, b sliceBox) int { return a.organ - b.organ })
	}
	slices.Sort(ks)
	return byK, ks, nil
}

// ValidateOrgans checks organs as Segment does before any work: labels in [1, 32767], each
// once, every box (and chunk) not empty and inside a volume of the given shape.
func ValidateOrgans(organs []Organ, shape [3]int) error {
	_, _, err := plan(organs, shape)
	return err
}

// Result is what Segment returns: the label map on the query's grid (labels as float32
// values, 0 background) and the report.
type Result struct {
	Labels *volume.Volume
	Report Report
}

// Segment segments organs in the query volume v (read without reorientation, so slices are
// its third voxel axis) with the SAM models: the window of method.md 5.2 over the whole
// volume, then, in batches of cfg.BatchSize, every slice that any organ's box covers is
// preprocessed (kernels.SAMPreprocess) and encoded once, every box of the slice decoded
// (one call with LayoutBoxes), and the masks post-processed into the label map
// (kernels.SAMMaskPost, whose overlap rule is: highest probability wins, ties to the organ
// listed first). source names the query in the report and in errors.
func Segment(ctx context.Context, m Models, v *volume.Volume, source string, organs []Organ,
	cfg Config) (*Result, error) {
	start := time.Now()
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("segment: %s: %w", source, err)
	}
	if m.Encoder == nil || m.Decoder == nil {
		return nil, fmt.Errorf("segment: encoder and decoder models are both required")
	}
	layout, err := DetectLayout(m.Decoder)
	if err != nil {
		return nil, err
	}
	cfg.BatchSize = backend.CapBatch(m.Encoder, cfg.BatchSize)
	byK, ks, err := plan(organs, v.Shape)
	if err != nil {
		return nil, fmt.Errorf("%w (query %s)", err, source)
	}
	nx, ny := v.Shape[0], v.Shape[1]
	rep := Report{Query: source, Shape: v.Shape, Spacing: v.Spacing, Layout: layout,
		Batch: cfg.BatchSize, SlicesEncoded: len(ks)}

	t0 := time.Now()
	win := make([]uint8, len(v.Data))
	kern := kernelsOr(cfg.Kernels)
	if err := kern.SAMWindow(win, v.Data); err != nil {
		return nil, fmt.Errorf("segment: %s: %w", source, err)
	}
	rep.Times.Window = ms(time.Since(t0))

	labels := make([]int16, len(v.Data))
	iouSum := make([]float64, len(organs))
	dec := decoder{model: m.Decoder, layout: layout, h: ny, w: nx}
	const S = kernels.SAMImageSize
	var images []float32
	for lo := 0; lo < len(ks); lo += cfg.BatchSize {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("segment: %s: %w", source, err)
		}
		batch := ks[lo:min(lo+cfg.BatchSize, len(ks))]
		t1 := time.Now()
		n := len(batch) * 3 * S * S
		if cap(images) < n {
			images = make([]float32, n)
		}
		images = images[:n]
		if err := kern.SAMPreprocess(images, win, v.Shape, batch); err != nil {
			return nil, fmt.Errorf("segment: %s: %w", source, err)
		}
		t2 := time.Now()
		outs, err := m.Encoder.Run([]backend.Tensor{{Name: InputImages,
			Shape: []int64{int64(len(batch)), 3, S, S}, Data: images}},
			[]string{OutputEmbedding})
		if err != nil {
			return nil, fmt.Errorf("segment: %s: encoder: %w", source, err)
		}
		emb := outs[0]
		if len(emb.Shape) != 4 || emb.Shape[0] != int64(len(batch)) ||
			int64(len(emb.Data)) != backend.Elements(emb.Shape) {
			return nil, fmt.Errorf("segment: %s: encoder returned %s of shape %v (%d "+
				"values) for %d slices", source, OutputEmbedding, emb.Shape, len(emb.Data),
				len(batch))
		}
		per := len(emb.Data) / len(batch)
		rep.EncoderBatches++
		rep.Times.Preprocess += ms(t2.Sub(t1))
		rep.Times.Encoder += ms(time.Since(t2))
		// The batch's masks are post-processed together: one kernel call per batch (and
		// per low-resolution size, which a decoder keeps fixed).
		var post []MaskSlice
		postRes := 0
		flush := func() error {
			if len(post) == 0 {
				return nil
			}
			t := time.Now()
			err := kern.SAMMaskPostSlices(labels, v.Shape, postRes, post)
			rep.Times.Post += ms(time.Since(t))
			post = post[:0]
			return err
		}
		for b, k := range batch {
			boxes := byK[k]
			t3 := time.Now()
			logits, lowRes, ious, calls, err := dec.decode(emb.Shape[1:],
				emb.Data[b*per:(b+1)*per], boxes)
			if err != nil {
				return nil, fmt.Errorf("segment: %s: slice %d: %w", source, k, err)
			}
			rep.DecoderCalls += calls
			rep.BoxesDecoded += len(boxes)
			rep.Times.Decoder += ms(time.Since(t3))
			lab := make([]int16, len(boxes))
			for i, sb := range boxes {
				lab[i] = int16(organs[sb.organ].Label)
				iouSum[sb.organ] += float64(ious[i])
			}
			if lowRes != postRes {
				if err := flush(); err != nil {
					return nil, fmt.Errorf("segment: %s: slices before %d: %w", source, k, err)
				}
				postRes = lowRes
			}
			post = append(post, MaskSlice{Z: k, Logits: logits, Labels: lab})
		}
		if err := flush(); err != nil {
			return nil, fmt.Errorf("segment: %s: slices %d to %d: %w", source, batch[0],
				batch[len(batch)-1], err)
		}
		// Progress at every tenth of the slices (the summary follows at the end).
		if done := lo + len(batch); done < len(ks) && done*10/len(ks) != lo*10/len(ks) {
			cfg.Logger.Info("segment progress", "query", source, "slices_done", done,
				"slices", len(ks))
		}
	}

	out := &volume.Volume{Data: make([]float32, len(labels)), Shape: v.Shape,
		Spacing: v.Spacing, Affine: v.Affine}
	count := map[int]int{}
	for i, l := range labels {
		out.Data[i] = float32(l)
		if l != 0 {
			count[int(l)]++
		}
	}
	for n, o := range organs {
		or := NewOrganReport(o, nx, ny)
		or.Voxels = count[o.Label]
		if or.Slices > 0 {
			or.MeanIoUPrediction = iouSum[n] / float64(or.Slices)
		}
		rep.Organs = append(rep.Organs, or)
	}
	rep.Times.Total = ms(time.Since(start))
	cfg.Logger.Info("segmented", "query", source, "organs", len(organs),
		"slices", rep.SlicesEncoded, "encoder_batches", rep.EncoderBatches,
		"decoder_calls", rep.DecoderCalls, "ms", rep.Times.Total)
	return &Result{Labels: out, Report: rep}, nil
}
