package trt

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTrtexec stands in for trtexec in TestCompareScript: it prints the version banner,
// writes a plan on --saveEngine, and on --exportOutput checks the size of the patch input
// it was given and answers with the golden position of the tiny MedLAM, each value plus
// FAKE_SHIFT.
const fakeTrtexec = `#!/usr/bin/python3
import json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
print("&&&& RUNNING TensorRT.trtexec [TensorRT v101300]")
if "saveEngine" in args:
    open(args["saveEngine"], "w").write("plan")
if "exportOutput" in args:
    name, path = args["loadInputs"].split(":", 1)
    if name != "patch" or os.path.getsize(path) != 2 * 64 ** 3 * 4:
        sys.exit("fake trtexec: bad input " + args["loadInputs"])
    g = json.load(open(os.environ["GOLDEN"]))["outputs"]["position"]["values"]
    shift = float(os.environ.get("FAKE_SHIFT", "0"))
    vals = [v + shift for row in g for v in row]
    json.dump([{"name": "position", "dimensions": "2x3", "values": vals}],
              open(args["exportOutput"], "w"))
`

// TestCompareScript builds the tiny MedLAM encoder engine with build.sh and a fake
// trtexec, then runs build/engines/compare.py on it: exact golden outputs pass, outputs
// off by more than the fp32 tolerance fail.
func TestCompareScript(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import onnx, numpy").Run(); err != nil {
		t.Skip("/usr/bin/python3 lacks onnx or numpy (apt-get install python3-onnx)")
	}
	bin := t.TempDir()
	fakes := map[string]string{"trtexec": fakeTrtexec,
		"nvidia-smi": "#!/bin/sh\necho 'NVIDIA H200, 9.0'\n"}
	for name, text := range fakes {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := filepath.Abs("../testdata/models/medlam_tiny_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "GOLDEN="+golden)
	out := t.TempDir()
	build := exec.Command("bash", "../build/engines/build.sh", "--models", "../testdata/models",
		"--out", out, "--only", "medlam-encoder", "--precision", "fp32")
	build.Env = env
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	tests := []struct {
		shift    string
		wantFail bool
	}{
		{"0", false},
		{"0.0005", false}, // within abs 1e-3 + rel 1e-3
		{"0.01", true},
	}
	for _, tc := range tests {
		cmd := exec.Command("/usr/bin/python3", "../build/engines/compare.py", "--engines", out,
			"--work", t.TempDir(), "--precision", "fp32")
		cmd.Env = append(env, "FAKE_SHIFT="+tc.shift)
		b, err := cmd.CombinedOutput()
		failed := err != nil
		if failed != tc.wantFail || !strings.Contains(string(b), "medlam-encoder") {
			t.Errorf("shift %s: err %v, want failure %v:\n%s", tc.shift, err, tc.wantFail, b)
		}
		if testing.Verbose() {
			t.Logf("shift %s:\n%s", tc.shift, b)
		}
		if tc.wantFail && !strings.Contains(string(b), "position values") {
			t.Errorf("shift %s: the failure does not name the values:\n%s", tc.shift, b)
		}
	}
}
