package localize

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// refPython is Debian's interpreter, which has torch (the first python3 on PATH may not).
const refPython = "/usr/bin/python3"

// needTorch skips unless refPython can import torch.
func needTorch(t testing.TB) {
	t.Helper()
	out, err := exec.Command(refPython, "-c", "import torch, numpy").CombinedOutput()
	if err != nil {
		t.Skipf("torch reference unavailable (%s: %v: %s)", refPython, err, out)
	}
}

// parityCase is one refinement: the template point (index into the template set), the
// start offset from the true point in the query, both (z, y, x) voxels.
type parityCase struct {
	point int
	start [3]int
}

// refResult is mss_reference.py's answer.
type refResult struct {
	KernelDiff []float64 `json:"kernel_max_abs_diff"`
	Points     []struct {
		Index        [3]int   `json:"index"`
		Offset       [3]int   `json:"offset"`
		Score        float64  `json:"score"`
		ScoreAtGo    float64  `json:"score_at_go"`
		ScoreAtTruth *float64 `json:"score_at_truth"`
	} `json:"points"`
}

// truthIndex is where the fused map of a patch centred at c must peak for the refinement
// (offset = index - 32 + 1) to land exactly on the true point t (z, y, x, padded frame).
func truthIndex(t, c [3]int) [3]int {
	var idx [3]int
	for a := 0; a < 3; a++ {
		idx[a] = Pad - 1 + t[a] - c[a]
	}
	return idx
}

// TestSimilarityParityTorch checks the Go refinement against the reference formulation in
// torch on identical inputs: the tiny ONNX model's features for template and query patches
// of the shared CT (the "shifted" known-answer case), started on and 20 voxels (60 mm) away
// from the true points. mss_reference.py rebuilds the kernels from the template features
// (centre crop, F.normalize) and runs the grouped conv3d search; kernels must agree to
// float rounding and the argmax must be the same voxel (or a tie within 1e-5).
func TestSimilarityParityTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: tiny MedLAM over 16 patches and torch")
	}
	needTorch(t)
	net, ts, img := knownAnswerSet(t, "ort")
	tmpl := prepare(t, img, ctPath, Image)
	c := knownAnswerCases[0]
	q := prepare(t, derived(img, c.shape, c.shift, c.flip), c.name, Image)
	d := lasShift(t, tmpl, q)
	var cases []parityCase
	for _, p := range []int{0, 3, 7, 10} { // kidney zmin, zmax; spleen ymin, ymax
		cases = append(cases, parityCase{p, [3]int{0, 0, 0}},
			parityCase{p, [3]int{12, -20, 15}})
	}
	tp := templatePointList(ts)
	n := len(cases)
	tcent := make([][3]int, n)
	truth := make([][3]int, n)
	clamped := make([][3]int, n)
	S := paddedDims(q)
	for i, pc := range cases {
		p := tp[pc.point]
		tcent[i] = [3]int{p[0] + Pad, p[1] + Pad, p[2] + Pad}
		for a := 0; a < 3; a++ {
			truth[i][a] = p[a] + d[a] + Pad
			clamped[i][a] = min(max(truth[i][a]+pc.start[a], Pad), S[a]-Pad-1)
		}
	}
	// The sub-set of kernels of the chosen points, in case order.
	sub := &TemplateSet{Channels: ts.Channels, Edges: ts.Edges}
	for s := 0; s < 3; s++ {
		kv := ts.Channels[s] * ts.Edges[s] * ts.Edges[s] * ts.Edges[s]
		for _, pc := range cases {
			sub.Kernels[s] = append(sub.Kernels[s], ts.Kernels[s][pc.point*kv:(pc.point+1)*kv]...)
		}
	}
	search, err := newSearch(nil, sub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx := context.Background()
	var goIndex [][3]int
	var goOffset [][3]int
	// Query features and the Go search, one batch of all points.
	err = runBatched(ctx, net.Full, n, n, OutputFeatures[:],
		func(p int, dst []float32) error { q.cropPadded(clamped[p], dst); return nil },
		func(first int, outs []backend.Tensor) error {
			off, err := searchOffsets(search, sub, first, outs)
			if err != nil {
				return err
			}
			for _, o := range off {
				goOffset = append(goOffset, o)
				goIndex = append(goIndex, [3]int{o[0] + Pad - 1, o[1] + Pad - 1, o[2] + Pad - 1})
			}
			return dumpTensors(dir, "query", outs, sub.Kernels)
		})
	if err != nil {
		t.Fatal(err)
	}
	// Template features at the template points (one template: the CT itself).
	err = runBatched(ctx, net.Full, n, n, OutputFeatures[:],
		func(p int, dst []float32) error { tmpl.cropPadded(tcent[p], dst); return nil },
		func(first int, outs []backend.Tensor) error {
			return dumpTensors(dir, "template", outs, [3][]float32{})
		})
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]any{"points": n, "patch": Patch, "go_index": goIndex}
	var scales []map[string]int
	for s := 0; s < 3; s++ {
		scales = append(scales, map[string]int{"channels": ts.Channels[s],
			"size": ts.Edges[s] * Patch / 8, "kernel": ts.Edges[s]})
	}
	meta["scales"] = scales
	var tr [][3]int
	for i := range cases {
		tr = append(tr, truthIndex(truth[i], clamped[i]))
	}
	meta["truth"] = tr
	b, _ := json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(refPython, filepath.Join("testdata", "mss_reference.py"), dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mss_reference.py: %v", err)
	}
	var ref refResult
	if err := json.Unmarshal(out, &ref); err != nil || len(ref.Points) != n {
		t.Fatalf("mss_reference.py output %q: %v", out, err)
	}
	for s, v := range ref.KernelDiff {
		if v > 1e-5 {
			t.Errorf("scale %d: Go kernels differ from the reference's by up to %g", s, v)
		}
	}
	for i, r := range ref.Points {
		pc := cases[i]
		tie := math.Abs(r.ScoreAtGo-r.Score) <= 1e-5*math.Max(1, math.Abs(r.Score))
		if r.Index != goIndex[i] && !tie {
			t.Errorf("point %d start %v: Go index %v (score %.6f), reference %v (score %.6f)",
				pc.point, pc.start, goIndex[i], r.ScoreAtGo, r.Index, r.Score)
		}
		at := math.NaN()
		if r.ScoreAtTruth != nil {
			at = *r.ScoreAtTruth
		}
		errv := 0
		for a := 0; a < 3; a++ {
			errv = max(errv, abs(clamped[i][a]+goOffset[i][a]-truth[i][a]))
		}
		t.Logf("point %2d start %3v: Go offset %3v, reference %3v; best score %.4f, at the "+
			"truth %.4f; refined %d voxels from the truth", pc.point, pc.start, goOffset[i],
			r.Offset, r.Score, at, errv)
	}
}

// templatePointList flattens the first template's points of every organ, in point order.
func templatePointList(ts *TemplateSet) [][3]int {
	var out [][3]int
	for _, o := range ts.Organs {
		out = append(out, o.TemplatePoints[0]...)
	}
	return out
}

// dumpTensors appends the feature outputs to <prefix><s>.f32 and, when given, the kernels
// to kernel<s>.f32 in dir.
func dumpTensors(dir, prefix string, outs []backend.Tensor, kern [3][]float32) error {
	for s := 0; s < 3; s++ {
		if err := appendF32(filepath.Join(dir, fmt.Sprintf("%s%d.f32", prefix, s)),
			outs[s].Data); err != nil {
			return err
		}
		if kern[s] != nil {
			if err := appendF32(filepath.Join(dir, fmt.Sprintf("kernel%d.f32", s)),
				kern[s]); err != nil {
				return err
			}
		}
	}
	return nil
}

func appendF32(path string, x []float32) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := binary.Write(f, binary.LittleEndian, x); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
