package trt

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildScriptManifests runs build/engines/build.sh on the tiny ONNX models with stand-ins
// for trtexec and nvidia-smi, then loads every manifest it wrote with this package: the
// script and the runtime must agree on the schema, and the engines must match the machine
// and the ONNX files they were built from.
func TestBuildScriptManifests(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import onnx, numpy").Run(); err != nil {
		t.Skip("/usr/bin/python3 lacks onnx or numpy (apt-get install python3-onnx)")
	}
	bin := t.TempDir()
	fakes := map[string]string{
		// trtexec: print the version banner; on a build, write a plan naming its source.
		"trtexec": `#!/bin/sh
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v101300] # trtexec $*"
for a in "$@"; do
  case "$a" in --saveEngine=*) p=${a#--saveEngine=};; --onnx=*) o=${a#--onnx=};; esac
done
[ -n "$p" ] && echo "plan from $o $*" > "$p"
exit 0
`,
		"nvidia-smi": "#!/bin/sh\necho 'NVIDIA H200, 9.0'\n",
	}
	for name, text := range fakes {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "../build/engines/build.sh", "--models", "../testdata/models",
		"--out", out)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	mach := Machine{GPUName: "NVIDIA H200", ComputeCapability: "9.0", TensorRT: Version{10, 13, 0}}
	found, err := ScanEngines(out, mach)
	if err != nil {
		t.Fatal(err)
	}
	models := map[string]string{}
	for _, st := range found {
		if st.Err != nil {
			t.Errorf("%s: %v", st.Plan, st.Err)
			continue
		}
		m := st.Manifest
		models[m.Model] = filepath.Base(st.Plan)
		if err := m.CheckONNX(filepath.Join("../testdata/models", m.ONNXFile)); err != nil {
			t.Errorf("%s: %v", st.Plan, err)
		}
		plan, err := m.readPlan(st.Plan)
		if err != nil {
			t.Errorf("%s: %v", st.Plan, err)
			continue
		}
		// The stand-in trtexec echoed its arguments into the plan.
		for _, want := range []string{"--stronglyTyped", ".fp16.onnx", "--maxShapes="} {
			if !strings.Contains(string(plan), want) {
				t.Errorf("%s: trtexec was not given %s: %s", st.Plan, want, plan)
			}
		}
	}
	want := map[string]string{"medlam": "medlam_tiny.plan",
		"medlam-encoder": "medlam_tiny-encoder.plan", "sam-encoder": "sam_tiny-encoder.plan",
		"sam-decoder": "sam_tiny-decoder.plan"}
	for model, plan := range want {
		if models[model] != plan {
			t.Errorf("model %s: engine %q, want %s", model, models[model], plan)
		}
	}
	enc, err := LoadEngineManifest(filepath.Join(out, "sam_tiny-encoder.plan"))
	if err != nil {
		t.Fatal(err)
	}
	r := enc.Profiles[0].Shapes["images"]
	if r.Min[0] != 1 || r.Opt[0] != 8 || r.Max[0] != 32 || r.Max[3] != 1024 {
		t.Errorf("sam-encoder profile %+v, want batch 1/8/32 of 3x1024x1024", r)
	}
	mach.TensorRT = Version{11, 1, 0}
	if err := enc.CheckMachine(mach); err == nil ||
		!strings.Contains(err.Error(), "--only sam-encoder") {
		t.Errorf("CheckMachine on TensorRT 11.1: %v, want a rebuild command", err)
	}
}
