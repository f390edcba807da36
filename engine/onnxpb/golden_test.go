package onnxpb

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tinyModel is the bundled tiny MedLAM export; goldenFile lists its float initializers as
// the onnx Python package reads them.
const (
	tinyModel  = "../../testdata/models/medlam_tiny.onnx"
	goldenFile = "testdata/medlam_tiny_initializers.json"
)

// The golden file is written by the onnx Python package, independently of this reader:
// name, dims, and the float64 sum and sum of squares of the values of every FLOAT
// initializer, in file order. Regenerate it (go generate ./engine/onnxpb/) whenever
// testdata/models/medlam_tiny.onnx changes.
//
//go:generate /usr/bin/python3 -c "import json,sys,onnx,numpy as np;from onnx import numpy_helper as nh;m=onnx.load(sys.argv[1]);a=[(t,nh.to_array(t).astype(np.float64)) for t in m.graph.initializer if t.data_type==1];json.dump([{'name':t.name,'dims':list(t.dims),'sum':float(x.sum()),'sumsq':float((x*x).sum())} for t,x in a],open(sys.argv[2],'w'),indent=1)" ../../testdata/models/medlam_tiny.onnx testdata/medlam_tiny_initializers.json

// goldenTensor is one entry of the golden file.
type goldenTensor struct {
	Name  string  `json:"name"`
	Dims  []int64 `json:"dims"`
	Sum   float64 `json:"sum"`
	SumSq float64 `json:"sumsq"`
}

// TestTinyModelMatchesGolden reads the tiny MedLAM export and compares every initializer
// with what the onnx Python package reads: the same set of names, the same dims, and the
// same sum and sum of squares of the values (to float64 rounding).
func TestTinyModelMatchesGolden(t *testing.T) {
	raw, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("golden file: %v (regenerate with go generate ./engine/onnxpb/)", err)
	}
	var golden []goldenTensor
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatalf("golden file %s: %v", goldenFile, err)
	}
	// The export drops the unused classification head of the network: 42 of the 44
	// state-dict keys of models/medlam_keys.json are initializers.
	if len(golden) != 42 {
		t.Fatalf("golden file lists %d initializers, want 42", len(golden))
	}
	got, err := ReadInitializers(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(golden) {
		t.Errorf("read %d initializers, golden file lists %d", len(got), len(golden))
	}
	for _, g := range golden {
		tn, ok := got[g.Name]
		if !ok {
			t.Errorf("%s: missing", g.Name)
			continue
		}
		if tn.Name != g.Name {
			t.Errorf("%s: Tensor.Name is %q", g.Name, tn.Name)
		}
		if !equalDims(tn.Dims, g.Dims) {
			t.Errorf("%s: dims %v, want %v", g.Name, tn.Dims, g.Dims)
			continue
		}
		if n := product(g.Dims); int64(len(tn.Data)) != n {
			t.Errorf("%s: %d values, want %d", g.Name, len(tn.Data), n)
			continue
		}
		var sum, sumsq, abs float64
		for _, v := range tn.Data {
			x := float64(v)
			sum += x
			sumsq += x * x
			abs += math.Abs(x)
		}
		// Summation order differs (numpy sums pairwise): allow float64 rounding only.
		tol := 1e-12 * float64(len(tn.Data)+1)
		if d := math.Abs(sum - g.Sum); d > tol*(abs+1) {
			t.Errorf("%s: sum %.17g, want %.17g", g.Name, sum, g.Sum)
		}
		if d := math.Abs(sumsq - g.SumSq); d > tol*(sumsq+1) {
			t.Errorf("%s: sum of squares %.17g, want %.17g", g.Name, sumsq, g.SumSq)
		}
		if sumsq == 0 {
			t.Errorf("%s: all values are zero", g.Name)
		}
	}
}

// TestFullModelMatchesKeys reads models/full/medlam.onnx, when it has been generated, and
// checks its initializers against models/medlam_keys.json: every state-dict key but the
// unused classification head, without the DataParallel "module." prefix, with its shape.
func TestFullModelMatchesKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: reads a 60 MB model in -short mode")
	}
	model := filepath.Join("..", "..", "models", "full", "medlam.onnx")
	if _, err := os.Stat(model); err != nil {
		t.Skipf("skipping: %s is absent (generate it with make models)", model)
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "models", "medlam_keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var keys struct {
		Prefix string             `json:"prefix"`
		Keys   map[string][]int64 `json:"keys"`
	}
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	got, err := ReadInitializers(model)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for k, dims := range keys.Keys {
		name := k[len(keys.Prefix):]
		if strings.HasPrefix(name, "classification.") {
			continue
		}
		want++
		tn, ok := got[name]
		if !ok {
			t.Errorf("%s: missing", name)
			continue
		}
		if !equalDims(tn.Dims, dims) || int64(len(tn.Data)) != product(dims) {
			t.Errorf("%s: dims %v with %d values, want %v", name, tn.Dims, len(tn.Data), dims)
		}
	}
	if len(got) != want {
		t.Errorf("read %d initializers, want %d", len(got), want)
	}
}

// equalDims reports whether a and b hold the same dims.
func equalDims(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// product is the number of values of a tensor with dims d.
func product(d []int64) int64 {
	n := int64(1)
	for _, x := range d {
		n *= x
	}
	return n
}
