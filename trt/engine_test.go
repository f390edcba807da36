package trt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medlsam-fast/medlsam-fast/engine/backend"
)

var testMachine = Machine{GPUName: "NVIDIA H200", ComputeCapability: "9.0",
	TensorRT: Version{10, 13, 0}}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeEngine writes a fake plan, its manifest (edited by edit) and the ONNX file it claims
// to come from with that file's manifest, in a fresh directory. It returns the plan path and
// the ONNX path.
func writeEngine(t *testing.T, edit func(m *EngineManifest)) (string, string) {
	t.Helper()
	dir := t.TempDir()
	onnx := filepath.Join(dir, "double.onnx")
	onnxBytes := []byte("not really onnx")
	if err := os.WriteFile(onnx, onnxBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	tensors := func() ([]backend.TensorSpec, []backend.TensorSpec) {
		return []backend.TensorSpec{{Name: "x", Shape: []int64{-1, 4}, Type: "float32"}},
			[]backend.TensorSpec{
				{Name: "y", Shape: []int64{-1, 4}, Type: "float32"},
				{Name: "s", Shape: []int64{-1}, Type: "float32"},
			}
	}
	in, out := tensors()
	writeJSON(t, onnx+".json", backend.Manifest{Contract: backend.ContractVersion,
		Model: "double", File: "double.onnx", SHA256: sum(onnxBytes), Inputs: in, Outputs: out,
		Source: "test"})

	plan := filepath.Join(dir, "double.plan")
	planBytes := []byte("fake plan bytes")
	if err := os.WriteFile(plan, planBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	in, out = tensors()
	m := EngineManifest{
		Manifest: backend.Manifest{Contract: backend.ContractVersion, Model: "double",
			File: "double.plan", SHA256: sum(planBytes), Inputs: in, Outputs: out,
			Source: "test"},
		GPUName: testMachine.GPUName, ComputeCapability: "9.0", TensorRTVersion: "10.13.0.35",
		ONNXFile: "double.onnx", ONNXSHA256: sum(onnxBytes), Precision: "fp32",
		Profiles: []ProfileSpec{{Shapes: map[string]ShapeRange{
			"x": {Min: []int64{1, 4}, Opt: []int64{8, 4}, Max: []int64{32, 4}}}}},
		Rebuild: "bash build/engines/build.sh --only double",
	}
	if edit != nil {
		edit(&m)
	}
	writeJSON(t, plan+".json", m)
	return plan, onnx
}

func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(m *EngineManifest)
		mach     Machine
		after    func(t *testing.T, plan, onnx string) // changes files after writing
		mismatch bool                                  // wraps ErrEngineMismatch
		want     string                                // in the message
	}{
		{name: "other GPU", edit: func(m *EngineManifest) { m.GPUName = "NVIDIA A100-SXM4-80GB" },
			mach: testMachine, mismatch: true, want: `"NVIDIA A100-SXM4-80GB"`},
		{name: "other compute capability", edit: func(m *EngineManifest) {
			m.ComputeCapability = "8.0"
		}, mach: testMachine, mismatch: true, want: "compute capability 8.0"},
		{name: "other TensorRT", edit: func(m *EngineManifest) { m.TensorRTVersion = "11.1.0" },
			mach: testMachine, mismatch: true, want: "TensorRT 11.1.0, this process has 10.13.0"},
		{name: "other ONNX", edit: func(m *EngineManifest) { m.ONNXSHA256 = strings.Repeat("ab", 32) },
			mach: testMachine, mismatch: true, want: "built from an ONNX file with sha256 abababababab"},
		{name: "plan changed", mach: testMachine, want: "does not match its manifest",
			after: func(t *testing.T, plan, onnx string) {
				if err := os.WriteFile(plan, []byte("another plan"), 0o644); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "missing field", edit: func(m *EngineManifest) { m.GPUName = "" },
			mach: testMachine, want: "field gpu_name is missing"},
		{name: "bad profile", edit: func(m *EngineManifest) {
			m.Profiles[0].Shapes["x"] = ShapeRange{Min: []int64{4, 4}, Opt: []int64{2, 4},
				Max: []int64{8, 4}}
		}, mach: testMachine, want: "profiles[0].shapes[\"x\"]"},
		{name: "bad version", edit: func(m *EngineManifest) { m.TensorRTVersion = "ten" },
			mach: testMachine, want: "field tensorrt_version"},
		{name: "machine unknown", mach: Machine{}, want: "Options.Machine must name the GPU"},
		{name: "no manifest", mach: testMachine, want: "build/engines/build.sh",
			after: func(t *testing.T, plan, onnx string) {
				if err := os.Remove(plan + ".json"); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, onnx := writeEngine(t, tc.edit)
			if tc.after != nil {
				tc.after(t, plan, onnx)
			}
			nat := newFakeNative()
			_, err := openWith(nat, plan, Options{Machine: tc.mach, ONNX: onnx})
			if err == nil {
				t.Fatal("Open accepted the engine")
			}
			if errors.Is(err, ErrEngineMismatch) != tc.mismatch {
				t.Errorf("errors.Is(ErrEngineMismatch) = %v, want %v", !tc.mismatch, tc.mismatch)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if tc.mismatch && !strings.Contains(err.Error(), "build/engines/build.sh --only double") {
				t.Errorf("mismatch error %q does not say how to rebuild", err)
			}
			if len(nat.calls) != 0 {
				t.Errorf("native calls on a refused engine: %v", nat.calls)
			}
		})
	}
}

func TestOpenNativeFailures(t *testing.T) {
	tests := []struct {
		fail string
		code Code
		is   error
	}{
		{"newRuntime", CodeException, nil},
		{"deserialize", CodeTensorRT, nil},
		{"deserialize", CodeNoMemory, ErrOutOfMemory},
		{"ioTensors", CodeArgument, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%s", tc.fail, tc.code), func(t *testing.T) {
			plan, onnx := writeEngine(t, nil)
			nat := newFakeNative()
			nat.failures[tc.fail] = tc.code
			_, err := openWith(nat, plan, Options{Machine: testMachine, ONNX: onnx})
			var nerr *Error
			if !errors.As(err, &nerr) || nerr.Code != tc.code || nerr.Op != tc.fail {
				t.Fatalf("error %v, want an *Error with op %s and code %s", err, tc.fail, tc.code)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if !strings.HasPrefix(err.Error(), "trt: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if len(nat.live) != 0 {
				t.Errorf("native objects leaked after a failed Open: %v", nat.live)
			}
		})
	}
}

func openFake(t *testing.T) (*Engine, *fakeNative) {
	t.Helper()
	plan, onnx := writeEngine(t, nil)
	nat := newFakeNative()
	e, err := openWith(nat, plan, Options{Machine: testMachine, ONNX: onnx})
	if err != nil {
		t.Fatal(err)
	}
	return e, nat
}

func TestProfileFor(t *testing.T) {
	e, _ := openFake(t)
	defer e.Close()
	tests := []struct {
		batch int64
		want  int // -1: refused
	}{
		{1, 1}, {4, 1}, {5, 0}, {8, 0}, {32, 0}, {33, -1}, {0, -1}, {-3, -1},
	}
	for _, tc := range tests {
		got, err := e.ProfileFor(tc.batch)
		if tc.want < 0 {
			if !errors.Is(err, backend.ErrShape) || !strings.Contains(err.Error(), "1..32, 1..4") {
				t.Errorf("ProfileFor(%d) = %d, %v; want ErrShape listing the ranges",
					tc.batch, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ProfileFor(%d) = %d, %v; want %d", tc.batch, got, err, tc.want)
		}
	}
	if e.MaxBatch() != 32 {
		t.Errorf("MaxBatch = %d, want 32", e.MaxBatch())
	}
}

func TestModelRun(t *testing.T) {
	e, nat := openFake(t)
	defer e.Close()
	m, err := NewModel(e, nat.mem, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, batch := range []int{3, 10, 2} {
		x := make([]float32, batch*4)
		for i := range x {
			x[i] = float32(i%7) - 2.5
		}
		outs, err := m.Run([]backend.Tensor{{Name: "x", Shape: []int64{int64(batch), 4}, Data: x}},
			[]string{"s", "y"})
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		if fmt.Sprint(outs[0].Shape) != fmt.Sprint([]int64{int64(batch)}) ||
			fmt.Sprint(outs[1].Shape) != fmt.Sprint([]int64{int64(batch), 4}) {
			t.Fatalf("batch %d: shapes %v %v", batch, outs[0].Shape, outs[1].Shape)
		}
		for i, v := range x {
			if outs[1].Data[i] != 2*v {
				t.Fatalf("batch %d: y[%d] = %v, want %v", batch, i, outs[1].Data[i], 2*v)
			}
		}
		for b := range batch {
			want := x[4*b] + x[4*b+1] + x[4*b+2] + x[4*b+3]
			if outs[0].Data[b] != want {
				t.Fatalf("batch %d: s[%d] = %v, want %v", batch, b, outs[0].Data[b], want)
			}
		}
	}
	// Batch 3 takes profile 1 (1..4), 10 profile 0, 2 profile 1 again: three switches.
	var profiles []string
	for _, c := range nat.calls {
		if strings.HasPrefix(c, "setProfile") || strings.HasPrefix(c, "enqueue") {
			profiles = append(profiles, c)
		}
	}
	want := []string{"setProfile 1", "enqueue profile 1 batch 3", "setProfile 0",
		"enqueue profile 0 batch 10", "setProfile 1", "enqueue profile 1 batch 2"}
	if !slices.Equal(profiles, want) {
		t.Errorf("native calls %v, want %v", profiles, want)
	}
	// Buffers: 3 at batch 3, regrown to batch 10, then kept for batch 2.
	if nat.mem.allocs != 6 || nat.mem.frees != 3 {
		t.Errorf("allocs %d frees %d, want 6 and 3", nat.mem.allocs, nat.mem.frees)
	}
}

func TestModelRefusesShapes(t *testing.T) {
	e, nat := openFake(t)
	defer e.Close()
	m, err := NewModel(e, nat.mem, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	x := func(shape ...int64) []backend.Tensor {
		return []backend.Tensor{{Name: "x", Shape: shape,
			Data: make([]float32, max(0, backend.Elements(shape)))}}
	}
	tests := []struct {
		name    string
		in      []backend.Tensor
		names   []string
		isShape bool
	}{
		{"static dim", x(2, 5), []string{"y"}, true},
		{"rank", x(8), []string{"y"}, true},
		{"batch above every profile", x(40, 4), []string{"y"}, true},
		{"data length", []backend.Tensor{{Name: "x", Shape: []int64{2, 4}, Data: make([]float32, 7)}},
			[]string{"y"}, true},
		{"unknown input", []backend.Tensor{{Name: "z", Shape: []int64{1, 4},
			Data: make([]float32, 4)}}, []string{"y"}, true},
		{"unknown output", x(2, 4), []string{"w"}, false},
		{"output twice", x(2, 4), []string{"y", "y"}, false},
		{"no outputs", x(2, 4), nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Run(tc.in, tc.names)
			if err == nil {
				t.Fatal("Run accepted bad input")
			}
			if errors.Is(err, backend.ErrShape) != tc.isShape {
				t.Errorf("errors.Is(ErrShape) = %v, want %v: %v", !tc.isShape, tc.isShape, err)
			}
		})
	}
	for _, c := range nat.calls {
		if strings.HasPrefix(c, "enqueue") {
			t.Errorf("bad input reached the engine: %v", nat.calls)
		}
	}
}

func TestEnqueueErrors(t *testing.T) {
	e, nat := openFake(t)
	defer e.Close()
	m, err := NewModel(e, nat.mem, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	in := []backend.Tensor{{Name: "x", Shape: []int64{2, 4}, Data: make([]float32, 8)}}
	nat.failures["enqueue"] = CodeNoMemory
	syncs := nat.mem.syncs
	_, err = m.Run(in, []string{"y"})
	if !errors.Is(err, ErrOutOfMemory) {
		t.Fatalf("Run: %v, want ErrOutOfMemory", err)
	}
	if nat.mem.syncs != syncs+1 {
		t.Error("Run returned an error without synchronising the stream")
	}
	if _, err := m.Run(in, []string{"y"}); err != nil {
		t.Errorf("Run after a failed one: %v", err)
	}
}

func TestCloseOrder(t *testing.T) {
	e, nat := openFake(t)
	c1, err := e.NewContext(1)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := e.NewContext(2)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.NewContext(3); !errors.Is(err, ErrClosed) {
		t.Errorf("NewContext after Close: %v, want ErrClosed", err)
	}
	if len(nat.live) != 4 {
		t.Fatalf("engine destroyed under open contexts: live %v", nat.live)
	}
	if _, err := c1.Prepare(map[string][]int64{"x": {1, 4}}); err != nil {
		t.Errorf("a context outlives Engine.Close: %v", err)
	}
	c1.Close()
	c1.Close()
	c2.Close()
	var tail []string
	for _, c := range nat.calls {
		if strings.HasPrefix(c, "destroy") {
			tail = append(tail, strings.Fields(c)[0])
		}
	}
	want := []string{"destroyContext", "destroyContext", "destroyEngine", "destroyRuntime"}
	if !slices.Equal(tail, want) || len(nat.live) != 0 {
		t.Errorf("destroy order %v (live %v), want %v", tail, nat.live, want)
	}
	if _, err := c1.Prepare(map[string][]int64{"x": {1, 4}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Prepare after Close: %v, want ErrClosed", err)
	}
	var nilEngine *Engine
	var nilContext *Context
	var nilModel *Model
	if nilEngine.Close() != nil || nilContext.Close() != nil || nilModel.Close() != nil {
		t.Error("Close on nil failed")
	}
}

func TestContextRequiresBindings(t *testing.T) {
	e, nat := openFake(t)
	defer e.Close()
	c, err := e.NewContext(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Enqueue(); err == nil {
		t.Error("Enqueue before Prepare succeeded")
	}
	if _, err := c.Prepare(map[string][]int64{"x": {2, 4}}); err != nil {
		t.Fatal(err)
	}
	small, _ := nat.mem.Alloc(31)
	if err := c.Bind("x", small.Ptr(), small.Bytes()); !errors.Is(err, backend.ErrShape) {
		t.Errorf("Bind of a 31-byte buffer to a 32-byte tensor: %v, want ErrShape", err)
	}
	big, _ := nat.mem.Alloc(32)
	if err := c.Bind("x", big.Ptr(), big.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := c.Enqueue(); err == nil || !strings.Contains(err.Error(), "not bound") {
		t.Errorf("Enqueue with outputs unbound: %v", err)
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		code Code
		msg  string
		want string
		is   error
	}{
		{CodeTensorRT, "enqueueV3 failed: bad shape",
			"trt: enqueue: tensorrt error: enqueueV3 failed: bad shape", nil},
		{CodeNoMemory, "", "trt: enqueue: out of memory", ErrOutOfMemory},
		{CodeArgument, "null context", "trt: enqueue: invalid argument: null context", ErrInvalid},
		{Code(9), "x", "trt: enqueue: code 9: x", nil},
	}
	for _, tc := range tests {
		err := statusError("enqueue", int32(tc.code), tc.msg)
		if err == nil || err.Error() != tc.want {
			t.Errorf("statusError(%d) = %v, want %q", tc.code, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("statusError(%d) does not wrap %v", tc.code, tc.is)
		}
	}
	if statusError("x", 0, "ignored") != nil {
		t.Error("status 0 gave an error")
	}
}

func TestLogBridge(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	defer slog.SetDefault(old)
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	tests := []struct {
		sev  int32
		want string // "" when filtered out at info level
	}{
		{sevInternalError, "level=ERROR msg=tensorrt severity=internal_error"},
		{sevError, "level=ERROR msg=tensorrt severity=error"},
		{sevWarning, "level=WARN msg=tensorrt severity=warning"},
		{sevInfo, ""},
		{sevVerbose, ""},
	}
	for _, tc := range tests {
		buf.Reset()
		logNative(tc.sev, "hello from tensorrt")
		got := buf.String()
		if tc.want == "" {
			if got != "" {
				t.Errorf("severity %d logged at info level: %q", tc.sev, got)
			}
			continue
		}
		if !strings.Contains(got, tc.want) || !strings.Contains(got, `text="hello from tensorrt"`) {
			t.Errorf("severity %d logged %q, want %q", tc.sev, got, tc.want)
		}
	}
}

func TestScanEngines(t *testing.T) {
	plan, _ := writeEngine(t, nil)
	dir := filepath.Dir(plan)
	other := filepath.Join(dir, "other.plan")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ScanEngines(dir, testMachine)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Err != nil || got[1].Err == nil {
		t.Fatalf("ScanEngines = %+v, want double.plan matching and other.plan without manifest", got)
	}
	mach := testMachine
	mach.TensorRT = Version{11, 0, 0}
	got, _ = ScanEngines(dir, mach)
	if !errors.Is(got[0].Err, ErrEngineMismatch) {
		t.Errorf("ScanEngines on TensorRT 11: %v, want ErrEngineMismatch", got[0].Err)
	}
	if _, err := ScanEngines(filepath.Join(dir, "absent"), mach); err == nil {
		t.Error("ScanEngines of a missing directory succeeded")
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for an error
	}{
		{"10.13.0", "10.13.0"}, {"11.1.0.106", "11.1.0"}, {" 10.8.2 ", "10.8.2"},
		{"10.13", ""}, {"v10.1.0", ""}, {"10.-1.0", ""}, {"1.2.3.4.5", ""},
	}
	for _, tc := range tests {
		v, err := ParseVersion(tc.in)
		if (err != nil) != (tc.want == "") || (err == nil && v.String() != tc.want) {
			t.Errorf("ParseVersion(%q) = %v, %v; want %q", tc.in, v, err, tc.want)
		}
	}
}
