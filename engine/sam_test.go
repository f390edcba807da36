package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/localize"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/segment"
	"github.com/medlsam-fast/medlsam-fast/engine/volume"
)

// samTensors are the tensors of the fake SAM parts, by manifest model kind.
var samTensors = map[string][2][]backend.TensorInfo{
	"sam-encoder": {
		{{Name: segment.InputImages, Shape: []int64{-1, 3, 1024, 1024}, Type: backend.Float32}},
		{{Name: segment.OutputEmbedding, Shape: []int64{-1, 256, 64, 64},
			Type: backend.Float32}},
	},
	"sam-decoder": {
		{{Name: segment.OutputEmbedding, Shape: []int64{-1, 256, 64, 64},
			Type: backend.Float32},
			{Name: segment.InputBoxes, Shape: []int64{-1, 4}, Type: backend.Float32}},
		{{Name: segment.OutputMasks, Shape: []int64{-1, 1, 256, 256}, Type: backend.Float32},
			{Name: segment.OutputIoU, Shape: []int64{-1, 1}, Type: backend.Float32}},
	},
	"sam-decoder-public": {
		{{Name: segment.OutputEmbedding, Shape: []int64{1, 256, 64, 64}, Type: backend.Float32},
			{Name: segment.InputPointCoords, Shape: []int64{1, -1, 2}, Type: backend.Float32},
			{Name: segment.InputPointLabels, Shape: []int64{1, -1}, Type: backend.Float32},
			{Name: segment.InputMaskInput, Shape: []int64{1, 1, 256, 256},
				Type: backend.Float32},
			{Name: segment.InputHasMask, Shape: []int64{1}, Type: backend.Float32},
			{Name: segment.InputOrigSize, Shape: []int64{2}, Type: backend.Float32}},
		{{Name: segment.OutputLowRes, Shape: []int64{-1, 4, 256, 256}, Type: backend.Float32}},
	},
}

// writeSAMModel writes a dummy model file and a manifest of the given kind whose tensors
// are samTensors[kind] (none for other kinds).
func writeSAMModel(t *testing.T, dir, file, kind string) {
	t.Helper()
	data := []byte("not a network: " + file)
	sum := sha256.Sum256(data)
	if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
		t.Fatal(err)
	}
	man := backend.Manifest{Contract: backend.ContractVersion, Model: kind, File: file,
		SHA256: hex.EncodeToString(sum[:])}
	spec := func(ts []backend.TensorInfo) []backend.TensorSpec {
		var out []backend.TensorSpec
		for _, x := range ts {
			out = append(out, backend.TensorSpec{Name: x.Name, Shape: x.Shape,
				Type: x.Type.String()})
		}
		return out
	}
	man.Inputs, man.Outputs = spec(samTensors[kind][0]), spec(samTensors[kind][1])
	b, _ := json.Marshal(man)
	if err := os.WriteFile(filepath.Join(dir, file+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// boxDecoder is a fake box-layout decoder: logit +8 inside each prompt box (scaled to the
// 256 grid), -8 outside, so the mask of an organ is its widened box.
func boxDecoder(in map[string]backend.Tensor, batch int64) (map[string][]float32, error) {
	const n = 256
	boxes := in[segment.InputBoxes].Data
	masks := make([]float32, int(batch)*n*n)
	iou := make([]float32, batch)
	for b := range int(batch) {
		x0, y0, x1, y1 := boxes[4*b]/4, boxes[4*b+1]/4, boxes[4*b+2]/4, boxes[4*b+3]/4
		for y := range n {
			for x := range n {
				v := float32(-8)
				if fx, fy := float32(x)+0.5, float32(y)+0.5; fx >= x0 && fx <= x1 &&
					fy >= y0 && fy <= y1 {
					v = 8
				}
				masks[b*n*n+y*n+x] = v
			}
		}
		iou[b] = 0.5
	}
	return map[string][]float32{segment.OutputMasks: masks, segment.OutputIoU: iou}, nil
}

// samFakeOpener opens MedLAM files as fakeOpener does and SAM files as fakes with the
// tensors of samTensors (the encoder returns zeros, the decoder is boxDecoder). It records
// the opened files and the fakes; drop names an output to leave out (a model that differs
// from its manifest).
func samFakeOpener(opened *[]string, fakes *[]*backend.Fake, drop string) Opener {
	medlam := fakeOpener(opened)
	return func(path string, man *backend.Manifest) (backend.Model, error) {
		ts, ok := samTensors[man.Model]
		if !ok {
			return medlam(path, man)
		}
		*opened = append(*opened, filepath.Base(path))
		var outs []backend.TensorInfo
		for _, o := range ts[1] {
			if o.Name != drop {
				outs = append(outs, o)
			}
		}
		fn := boxDecoder
		if man.Model == "sam-encoder" {
			fn = func(_ map[string]backend.Tensor, b int64) (map[string][]float32, error) {
				return map[string][]float32{
					segment.OutputEmbedding: make([]float32, b*256*64*64)}, nil
			}
		}
		f := backend.NewFake(ts[0], outs, fn)
		*fakes = append(*fakes, f)
		return f, nil
	}
}

func TestOpenSAM(t *testing.T) {
	medlam := [][2]string{{"medlam.onnx", "medlam"}}
	cases := []struct {
		name    string
		files   [][2]string // file, manifest model
		samName string
		drop    string
		opened  []string // SAM files opened
		wantErr string
	}{
		{"default", [][2]string{{"sam-encoder.onnx", "sam-encoder"},
			{"sam-decoder.onnx", "sam-decoder"}, {"sam_tiny-encoder.onnx", "sam-encoder"}}, "",
			"", []string{"sam-encoder.onnx", "sam-decoder.onnx"}, ""},
		{"only prefix", [][2]string{{"sam_tiny-encoder.onnx", "sam-encoder"},
			{"sam_tiny-decoder.onnx", "sam-decoder"}}, "", "",
			[]string{"sam_tiny-encoder.onnx", "sam_tiny-decoder.onnx"}, ""},
		{"public decoder", [][2]string{{"m-encoder.onnx", "sam-encoder"},
			{"m-decoder-public.onnx", "sam-decoder-public"}}, "m", "",
			[]string{"m-encoder.onnx", "m-decoder-public.onnx"}, ""},
		{"own decoder first", [][2]string{{"m-encoder.onnx", "sam-encoder"},
			{"m-decoder.onnx", "sam-decoder"},
			{"m-decoder-public.onnx", "sam-decoder-public"}}, "m", "",
			[]string{"m-encoder.onnx", "m-decoder.onnx"}, ""},
		{"none", nil, "", "", nil, "holds no SAM model"},
		{"several", [][2]string{{"a-encoder.onnx", "sam-encoder"},
			{"b-encoder.onnx", "sam-encoder"}}, "", "", nil, "several SAM models (a, b)"},
		{"no decoder", [][2]string{{"m-encoder.onnx", "sam-encoder"}}, "m", "", nil,
			"has no decoder (m-decoder.onnx or m-decoder-public.onnx)"},
		{"missing encoder", nil, "m", "", nil, "m-encoder.onnx"},
		{"wrong kind", [][2]string{{"m-encoder.onnx", "sam-encoder"},
			{"m-decoder.onnx", "sam-encoder"}}, "m", "", nil,
			`m-decoder.onnx is a "sam-encoder" model`},
		{"differs from manifest", [][2]string{{"m-encoder.onnx", "sam-encoder"},
			{"m-decoder.onnx", "sam-decoder"}}, "m", segment.OutputIoU, nil,
			"m-decoder.onnx against its manifest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range append(medlam, c.files...) {
				writeSAMModel(t, dir, f[0], f[1])
			}
			var opened []string
			var fakes []*backend.Fake
			e, err := Open(dir, Options{SAMName: c.samName, Localize: quiet,
				Open: samFakeOpener(&opened, &fakes, c.drop)})
			if err != nil {
				t.Fatalf("Open must not need SAM: %v", err)
			}
			defer e.Close()
			opened = nil
			err = e.OpenSAM()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				for _, f := range fakes {
					if f.Closes() != 1 {
						t.Errorf("a model opened by the failed OpenSAM is not closed")
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(opened, c.opened) {
				t.Errorf("opened %v, want %v", opened, c.opened)
			}
			if err := e.OpenSAM(); err != nil || len(fakes) != 2 {
				t.Errorf("second OpenSAM: %v, %d models opened in all", err, len(fakes))
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			for _, f := range fakes {
				if f.Closes() != 1 {
					t.Errorf("a SAM model was closed %d times by Close", f.Closes())
				}
			}
			if err := e.OpenSAM(); !errors.Is(err, ErrClosed) {
				t.Errorf("OpenSAM after Close: %v", err)
			}
		})
	}
}

// fakeQuery writes a small CT-like query with a flipped, shifted affine to dir and returns
// its path.
func fakeQuery(t *testing.T, dir string) string {
	t.Helper()
	v, err := volume.New([3]int{40, 30, 12}, [3]float64{0.8, 0.9, 2.5})
	if err != nil {
		t.Fatal(err)
	}
	v.Affine = [4][4]float64{{-0.8, 0, 0, 20}, {0, -0.9, 0, 15}, {0, 0, 2.5, -40},
		{0, 0, 0, 1}}
	for i := range v.Data {
		v.Data[i] = float32(i%97) * 10
	}
	p := filepath.Join(dir, "query.nii.gz")
	if err := nifti.Write(p, v, nifti.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSegmentBoxesFake segments two boxes with fake SAM models: the mask file must be on
// the query's geometry, each organ's label must fill its box's core on its slices only,
// the result must match what was written, and bad input must be refused with the file named.
func TestSegmentBoxesFake(t *testing.T) {
	dir := t.TempDir()
	writeSAMModel(t, dir, "medlam.onnx", "medlam")
	writeSAMModel(t, dir, "sam-encoder.onnx", "sam-encoder")
	writeSAMModel(t, dir, "sam-decoder.onnx", "sam-decoder")
	var opened []string
	var fakes []*backend.Fake
	e, err := Open(dir, Options{Localize: quiet, Open: samFakeOpener(&opened, &fakes, ""),
		Segment: segment.Config{BatchSize: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	query := fakeQuery(t, dir)
	boxes := map[int]eval.Box{
		1: {Min: [3]int{4, 5, 2}, Max: [3]int{14, 20, 6}},
		5: {Min: [3]int{24, 3, 5}, Max: [3]int{36, 25, 9}},
	}
	loc := &localize.Result{Query: query, Shape: [3]int{40, 30, 12},
		Organs: []localize.OrganBox{
			{Organ: localize.Organ{Label: 1, Name: "spleen"},
				BoxOnGrid: localize.BoxOnGrid{Box: boxes[1]}},
			{Organ: localize.Organ{Label: 5, Name: "liver"},
				BoxOnGrid: localize.BoxOnGrid{Box: boxes[5]}},
		}}
	mask := filepath.Join(dir, "out", "query_mask.nii.gz")
	if err := os.Mkdir(filepath.Dir(mask), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := e.SegmentBoxes(ctx, loc, nil, nil, query, SegmentOptions{Mask: mask,
		PerOrgan: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(fakes) != 2 {
		t.Fatalf("%d SAM models opened lazily, want 2", len(fakes))
	}
	rep := res.Segmentation
	// Slices 2..9 are covered: 8 slices, in batches of 3.
	if rep.SlicesEncoded != 8 || rep.EncoderBatches != 3 || fakes[0].Calls() != 3 ||
		rep.DecoderCalls != 8 || rep.BoxesDecoded != 5+5 {
		t.Errorf("counts: %d slices, %d batches (%d calls), %d decoder calls, %d boxes",
			rep.SlicesEncoded, rep.EncoderBatches, fakes[0].Calls(), rep.DecoderCalls,
			rep.BoxesDecoded)
	}
	if res.Localization != loc || res.Times.Localize != 0 || res.Times.Read <= 0 ||
		res.Times.Total < res.Times.Segment {
		t.Errorf("localization %p (want %p), times %+v", res.Localization, loc, res.Times)
	}
	lab := res.Labels
	at := func(i, j, k int) int { return int(lab.Data[i+lab.Shape[0]*(j+lab.Shape[1]*k)]) }
	for label, b := range boxes {
		ci, cj := (b.Min[0]+b.Max[0])/2, (b.Min[1]+b.Max[1])/2
		for k := range lab.Shape[2] {
			want := 0
			if k >= b.Min[2] && k <= b.Max[2] {
				want = label
			}
			if got := at(ci, cj, k); got != want {
				t.Errorf("organ %d: voxel (%d, %d, %d) = %d, want %d", label, ci, cj, k, got,
					want)
			}
		}
	}
	if got := at(20, 28, 5); got != 0 {
		t.Errorf("voxel outside every box labelled %d", got)
	}
	want := []string{mask, filepath.Join(dir, "out", "query_mask_label1.nii.gz"),
		filepath.Join(dir, "out", "query_mask_label5.nii.gz")}
	if !reflect.DeepEqual(res.Files, want) {
		t.Errorf("files %v, want %v", res.Files, want)
	}
	q, err := nifti.Read(query, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := nifti.Read(mask, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Volume.Affine != q.Volume.Affine || m.Volume.Shape != q.Volume.Shape ||
		!reflect.DeepEqual(m.Volume.Data, lab.Data) {
		t.Errorf("mask file: affine %v shape %v, query affine %v shape %v (data equal: %v)",
			m.Volume.Affine, m.Volume.Shape, q.Volume.Affine, q.Volume.Shape,
			reflect.DeepEqual(m.Volume.Data, lab.Data))
	}
	for _, o := range rep.Organs {
		n := 0
		for _, v := range lab.Data {
			if int(v) == o.Label {
				n++
			}
		}
		if n == 0 || n != o.Voxels {
			t.Errorf("organ %d: report says %d voxels, label map has %d", o.Label, o.Voxels, n)
		}
	}
	// The same query from memory gives the same labels, without a read.
	mem, err := e.SegmentBoxes(ctx, loc, q.Volume, q.Header, query, SegmentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(mem.Labels.Data, lab.Data) || mem.Times.Read != 0 ||
		mem.Files != nil {
		t.Errorf("from memory: labels equal %v, read %v ms, files %v",
			reflect.DeepEqual(mem.Labels.Data, lab.Data), mem.Times.Read, mem.Files)
	}

	bad := []struct {
		name    string
		call    func() error
		wantErr string
	}{
		{"shape", func() error {
			l := *loc
			l.Shape = [3]int{40, 30, 13}
			_, err := e.SegmentBoxes(ctx, &l, nil, nil, query, SegmentOptions{})
			return err
		}, "query " + query + " has shape [40 30 12]"},
		{"no organ", func() error {
			l := *loc
			l.Organs = nil
			_, err := e.SegmentBoxes(ctx, &l, nil, nil, query, SegmentOptions{})
			return err
		}, query + ": the localisation holds no organ"},
		{"no query", func() error {
			_, err := e.SegmentBoxes(ctx, loc, nil, nil, filepath.Join(dir, "nope.nii.gz"),
				SegmentOptions{})
			return err
		}, "nope.nii.gz"},
		{"no localisation", func() error {
			_, err := e.SegmentBoxes(ctx, nil, nil, nil, query, SegmentOptions{})
			return err
		}, "no localisation given"},
		{"no templates", func() error {
			_, err := e.Segment(ctx, nil, query, SegmentOptions{})
			return err
		}, "no template set given"},
		{"mask directory", func() error {
			_, err := e.SegmentBoxes(ctx, loc, nil, nil, query,
				SegmentOptions{Mask: filepath.Join(dir, "absent", "m.nii.gz")})
			return err
		}, "absent"},
	}
	for _, c := range bad {
		if err := c.call(); err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.wantErr)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SegmentBoxes(ctx, loc, nil, nil, query, SegmentOptions{}); !errors.Is(err,
		ErrClosed) {
		t.Errorf("SegmentBoxes after Close: %v", err)
	}
}

func TestReadOrgans(t *testing.T) {
	cases := []struct {
		name, text string
		want       []localize.Organ
		wantErr    string
	}{
		{"sorted", `{"5": "liver", "1": "spleen", "11": "lung"}`, []localize.Organ{
			{Label: 1, Name: "spleen"}, {Label: 5, Name: "liver"}, {Label: 11, Name: "lung"}},
			""},
		{"not a label", `{"x": "liver"}`, nil, `key "x" is not a label value`},
		{"zero", `{"0": "background"}`, nil, `key "0"`},
		{"too big", `{"40000": "a"}`, nil, `key "40000"`},
		{"empty", `{}`, nil, "no organ"},
		{"not json", `[1, 2]`, nil, "label names"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "labels.json")
			if err := os.WriteFile(p, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadOrgans(p)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) ||
					!strings.Contains(err.Error(), p) {
					t.Fatalf("error %v, want one naming %s and containing %q", err, p,
						c.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}
