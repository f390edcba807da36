package segment

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
	"github.com/medlsam-fast/medlsam-fast/engine/eval"
	"github.com/medlsam-fast/medlsam-fast/engine/nifti"
	"github.com/medlsam-fast/medlsam-fast/engine/ort"
	"github.com/medlsam-fast/medlsam-fast/kernels"
)

// TestResizeEffect measures how much this package's resize (kernels.LinearTaps) changes the
// masks compared with the reference's skimage cubic-spline resize: the same slices, the same
// box, the same tiny SAM model, the two preprocessings; it logs the 3D Dice between the two
// masks. The reference slices come from build/bench/segment_compare.py resize, which sets
// MEDLSAM_RESIZE_REF.
func TestResizeEffect(t *testing.T) {
	raw := os.Getenv("MEDLSAM_RESIZE_REF")
	if raw == "" {
		t.Skip("MEDLSAM_RESIZE_REF unset: run /usr/bin/python3 build/bench/segment_compare.py " +
			"resize")
	}
	var meta struct {
		Box    eval.Box `json:"box"`
		Slices []int    `json:"slices"`
	}
	b, err := os.ReadFile(raw + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile(raw)
	const S = kernels.SAMImageSize
	if err != nil || len(ref) != len(meta.Slices)*S*S {
		t.Fatalf("reference slices: %d bytes for %d slices (%v)", len(ref), len(meta.Slices),
			err)
	}
	img, err := nifti.Read(ctPath, nifti.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	enc, dec := openTiny(t, "sam_tiny-encoder.onnx"), openTiny(t, "sam_tiny-decoder.onnx")
	v := img.Volume
	win := make([]uint8, len(v.Data))
	if err := kernels.SAMWindow(win, v.Data); err != nil {
		t.Fatal(err)
	}
	nx, ny := v.Shape[0], v.Shape[1]
	box := sliceBox{box: Box1024(meta.Box, nx, ny)}
	d := decoder{model: dec, layout: LayoutBoxes, h: ny, w: nx}
	ours := make([]bool, 0, len(meta.Slices)*nx*ny)
	theirs := make([]bool, 0, len(meta.Slices)*nx*ny)
	var greyDiff float64
	var greyMax int
	images := make([]float32, 3*S*S)
	for n, k := range meta.Slices {
		mask := func() []bool {
			out, err := enc.Run([]backend.Tensor{{Name: InputImages,
				Shape: []int64{1, 3, S, S}, Data: images}}, []string{OutputEmbedding})
			if err != nil {
				t.Fatal(err)
			}
			logits, lr, _, _, err := d.decode(out[0].Shape[1:], out[0].Data, []sliceBox{box})
			if err != nil {
				t.Fatal(err)
			}
			lab := make([]int16, nx*ny)
			if err := kernels.SAMMaskPost(lab, ny, nx, logits, lr, []int16{1}); err != nil {
				t.Fatal(err)
			}
			m := make([]bool, len(lab))
			for i, l := range lab {
				m[i] = l == 1
			}
			return m
		}
		if err := kernels.SAMPreprocess(images, win, v.Shape, []int{k}); err != nil {
			t.Fatal(err)
		}
		g := ref[n*S*S : (n+1)*S*S]
		for p, x := range g {
			mine := int(math.Round(float64(images[p])*kernels.SAMPixelStd[0] +
				kernels.SAMPixelMean[0]))
			diff := mine - int(x)
			greyDiff += math.Abs(float64(diff))
			greyMax = max(greyMax, diff, -diff)
		}
		ours = append(ours, mask()...)
		for c := 0; c < 3; c++ {
			for p, x := range g {
				images[c*S*S+p] = float32((float64(x) - kernels.SAMPixelMean[c]) /
					kernels.SAMPixelStd[c])
			}
		}
		theirs = append(theirs, mask()...)
	}
	dice, ok := eval.Dice(ours, theirs)
	var no, nt int
	for i := range ours {
		if ours[i] {
			no++
		}
		if theirs[i] {
			nt++
		}
	}
	t.Logf("%d slices (k %d..%d), box %v: grey values differ by %.3f on average, at most %d; "+
		"mask voxels %d (ours) vs %d (reference resize); Dice %.4f (defined %v)",
		len(meta.Slices), meta.Slices[0], meta.Slices[len(meta.Slices)-1], box.box,
		greyDiff/float64(len(ref)), greyMax, no, nt, dice, ok)
	if !ok || dice < 0.5 {
		t.Errorf("the two preprocessings give masks with Dice %.4f", dice)
	}
}

// BenchmarkSAMFull times the full-size ViT-B models (models/full, from make models-sam-full)
// through ONNX Runtime on 2 intra-op threads, the setting of build/bench/sam_reference.py's
// torch run: "encoder" is one encoder call of batch 1 on a preprocessed 1024 x 1024 slice
// (ms/slice); "decoder" decodes 3 boxes of one 512 x 512 slice in one call and
// post-processes them into the label map (ms/box), as Segment does; "decoder-public" does
// the same with the public layout, one call per box. build/bench/segment_compare.py bench
// runs it next to torch.
func BenchmarkSAMFull(b *testing.B) {
	dir := filepath.Join("..", "..", "models", "full")
	if _, err := os.Stat(filepath.Join(dir, "sam-encoder.onnx")); err != nil {
		b.Skipf("full-size SAM export absent (%v): run make models-sam-full", err)
	}
	open := func(name string) *ort.Model {
		m, err := ort.Open(filepath.Join(dir, name), ort.Options{IntraOpThreads: 2})
		if errors.Is(err, backend.ErrUnavailable) {
			b.Skipf("ONNX Runtime not available (%v); run bash build/install-onnxruntime.sh",
				err)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close() })
		return m
	}
	enc := open("sam-encoder.onnx")
	const S = kernels.SAMImageSize
	images := make([]float32, 3*S*S)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range images {
		images[i] = float32(r.NormFloat64())
	}
	encode := func() backend.Tensor {
		out, err := enc.Run([]backend.Tensor{{Name: InputImages, Shape: []int64{1, 3, S, S},
			Data: images}}, []string{OutputEmbedding})
		if err != nil {
			b.Fatal(err)
		}
		return out[0]
	}
	b.Run("encoder", func(b *testing.B) {
		for b.Loop() {
			encode()
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/slice")
	})
	emb := encode()
	const h, w = 512, 512
	boxes := []sliceBox{{organ: 0, box: [4]float32{300, 280, 620, 710}},
		{organ: 1, box: [4]float32{100, 400, 380, 800}}, {organ: 2, box: [4]float32{550, 300,
			900, 640}}}
	lab := []int16{1, 2, 3}
	for _, name := range []string{"sam-decoder.onnx", "sam-decoder-public.onnx"} {
		dec := open(name)
		layout, err := DetectLayout(dec)
		if err != nil {
			b.Fatal(err)
		}
		d := decoder{model: dec, layout: layout, h: h, w: w}
		labels := make([]int16, h*w)
		run := "decoder"
		if layout == LayoutPublic {
			run = "decoder-public"
		}
		b.Run(run, func(b *testing.B) {
			for b.Loop() {
				logits, lr, _, _, err := d.decode(emb.Shape[1:], emb.Data, boxes)
				if err != nil {
					b.Fatal(err)
				}
				if err := kernels.SAMMaskPost(labels, h, w, logits, lr, lab); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N*len(boxes)),
				"ms/box")
		})
	}
}
