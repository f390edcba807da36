package segment

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/ort"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

var (
	ctPath     = filepath.Join("..", "..", "..", "shared", "data", "ct", "abdomen_ct.nii.gz")
	ctLabels   = filepath.Join("..", "..", "..", "shared", "data", "ct", "abdomen_ct_labels.nii.gz")
	tinyModels = filepath.Join("..", "..", "testdata", "models")
)

func openTiny(t *testing.T, name string) *ort.Model {
	t.Helper()
	m, err := ort.Open(filepath.Join(tinyModels, name), ort.Options{BatchInvariant: true})
	if errors.Is(err, backend.ErrUnavailable) {
		t.Skipf("ONNX Runtime not available (%v); run bash build/install-onnxruntime.sh", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestPipelineCT runs the whole method on the shared abdomen CT with the tiny random models:
// template set (the CT itself with its labels), localisation, segmentation, write, read
// back, evaluation. The random models make the masks meaningless; the test checks the
// plumbing, the call counts and the geometry.
func TestPipelineCT(t *testing.T) {
	for _, p := range []string{ctPath, ctLabels} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("shared CT data absent (%v); it lives in ../shared/data", err)
		}
	}
	if testing.Short() {
		t.Skip("whole pipeline: skipped in -short mode")
	}
	ctx := context.Background()
	full, enc := openTiny(t, "medlam_tiny.onnx"), openTiny(t, "medlam_tiny-encoder.onnx")
	samEnc, samDec := openTiny(t, "sam_tiny-encoder.onnx"), openTiny(t, "sam_tiny-decoder.onnx")
	img, err := nifti.Read(ctPath, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lab, err := nifti.Read(ctLabels, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gi, err := localize.Prepare(img.Volume, ctPath, localize.Image)
	if err != nil {
		t.Fatal(err)
	}
	gl, err := localize.Prepare(lab.Volume, ctLabels, localize.Labels)
	if err != nil {
		t.Fatal(err)
	}
	net := &localize.Network{Full: full, Encoder: enc, ModelSHA256: full.Manifest().SHA256}
	organs := []localize.Organ{{Label: 1, Name: "spleen"}, {Label: 2, Name: "kidney_right"},
		{Label: 5, Name: "liver"}}
	cfg := localize.Config{Seed: 1, Logger: quiet}
	ts, err := localize.BuildTemplateSet(ctx, net,
		[]localize.Template{{Image: gi, Labels: gl}}, organs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	loc, _, err := localize.Localize(ctx, net, ts, gi, cfg)
	if err != nil {
		t.Fatal(err)
	}
	seg := FromLocalization(loc)
	res, err := Segment(ctx, Models{Encoder: samEnc, Decoder: samDec}, img.Volume, ctPath,
		seg, Config{BatchSize: 3, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Report
	touched := map[int]bool{}
	boxes := 0
	for _, o := range seg {
		for k := o.Box.Min[2]; k <= o.Box.Max[2]; k++ {
			touched[k] = true
			boxes++
		}
	}
	if r.SlicesEncoded != len(touched) || r.DecoderCalls != len(touched) ||
		r.BoxesDecoded != boxes || r.EncoderBatches != (len(touched)+2)/3 {
		t.Errorf("report: %d slices, %d batches, %d decoder calls, %d boxes; boxes touch %d "+
			"slices with %d boxes", r.SlicesEncoded, r.EncoderBatches, r.DecoderCalls,
			r.BoxesDecoded, len(touched), boxes)
	}
	out := filepath.Join(t.TempDir(), "mask.nii.gz")
	if _, err := Write(res, img.Header, out, false); err != nil {
		t.Fatal(err)
	}
	back, err := nifti.Read(out, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Volume.Shape != img.Volume.Shape || back.Volume.Affine != img.Volume.Affine {
		t.Errorf("written mask geometry %v %v, query %v %v", back.Volume.Shape,
			back.Volume.Affine, img.Volume.Shape, img.Volume.Affine)
	}
	scores, err := eval.ScoreSegmentation(back.Volume, lab.Volume, []int{1, 2, 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scores {
		if s.RefVoxels == 0 || (s.Dice != nil && (*s.Dice < 0 || *s.Dice > 1)) {
			t.Errorf("score %+v", s)
		}
		t.Logf("label %d: pred %d ref %d voxels", s.Label, s.PredVoxels, s.RefVoxels)
	}
	t.Logf("times %+v", r.Times)
}

// TestLayoutsAgree decodes the same boxes on one embedding with the tiny decoder in both
// layouts: models/sam.py exports sam_tiny-decoder.onnx and sam_tiny-decoder-public.onnx from
// the same seeded weights, so the single-mask logits and IoU predictions must agree. The
// public layout's outputs are sized at run time (masks follow orig_im_size), which engine/ort
// serves with outputs that ONNX Runtime allocates.
func TestLayoutsAgree(t *testing.T) {
	ours := openTiny(t, "sam_tiny-decoder.onnx")
	pub := openTiny(t, "sam_tiny-decoder-public.onnx")
	for _, m := range []*ort.Model{ours, pub} {
		if _, err := DetectLayout(m); err != nil {
			t.Fatal(err)
		}
	}
	emb := make([]float32, 256*64*64)
	for i := range emb {
		emb[i] = float32(math.Sin(0.05*float64(i%4096) + 0.1*float64(i/4096)))
	}
	boxes := []sliceBox{{box: [4]float32{200, 300, 600, 700}}, {box: [4]float32{0, 10, 1023, 900}}}
	shape := []int64{256, 64, 64}
	a, lrA, iouA, callsA, err := decoder{model: ours, layout: LayoutBoxes}.decode(shape, emb, boxes)
	if err != nil {
		t.Fatal(err)
	}
	b, lrB, iouB, callsB, err := decoder{model: pub, layout: LayoutPublic, h: 101, w: 122}.decode(
		shape, emb, boxes)
	if err != nil {
		t.Fatal(err)
	}
	if lrA != lrB || len(a) != len(b) || callsA != 1 || callsB != 2 {
		t.Fatalf("low-res %d vs %d, %d vs %d logits, calls %d and %d", lrA, lrB, len(a),
			len(b), callsA, callsB)
	}
	// The two boxes must give different masks, or the comparison would not see the prompt.
	per := lrA * lrA
	if slices.Equal(a[:per], a[per:]) {
		t.Fatal("both boxes gave the same logits: the decoder ignores the box")
	}
	var worst float64
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i]))/(1+math.Abs(float64(a[i]))))
	}
	if worst > 1e-3 || math.Abs(float64(iouA[0]-iouB[0])) > 1e-3 ||
		math.Abs(float64(iouA[1]-iouB[1])) > 1e-3 {
		t.Errorf("layouts disagree: worst relative logit difference %g, IoU %v vs %v", worst,
			iouA, iouB)
	}
	t.Logf("worst relative logit difference %g, IoU %v vs %v", worst, iouA, iouB)
}

// TestSegmentLayoutsAgree segments the same query and boxes through Segment with each tiny
// decoder layout: the label maps must agree (the two decoders share their weights), and
// the report must count one decoder call per slice for ours, one per box for the public one.
func TestSegmentLayoutsAgree(t *testing.T) {
	enc := openTiny(t, "sam_tiny-encoder.onnx")
	v, err := volume.New([3]int{64, 56, 3}, [3]float64{1.5, 1.5, 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range v.Data {
		x, y := i%64, (i/64)%56
		v.Data[i] = float32(300*math.Sin(0.2*float64(x))*math.Cos(0.15*float64(y))) + 100
	}
	organs := []Organ{
		{Label: 3, Box: eval.Box{Min: [3]int{5, 6, 0}, Max: [3]int{40, 30, 2}}},
		{Label: 8, Box: eval.Box{Min: [3]int{20, 15, 1}, Max: [3]int{60, 50, 2}}},
	}
	var maps [2]*Result
	for n, name := range []string{"sam_tiny-decoder.onnx", "sam_tiny-decoder-public.onnx"} {
		dec := openTiny(t, name)
		maps[n], err = Segment(context.Background(), Models{Encoder: enc, Decoder: dec}, v,
			"q", organs, Config{Logger: quiet})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	ours, pub := maps[0].Report, maps[1].Report
	if ours.Layout != LayoutBoxes || pub.Layout != LayoutPublic || ours.DecoderCalls != 3 ||
		pub.DecoderCalls != 5 || ours.BoxesDecoded != 5 || pub.BoxesDecoded != 5 {
		t.Errorf("reports: %s %d calls %d boxes; %s %d calls %d boxes", ours.Layout,
			ours.DecoderCalls, ours.BoxesDecoded, pub.Layout, pub.DecoderCalls, pub.BoxesDecoded)
	}
	differ, labelled := 0, 0
	for i, l := range maps[0].Labels.Data {
		if l != maps[1].Labels.Data[i] {
			differ++
		}
		if l != 0 {
			labelled++
		}
	}
	if differ > len(v.Data)/1000 || labelled == 0 {
		t.Errorf("%d of %d voxels differ between the layouts; %d labelled", differ, len(v.Data),
			labelled)
	}
	t.Logf("%d voxels differ, %d labelled of %d", differ, labelled, len(v.Data))
}
