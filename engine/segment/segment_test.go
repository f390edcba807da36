package segment

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/phantom"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestBox1024(t *testing.T) {
	tests := []struct {
		name   string
		b      eval.Box
		nx, ny int
		want   [4]float32
	}{
		{"scaled and widened", eval.Box{Min: [3]int{100, 50, 0}, Max: [3]int{200, 60, 3}},
			512, 256, [4]float32{190, 190, 410, 250}},
		{"clipped", eval.Box{Min: [3]int{0, 1, 0}, Max: [3]int{511, 255, 0}}, 512, 256,
			[4]float32{0, 0, 1023, 1023}},
		// 1*1024/2048 = 0.5 rounds to 0 and 3*0.5 = 1.5 to 2 (half to even).
		{"half to even", eval.Box{Min: [3]int{1, 1, 0}, Max: [3]int{3, 3, 0}}, 2048, 2048,
			[4]float32{0, 0, 12, 12}},
		{"non-square", eval.Box{Min: [3]int{10, 10, 0}, Max: [3]int{20, 20, 0}}, 100, 50,
			[4]float32{92, 195, 215, 420}},
	}
	for _, tc := range tests {
		if got := Box1024(tc.b, tc.nx, tc.ny); got != tc.want {
			t.Errorf("%s: Box1024 = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// fakeModels returns an encoder whose embedding is zeros and a decoder (ours or the public
// layout) whose mask logits are +10 on the low-resolution pixels whose centre lies in the
// box and -10 elsewhere, with IoU prediction 0.5.
func fakeModels(public bool) (*backend.Fake, *backend.Fake) {
	const lr = 256
	enc := backend.NewFake(
		[]backend.TensorInfo{{Name: InputImages, Shape: []int64{-1, 3, 1024, 1024}}},
		[]backend.TensorInfo{{Name: OutputEmbedding, Shape: []int64{-1, 256, 64, 64}}},
		func(in map[string]backend.Tensor, batch int64) (map[string][]float32, error) {
			return map[string][]float32{OutputEmbedding: make([]float32, batch*256*64*64)}, nil
		})
	boxMask := func(dst []float32, b []float32) {
		for y := 0; y < lr; y++ {
			for x := 0; x < lr; x++ {
				cx, cy := float32(x)*4+2, float32(y)*4+2
				v := float32(-10)
				if cx >= b[0] && cx <= b[2] && cy >= b[1] && cy <= b[3] {
					v = 10
				}
				dst[y*lr+x] = v
			}
		}
	}
	if public {
		dec := backend.NewFake(
			[]backend.TensorInfo{
				{Name: OutputEmbedding, Shape: []int64{1, 256, 64, 64}},
				{Name: InputPointCoords, Shape: []int64{1, -1, 2}},
				{Name: InputPointLabels, Shape: []int64{1, -1}},
				{Name: InputMaskInput, Shape: []int64{1, 1, lr, lr}},
				{Name: InputHasMask, Shape: []int64{1}},
				{Name: InputOrigSize, Shape: []int64{2}},
			},
			[]backend.TensorInfo{
				{Name: OutputLowRes, Shape: []int64{1, 4, lr, lr}},
				{Name: OutputIoU, Shape: []int64{1, 4}},
			},
			func(in map[string]backend.Tensor, _ int64) (map[string][]float32, error) {
				low := make([]float32, 4*lr*lr)
				boxMask(low, in[InputPointCoords].Data)
				return map[string][]float32{OutputLowRes: low,
					OutputIoU: {0.5, 0, 0, 0}}, nil
			})
		return enc, dec
	}
	dec := backend.NewFake(
		[]backend.TensorInfo{
			{Name: OutputEmbedding, Shape: []int64{-1, 256, 64, 64}},
			{Name: InputBoxes, Shape: []int64{-1, 4}},
		},
		[]backend.TensorInfo{
			{Name: OutputMasks, Shape: []int64{-1, 1, lr, lr}},
			{Name: OutputIoU, Shape: []int64{-1, 1}},
		},
		func(in map[string]backend.Tensor, batch int64) (map[string][]float32, error) {
			m := make([]float32, batch*lr*lr)
			iou := make([]float32, batch)
			for b := range batch {
				boxMask(m[b*lr*lr:], in[InputBoxes].Data[4*b:])
				iou[b] = 0.5
			}
			return map[string][]float32{OutputMasks: m, OutputIoU: iou}, nil
		})
	return enc, dec
}

// TestEncoderCalls checks that each touched slice is encoded once, in batches, whatever the
// number of organs on it, and that each slice's boxes go to the decoder together.
func TestEncoderCalls(t *testing.T) {
	v, err := volume.New([3]int{40, 30, 20}, [3]float64{1, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range v.Data {
		v.Data[i] = float32(i%300) - 100
	}
	organs := []Organ{
		{Label: 1, Box: eval.Box{Min: [3]int{2, 2, 2}, Max: [3]int{10, 10, 8}}},
		{Label: 2, Box: eval.Box{Min: [3]int{20, 5, 5}, Max: [3]int{30, 15, 12}}},
		{Label: 3, Box: eval.Box{Min: [3]int{5, 20, 10}, Max: [3]int{15, 25, 10}}},
		// SPL chunks overlapping on slice 15; the later chunk's box is used there.
		{Label: 4, Chunks: []eval.Box{{Min: [3]int{30, 20, 14}, Max: [3]int{35, 25, 15}},
			{Min: [3]int{32, 22, 15}, Max: [3]int{36, 27, 17}}}},
	}
	// Slices: 2..12 (11) and 14..17 (4): 15 distinct; boxes: 7 + 8 + 1 + 4 = 20.
	tests := []struct {
		public  bool
		batch   int
		batches []int64
		decode  int
	}{
		{false, 4, []int64{4, 4, 4, 3}, 15},
		{false, 1, slices.Repeat([]int64{1}, 15), 15},
		{true, 15, []int64{15}, 20},
	}
	for _, tc := range tests {
		enc, dec := fakeModels(tc.public)
		res, err := Segment(context.Background(), Models{Encoder: enc, Decoder: dec}, v, "q",
			organs, Config{BatchSize: tc.batch, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		r := res.Report
		if got := enc.Batches(); !slices.Equal(got, tc.batches) {
			t.Errorf("batch %d: encoder batches %v, want %v", tc.batch, got, tc.batches)
		}
		if r.SlicesEncoded != 15 || r.EncoderBatches != len(tc.batches) ||
			r.DecoderCalls != tc.decode || r.BoxesDecoded != 20 || dec.Calls() != tc.decode {
			t.Errorf("public %v batch %d: report %d slices, %d batches, %d decoder calls "+
				"(fake saw %d), %d boxes", tc.public, tc.batch, r.SlicesEncoded,
				r.EncoderBatches, r.DecoderCalls, dec.Calls(), r.BoxesDecoded)
		}
		if !tc.public {
			// Slices 5..8 carry organs 1 and 2; 10 carries 2 and 3; 15 carries 4 once.
			want := []int64{1, 1, 1, 2, 2, 2, 2, 1, 2, 1, 1, 1, 1, 1, 1}
			if got := dec.Batches(); !slices.Equal(got, want) {
				t.Errorf("decoder batches %v, want %v", got, want)
			}
		}
		o4 := r.Organs[3]
		if o4.FirstSlice != 14 || o4.LastSlice != 17 || o4.Slices != 4 ||
			len(o4.Boxes1024) != 2 || o4.MeanIoUPrediction != 0.5 {
			t.Errorf("organ 4 report %+v", o4)
		}
		// Organ 4's first chunk's box is not used on slice 15: voxel (30, 20, 15) is
		// outside the second chunk's box (widened by 10 px = 0.4 voxel).
		at := func(i, j, k int) float32 { return res.Labels.At(i, j, k) }
		if at(30, 20, 14) != 4 || at(30, 20, 15) != 0 || at(34, 24, 15) != 4 ||
			at(6, 6, 2) != 1 || at(6, 6, 9) != 0 || at(25, 10, 12) != 2 {
			t.Errorf("labels at probes: %v %v %v %v %v %v", at(30, 20, 14), at(30, 20, 15),
				at(34, 24, 15), at(6, 6, 2), at(6, 6, 9), at(25, 10, 12))
		}
	}
}

func TestSegmentRefuses(t *testing.T) {
	v, _ := volume.New([3]int{8, 8, 4}, [3]float64{1, 1, 1})
	enc, dec := fakeModels(false)
	m := Models{Encoder: enc, Decoder: dec}
	tests := []struct {
		name   string
		organs []Organ
	}{
		{"outside", []Organ{{Label: 1, Box: eval.Box{Max: [3]int{8, 7, 3}}}}},
		{"inverted", []Organ{{Label: 1, Box: eval.Box{Min: [3]int{3, 0, 0}, Max: [3]int{2, 7, 3}}}}},
		{"label 0", []Organ{{Label: 0, Box: eval.Box{Max: [3]int{7, 7, 3}}}}},
		{"duplicate", []Organ{{Label: 2, Box: eval.Box{Max: [3]int{7, 7, 3}}},
			{Label: 2, Box: eval.Box{Max: [3]int{7, 7, 3}}}}},
	}
	for _, tc := range tests {
		if _, err := Segment(context.Background(), m, v, "q", tc.organs,
			Config{Logger: quiet}); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	bad := backend.NewFake([]backend.TensorInfo{{Name: "x", Shape: []int64{-1}}}, nil, nil)
	if _, err := DetectLayout(bad); err == nil {
		t.Error("unknown decoder layout accepted")
	}
	// A public decoder exported with --return-single-mask: one low_res_masks channel.
	_, pub := fakeModels(true)
	outs := slices.Clone(pub.Outputs())
	outs[0].Shape = []int64{1, 1, 256, 256}
	single := backend.NewFake(pub.Inputs(), outs, nil)
	if _, err := DetectLayout(single); !errors.Is(err, errSingleMask) {
		t.Errorf("single-mask public decoder: got %v, want errSingleMask", err)
	}
	if l, err := DetectLayout(pub); l != LayoutPublic || err != nil {
		t.Errorf("public decoder: %q, %v", l, err)
	}
}

// TestPhantomBoxPixels checks that a box around a phantom organ, as Box1024 makes it,
// covers the organ's pixels in the 1024 image (kernels.LinearTaps' half-pixel convention:
// voxel i sits at (i + 0.5) * 1024/W - 0.5) and reaches at most the margin beyond them.
// The method scales voxel indices, not centres, so its box sits (1024/W - 1)/2 pixels
// before the voxel centres; the 10-pixel margin absorbs that only for W, H above about 49,
// which is why this phantom's slices are 96 x 80.
func TestPhantomBoxPixels(t *testing.T) {
	p, err := phantom.Generate(phantom.Config{Shape: [3]int{96, 80, 24},
		Spacing: [3]float64{2, 2.5, 4}, Orientation: "LPS", Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	nx, ny := p.Labels.Shape[0], p.Labels.Shape[1]
	for _, o := range p.Organs {
		lo, hi, err := p.Box(o.Label)
		if err != nil {
			t.Fatal(err)
		}
		b := Box1024(eval.Box{Min: lo, Max: hi}, nx, ny)
		pos := func(v, n int) float64 { return (float64(v)+0.5)*1024/float64(n) - 0.5 }
		for k := lo[2]; k <= hi[2]; k++ {
			for j := lo[1]; j <= hi[1]; j++ {
				for i := lo[0]; i <= hi[0]; i++ {
					if p.Labels.At(i, j, k) != float32(o.Label) {
						continue
					}
					x, y := pos(i, nx), pos(j, ny)
					if x < float64(b[0]) || x > float64(b[2]) || y < float64(b[1]) ||
						y > float64(b[3]) {
						t.Fatalf("%s voxel (%d,%d,%d) at (%.1f, %.1f) outside box %v", o.Name,
							i, j, k, x, y, b)
					}
				}
			}
		}
		reach := BoxMargin + 1024.0/float64(min(nx, ny))
		if float64(b[0]) < pos(lo[0], nx)-reach || float64(b[2]) > pos(hi[0], nx)+reach {
			t.Errorf("%s: box %v reaches beyond the organ's columns %d..%d", o.Name, b,
				lo[0], hi[0])
		}
	}
}

// TestWriteWorld segments a phantom in LPS orientation with box-shaped fake masks, writes
// the label map with the query's header, reads it back and checks in world coordinates
// that every organ voxel is labelled with its organ and that every labelled voxel lies
// within the organ's box widened by the prompt margin.
func TestWriteWorld(t *testing.T) {
	p, err := phantom.Generate(phantom.Config{Shape: [3]int{96, 80, 24},
		Spacing: [3]float64{2, 2.5, 4}, Orientation: "LPS", Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	qpath := filepath.Join(dir, "query.nii.gz")
	if err := nifti.Write(qpath, p.Image, nifti.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	q, err := nifti.Read(qpath, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	organs := make([]Organ, 0, 2)
	for _, o := range p.Organs[:2] {
		lo, hi, err := p.Box(o.Label)
		if err != nil {
			t.Fatal(err)
		}
		organs = append(organs, Organ{Label: o.Label, Name: o.Name,
			Box: eval.Box{Min: lo, Max: hi}})
	}
	enc, dec := fakeModels(false)
	res, err := Segment(context.Background(), Models{Encoder: enc, Decoder: dec}, q.Volume,
		qpath, organs, Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "mask.nii.gz")
	files, err := Write(res, q.Header, out, true)
	if err != nil || len(files) != 3 {
		t.Fatalf("Write: %v, %v", files, err)
	}
	m, err := nifti.Read(out, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Volume.Shape != p.Labels.Shape {
		t.Fatalf("mask shape %v, labels %v", m.Volume.Shape, p.Labels.Shape)
	}
	// Map every voxel of the mask through its own affine to the world and back onto the
	// phantom's grid: it must be the same voxel.
	sh := p.Labels.Shape
	for k := 0; k < sh[2]; k++ {
		for j := 0; j < sh[1]; j++ {
			for i := 0; i < sh[0]; i++ {
				w := m.Volume.Affine.Apply([3]float64{float64(i), float64(j), float64(k)})
				g := p.WorldToVoxel(w)
				pi := [3]int{int(math.Round(g[0])), int(math.Round(g[1])), int(math.Round(g[2]))}
				if pi != [3]int{i, j, k} {
					t.Fatalf("mask voxel (%d,%d,%d) is at world %v = phantom voxel %v", i, j,
						k, w, g)
				}
				lab := p.Labels.At(i, j, k)
				got := m.Volume.At(i, j, k)
				for n, o := range organs {
					if lab == float32(o.Label) && got != lab {
						// Overlap: the other organ may have won this voxel.
						if other := organs[1-n]; got != float32(other.Label) {
							t.Fatalf("organ %d voxel (%d,%d,%d) labelled %v", o.Label, i, j,
								k, got)
						}
					}
					if got == float32(o.Label) {
						b := o.Box
						sx := 1 + BoxMargin*float64(sh[0])/1024
						sy := 1 + BoxMargin*float64(sh[1])/1024
						if k < b.Min[2] || k > b.Max[2] || float64(i) < float64(b.Min[0])-sx ||
							float64(i) > float64(b.Max[0])+sx ||
							float64(j) < float64(b.Min[1])-sy || float64(j) > float64(b.Max[1])+sy {
							t.Fatalf("voxel (%d,%d,%d) labelled %d outside its box %v", i, j, k,
								o.Label, b)
						}
					}
				}
			}
		}
	}
	per, err := nifti.Read(files[1], nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range per.Volume.Data {
		if (v == 1) != (m.Volume.Data[i] == float32(organs[0].Label)) {
			t.Fatalf("per-organ file differs from the label map at voxel %d", i)
		}
	}
}

// TestNewOrganReport pins the slice range of an organ: the union of its boxes' inclusive k
// ranges, whatever their order, with one prompt box per box.
func TestNewOrganReport(t *testing.T) {
	box := func(k0, k1 int) eval.Box {
		return eval.Box{Min: [3]int{2, 3, k0}, Max: [3]int{10, 12, k1}}
	}
	for _, tc := range []struct {
		name               string
		o                  Organ
		first, last, count int
		prompts            int
	}{
		{"one box", Organ{Label: 1, Box: box(4, 4)}, 4, 4, 1, 1},
		{"box ignored with chunks", Organ{Label: 1, Box: box(0, 20),
			Chunks: []eval.Box{box(7, 9), box(3, 5)}}, 3, 9, 6, 2},
		{"overlapping chunks", Organ{Label: 2, Chunks: []eval.Box{box(3, 6), box(5, 8)}},
			3, 8, 6, 2},
	} {
		r := NewOrganReport(tc.o, 16, 16)
		if r.FirstSlice != tc.first || r.LastSlice != tc.last || r.Slices != tc.count ||
			len(r.Boxes1024) != tc.prompts || r.Label != tc.o.Label {
			t.Errorf("%s: slices %d..%d (%d), %d prompts; want %d..%d (%d), %d", tc.name,
				r.FirstSlice, r.LastSlice, r.Slices, len(r.Boxes1024), tc.first, tc.last,
				tc.count, tc.prompts)
		}
	}
}

// TestWriteFailureLeavesNothing: when a per-organ file cannot be written, Write removes the
// files it already wrote.
func TestWriteFailureLeavesNothing(t *testing.T) {
	v, err := volume.New([3]int{6, 5, 4}, [3]float64{1, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	v.Data[3], v.Data[40] = 1, 2
	r := &Result{Labels: v, Report: Report{Organs: []OrganReport{
		{Organ: Organ{Label: 1}}, {Organ: Organ{Label: 2}}}}}
	for _, tc := range []struct {
		name    string
		blocked string // a directory where this file would go
		files   int
	}{
		{"all written", "", 3},
		{"second organ blocked", "mask_label2.nii.gz", 0},
		{"map blocked", "mask.nii.gz", 0},
	} {
		dir := t.TempDir()
		if tc.blocked != "" {
			if err := os.Mkdir(filepath.Join(dir, tc.blocked), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		files, err := Write(r, nil, filepath.Join(dir, "mask.nii.gz"), true)
		if (err != nil) != (tc.files == 0) || len(files) != tc.files {
			t.Errorf("%s: files %v, error %v", tc.name, files, err)
		}
		left, _ := filepath.Glob(filepath.Join(dir, "*"))
		if tc.files == 0 && (len(left) != 1 || filepath.Base(left[0]) != tc.blocked) {
			t.Errorf("%s: left %v", tc.name, left)
		}
	}
}

// truncated is a model whose first output has half the values its shape says: a backend
// that broke its contract.
type truncated struct{ backend.Model }

func (m truncated) Run(in []backend.Tensor, names []string) ([]backend.Tensor, error) {
	outs, err := m.Model.Run(in, names)
	if err == nil {
		outs[0].Data = outs[0].Data[:len(outs[0].Data)/2]
	}
	return outs, err
}

// TestSegmentShortOutputs: outputs shorter than their shapes are errors, not panics.
func TestSegmentShortOutputs(t *testing.T) {
	v, _ := volume.New([3]int{8, 8, 4}, [3]float64{1, 1, 1})
	organs := []Organ{{Label: 1, Box: eval.Box{Max: [3]int{7, 7, 1}}},
		{Label: 2, Box: eval.Box{Min: [3]int{2, 2, 1}, Max: [3]int{5, 5, 2}}}}
	for _, public := range []bool{false, true} {
		enc, dec := fakeModels(public)
		for _, m := range []Models{{Encoder: truncated{enc}, Decoder: dec},
			{Encoder: enc, Decoder: truncated{dec}}} {
			_, err := Segment(context.Background(), m, v, "q", organs, Config{Logger: quiet})
			if err == nil {
				t.Errorf("public %v: truncated output accepted", public)
			}
		}
	}
}

// limited is a fake model that takes at most max items per call, as a TensorRT engine's
// profiles bound it (backend.BatchLimited).
type limited struct {
	*backend.Fake
	max int64
}

func (l limited) MaxBatch() int64 { return l.max }

// TestBatchLimitedModels: an encoder that takes fewer slices than Config.BatchSize gets
// batches of its largest size, and a decoder that takes fewer boxes than a slice has gets
// them in chunks; the label map is the same as with unlimited models.
func TestBatchLimitedModels(t *testing.T) {
	v, err := volume.New([3]int{40, 30, 12}, [3]float64{1, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range v.Data {
		v.Data[i] = float32(i%300) - 100
	}
	var organs []Organ // five organs on slices 2..6: five boxes a slice
	for o := range 5 {
		organs = append(organs, Organ{Label: o + 1, Box: eval.Box{
			Min: [3]int{2 + 7*o, 3, 2}, Max: [3]int{6 + 7*o, 20, 6}}})
	}
	enc, dec := fakeModels(false)
	want, err := Segment(context.Background(), Models{Encoder: enc, Decoder: dec}, v, "q",
		organs, Config{BatchSize: 4, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	enc, dec = fakeModels(false)
	got, err := Segment(context.Background(), Models{Encoder: limited{enc, 3},
		Decoder: limited{dec, 2}}, v, "q", organs, Config{BatchSize: 4, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if b := enc.Batches(); !slices.Equal(b, []int64{3, 2}) || got.Report.Batch != 3 {
		t.Errorf("encoder batches %v (report batch %d), want [3 2] (3)", b, got.Report.Batch)
	}
	if b := dec.Batches(); !slices.Equal(b, slices.Repeat([]int64{2, 2, 1}, 5)) ||
		got.Report.DecoderCalls != 15 || got.Report.BoxesDecoded != 25 {
		t.Errorf("decoder batches %v, %d calls for %d boxes; want 2, 2, 1 per slice", b,
			got.Report.DecoderCalls, got.Report.BoxesDecoded)
	}
	if !slices.Equal(got.Labels.Data, want.Labels.Data) {
		t.Error("the label map differs from the unlimited models'")
	}
	for o := range organs {
		if got.Report.Organs[o].MeanIoUPrediction != 0.5 {
			t.Errorf("organ %d: IoU %v", o+1, got.Report.Organs[o].MeanIoUPrediction)
		}
	}
}
