package ort

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

// affineModel is the committed test model: a [B,2,3], b [B,3] -> y = 2a+1, z = sum(a,1)+b.
var affineModel = filepath.Join("testdata", "affine_sum.onnx")

// needLibrary skips the test when the ONNX Runtime library cannot be found.
func needLibrary(tb testing.TB) {
	tb.Helper()
	if _, err := FindLibrary(""); err != nil {
		tb.Skipf("ONNX Runtime library absent, run `bash build/install-onnxruntime.sh`: %v", err)
	}
}

func openAffine(tb testing.TB) *Model {
	tb.Helper()
	return openAffineWith(tb, Options{IntraOpThreads: 1})
}

func openAffineWith(tb testing.TB, opt Options) *Model {
	tb.Helper()
	needLibrary(tb)
	m, err := Open(affineModel, opt)
	if err != nil {
		tb.Fatalf("Open(%s): %v", affineModel, err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// affineInputs returns random inputs of batch n and the outputs the model must produce,
// computed here independently of ONNX Runtime.
func affineInputs(n int, seed uint64) (in []backend.Tensor, y, z []float32) {
	r := rand.New(rand.NewPCG(seed, 7))
	a := make([]float32, n*6)
	b := make([]float32, n*3)
	for i := range a {
		a[i] = float32(r.NormFloat64())
	}
	for i := range b {
		b[i] = float32(r.NormFloat64())
	}
	y = make([]float32, len(a))
	for i, v := range a {
		y[i] = 2*v + 1
	}
	z = make([]float32, len(b))
	for s := range n {
		for k := range 3 {
			z[s*3+k] = a[s*6+k] + a[s*6+3+k] + b[s*3+k]
		}
	}
	in = []backend.Tensor{
		{Name: "a", Shape: []int64{int64(n), 2, 3}, Data: a},
		{Name: "b", Shape: []int64{int64(n), 3}, Data: b},
	}
	return in, y, z
}

func checkClose(t *testing.T, what string, got, want []float32, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > rel*math.Max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], want[i])
		}
	}
}

func TestRunAffineSum(t *testing.T) {
	for _, opt := range []Options{
		{IntraOpThreads: 1},
		{}, // all cores
		{IntraOpThreads: 3, BatchInvariant: true}, // batches split 3 ways, unevenly
	} {
		t.Run(fmt.Sprintf("threads%d_invariant%v", opt.IntraOpThreads, opt.BatchInvariant),
			func(t *testing.T) { testRunAffineSum(t, openAffineWith(t, opt)) })
	}
}

func testRunAffineSum(t *testing.T, m *Model) {
	tests := []struct {
		batch int
		names []string
	}{
		{1, []string{"y", "z"}},
		{4, []string{"y", "z"}},
		{4, []string{"z", "y"}},
		{3, []string{"z"}},
		{7, []string{"y"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("batch%d_%s", tc.batch, strings.Join(tc.names, "")), func(t *testing.T) {
			in, y, z := affineInputs(tc.batch, uint64(tc.batch))
			outs, err := m.Run(in, tc.names)
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) != len(tc.names) {
				t.Fatalf("%d outputs, want %d", len(outs), len(tc.names))
			}
			want := map[string]struct {
				shape []int64
				data  []float32
			}{
				"y": {[]int64{int64(tc.batch), 2, 3}, y},
				"z": {[]int64{int64(tc.batch), 3}, z},
			}
			for i, name := range tc.names {
				o := outs[i]
				if o.Name != name {
					t.Fatalf("output %d is %q, want %q", i, o.Name, name)
				}
				if fmt.Sprint(o.Shape) != fmt.Sprint(want[name].shape) {
					t.Fatalf("output %q shape %v, want %v", name, o.Shape, want[name].shape)
				}
				checkClose(t, name, o.Data, want[name].data, 1e-6)
			}
		})
	}
}

// TestBatchInvariance checks that each sample's result does not depend on the batch it is in.
func TestBatchInvariance(t *testing.T) {
	m := openAffine(t)
	in, _, _ := affineInputs(5, 11)
	all, err := m.Run(in, []string{"y", "z"})
	if err != nil {
		t.Fatal(err)
	}
	for s := range 5 {
		one := []backend.Tensor{
			{Name: "a", Shape: []int64{1, 2, 3}, Data: in[0].Data[s*6 : s*6+6]},
			{Name: "b", Shape: []int64{1, 3}, Data: in[1].Data[s*3 : s*3+3]},
		}
		got, err := m.Run(one, []string{"y", "z"})
		if err != nil {
			t.Fatal(err)
		}
		checkClose(t, "y", got[0].Data, all[0].Data[s*6:s*6+6], 0)
		checkClose(t, "z", got[1].Data, all[1].Data[s*3:s*3+3], 0)
	}
}

func TestModelInfo(t *testing.T) {
	m := openAffine(t)
	want := "[{a [-1 2 3] float32} {b [-1 3] float32}] [{y [-1 2 3] float32} {z [-1 3] float32}]"
	if got := fmt.Sprint(m.Inputs(), " ", m.Outputs()); got != want {
		t.Errorf("tensors %s, want %s", got, want)
	}
	if m.Manifest().Model != "test-affine-sum" {
		t.Errorf("manifest model %q", m.Manifest().Model)
	}
	v, err := Version("")
	if err != nil || v != "1.30.0" {
		t.Errorf("Version = %q, %v; want 1.30.0 (the installer's)", v, err)
	}
}

// writeManifest copies the test model into a fresh directory with its manifest changed by
// edit, and returns the copy's path.
func writeManifest(t *testing.T, edit func(*backend.Manifest)) string {
	t.Helper()
	data, err := os.ReadFile(affineModel)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(backend.ManifestPath(affineModel))
	if err != nil {
		t.Fatal(err)
	}
	var man backend.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	edit(&man)
	path := filepath.Join(t.TempDir(), filepath.Base(affineModel))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err = json.Marshal(&man)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(backend.ManifestPath(path), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenRefusesManifestMismatch(t *testing.T) {
	needLibrary(t)
	tests := []struct {
		name    string
		edit    func(*backend.Manifest)
		isShape bool   // the error wraps backend.ErrShape
		want    string // in the message
	}{
		{"unchanged", func(*backend.Manifest) {}, false, ""},
		{"input name", func(m *backend.Manifest) { m.Inputs[1].Name = "bias" }, true, `"bias"`},
		{"output name", func(m *backend.Manifest) { m.Outputs[0].Name = "w" }, true, `"w"`},
		{"input shape", func(m *backend.Manifest) { m.Inputs[0].Shape = []int64{-1, 3, 2} },
			true, "[-1 3 2]"},
		{"static batch", func(m *backend.Manifest) { m.Outputs[1].Shape = []int64{1, 3} },
			true, "[1 3]"},
		{"type", func(m *backend.Manifest) { m.Outputs[1].Type = "float16" }, true, "float16"},
		{"extra output", func(m *backend.Manifest) {
			m.Outputs = append(m.Outputs, backend.TensorSpec{Name: "q", Shape: []int64{-1},
				Type: "float32"})
		}, true, "its manifest 3"},
		{"sha256", func(m *backend.Manifest) { m.SHA256 = strings.Repeat("0", 64) }, false,
			"sha256"},
		{"contract", func(m *backend.Manifest) { m.Contract = 99 }, false, "contract 99"},
		{"file", func(m *backend.Manifest) { m.File = "other.onnx" }, false, "other.onnx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeManifest(t, tc.edit)
			m, err := Open(path, Options{})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unchanged copy refused: %v", err)
				}
				m.Close()
				return
			}
			if err == nil {
				m.Close()
				t.Fatal("Open accepted a mismatched manifest")
			}
			if errors.Is(err, backend.ErrShape) != tc.isShape {
				t.Errorf("errors.Is(ErrShape) = %v, want %v: %v", !tc.isShape, tc.isShape, err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ort: ") {
				t.Errorf("error %q does not start with \"ort: \" or lacks %q", err, tc.want)
			}
		})
	}
}

func TestOpenMissingManifest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "affine_sum.onnx")
	data, err := os.ReadFile(affineModel)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Fatalf("Open without manifest: %v, want an error about the manifest", err)
	}
}

func TestRunRefusesBadInputs(t *testing.T) {
	m := openAffine(t)
	a := func(shape ...int64) backend.Tensor {
		return backend.Tensor{Name: "a", Shape: shape, Data: make([]float32, max(0,
			backend.Elements(shape)))}
	}
	b := func(shape ...int64) backend.Tensor {
		return backend.Tensor{Name: "b", Shape: shape, Data: make([]float32, max(0,
			backend.Elements(shape)))}
	}
	short := a(2, 2, 3)
	short.Data = short.Data[:11]
	huge := a(1<<40, 1<<40, 3)
	yz := []string{"y", "z"}
	tests := []struct {
		name    string
		inputs  []backend.Tensor
		outputs []string
		isShape bool
		want    string
	}{
		{"rank", []backend.Tensor{a(2, 6), b(2, 3)}, yz, true, `"a"`},
		{"static dim", []backend.Tensor{a(2, 2, 3), b(2, 4)}, yz, true, `"b"`},
		{"batch zero", []backend.Tensor{a(0, 2, 3), b(0, 3)}, yz, true, `"a"`},
		{"batch differs", []backend.Tensor{a(2, 2, 3), b(3, 3)}, yz, true, "batch"},
		{"data length", []backend.Tensor{short, b(2, 3)}, yz, true, "11 values"},
		{"overflowing shape", []backend.Tensor{huge, b(1, 3)}, yz, true, `"a"`},
		{"missing input", []backend.Tensor{a(1, 2, 3)}, yz, true, "1 inputs"},
		{"unknown input", []backend.Tensor{a(1, 2, 3), {Name: "c", Shape: []int64{1, 3},
			Data: make([]float32, 3)}}, yz, false, `"c"`},
		{"input twice", []backend.Tensor{a(1, 2, 3), a(1, 2, 3)}, yz, false, "twice"},
		{"unknown output", []backend.Tensor{a(1, 2, 3), b(1, 3)}, []string{"w"}, false, `"w"`},
		{"no output", []backend.Tensor{a(1, 2, 3), b(1, 3)}, nil, false, "no outputs"},
		{"output twice", []backend.Tensor{a(1, 2, 3), b(1, 3)}, []string{"z", "z"}, false,
			"twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outs, err := m.Run(tc.inputs, tc.outputs)
			if err == nil {
				t.Fatalf("Run accepted bad input, returned %d outputs", len(outs))
			}
			if errors.Is(err, backend.ErrShape) != tc.isShape {
				t.Errorf("errors.Is(ErrShape) = %v, want %v: %v", !tc.isShape, tc.isShape, err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ort: ") {
				t.Errorf("error %q does not start with \"ort: \" or lacks %q", err, tc.want)
			}
		})
	}
	// The model still works after all those refusals.
	in, y, _ := affineInputs(2, 3)
	outs, err := m.Run(in, []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "y", outs[0].Data, y, 1e-6)
}

func TestCloseTwice(t *testing.T) {
	m := openAffine(t)
	for i := range 2 {
		if err := m.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	in, _, _ := affineInputs(1, 1)
	if _, err := m.Run(in, []string{"y"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
	var nilModel *Model
	if err := nilModel.Close(); err != nil {
		t.Fatalf("nil Close: %v", err)
	}
}

func TestConcurrentRun(t *testing.T) {
	for _, opt := range []Options{{IntraOpThreads: 2}, {IntraOpThreads: 2, BatchInvariant: true}} {
		t.Run(fmt.Sprintf("invariant%v", opt.BatchInvariant), func(t *testing.T) {
			testConcurrentRun(t, openAffineWith(t, opt))
		})
	}
}

func testConcurrentRun(t *testing.T, m *Model) {
	const workers, runs = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range runs {
				n := 1 + (w+r)%5
				in, y, z := affineInputs(n, uint64(w*100+r))
				outs, err := m.Run(in, []string{"z", "y"})
				if err != nil {
					errs <- err
					return
				}
				for i := range z {
					if math.Abs(float64(outs[0].Data[i]-z[i])) > 1e-5 {
						errs <- fmt.Errorf("worker %d run %d: z[%d] = %g, want %g",
							w, r, i, outs[0].Data[i], z[i])
						return
					}
				}
				for i := range y {
					if math.Abs(float64(outs[1].Data[i]-y[i])) > 1e-5 {
						errs <- fmt.Errorf("worker %d run %d: y[%d] = %g, want %g",
							w, r, i, outs[1].Data[i], y[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCloseDuringRuns closes the model while other goroutines run it: every run either
// succeeds or reports ErrClosed, and nothing crashes.
func TestCloseDuringRuns(t *testing.T) {
	m := openAffine(t)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 4*20)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range 20 {
				in, _, _ := affineInputs(3, 5)
				if _, err := m.Run(in, []string{"y", "z"}); err != nil &&
					!errors.Is(err, ErrClosed) {
					errs <- err
				}
			}
		}()
	}
	close(start)
	if err := m.Close(); err != nil {
		t.Error(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkRunAffineSum(b *testing.B) {
	m := openAffine(b)
	for _, n := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("batch%d", n), func(b *testing.B) {
			in, _, _ := affineInputs(n, 1)
			names := []string{"y", "z"}
			for b.Loop() {
				if _, err := m.Run(in, names); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// upsampleModel has outputs sized at run time: x [1,1,2,2], size [2] -> u = nearest(x, size)
// of shape [1,1,size[0],size[1]] (declared all dynamic), m = max of u (declared [-1], a
// dynamic batch that no input sets).
var upsampleModel = filepath.Join("testdata", "upsample.onnx")

// nearest computes ONNX Resize's nearest mode as torch exports it (asymmetric coordinates,
// floor) for a 2x2 image scaled to h x w.
func nearest(x []float32, h, w int) []float32 {
	out := make([]float32, h*w)
	for r := range h {
		for c := range w {
			out[r*w+c] = x[(r*2/h)*2+c*2/w]
		}
	}
	return out
}

func TestRunOutputsSizedAtRunTime(t *testing.T) {
	for _, opt := range []Options{{IntraOpThreads: 1}, {BatchInvariant: true}} {
		t.Run(fmt.Sprintf("invariant%v", opt.BatchInvariant), func(t *testing.T) {
			needLibrary(t)
			m, err := Open(upsampleModel, opt)
			if err != nil {
				t.Fatalf("Open(%s): %v", upsampleModel, err)
			}
			defer m.Close()
			if m.workers != 0 {
				t.Errorf("no input has a dynamic batch, yet %d batch workers", m.workers)
			}
			testRunSized(t, m)
		})
	}
}

func testRunSized(t *testing.T, m *Model) {
	tests := []struct {
		h, w  int
		names []string
	}{
		{3, 5, []string{"u", "m"}},
		{1, 1, []string{"u"}},
		{4, 2, []string{"m", "u"}},
		{7, 3, []string{"m"}},
	}
	x := []float32{1.5, -2, 3.25, 7}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%dx%d_%s", tc.h, tc.w, strings.Join(tc.names, "")), func(t *testing.T) {
			outs, err := m.Run([]backend.Tensor{
				{Name: "x", Shape: []int64{1, 1, 2, 2}, Data: x},
				{Name: "size", Shape: []int64{2}, Data: []float32{float32(tc.h), float32(tc.w)}},
			}, tc.names)
			if err != nil {
				t.Fatal(err)
			}
			u := nearest(x, tc.h, tc.w)
			want := map[string]struct {
				shape []int64
				data  []float32
			}{
				"u": {[]int64{1, 1, int64(tc.h), int64(tc.w)}, u},
				"m": {[]int64{1}, []float32{maxOf(u)}},
			}
			for i, name := range tc.names {
				o := outs[i]
				if o.Name != name || fmt.Sprint(o.Shape) != fmt.Sprint(want[name].shape) {
					t.Fatalf("output %d: %q of shape %v, want %q of shape %v", i, o.Name,
						o.Shape, name, want[name].shape)
				}
				checkClose(t, name, o.Data, want[name].data, 0)
			}
		})
	}
	_, err := m.Run([]backend.Tensor{
		{Name: "x", Shape: []int64{1, 1, 2, 2}, Data: x},
		{Name: "size", Shape: []int64{2}, Data: []float32{2, 2}},
	}, []string{"u", "nope"})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown output: got %v, want an error naming it", err)
	}
}

func maxOf(v []float32) float32 {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	return m
}

func TestCheckOutputShape(t *testing.T) {
	info := backend.TensorInfo{Name: "o", Shape: []int64{-1, 4, -1}, Type: backend.Float32}
	tests := []struct {
		batched bool
		got     []int64
		ok      bool
	}{
		{true, []int64{3, 4, 9}, true},
		{true, []int64{2, 4, 9}, false}, // batch differs from the inputs'
		{false, []int64{2, 4, 9}, true}, // no input sets the batch
		{false, []int64{3, 5, 9}, false},
		{false, []int64{3, 4}, false},
		{false, []int64{3, 4, -1}, false},
	}
	for _, tc := range tests {
		m := &Model{name: "test.onnx", batched: tc.batched}
		err := m.checkOutputShape(info, tc.got, 3)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, backend.ErrShape)) {
			t.Errorf("batched %v, shape %v: error %v, want ok=%v", tc.batched, tc.got, err, tc.ok)
		}
	}
}
