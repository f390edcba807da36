package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/medlsam-fast/medlsam-fast/engine/gpu"
	"github.com/medlsam-fast/medlsam-fast/engine/ort"
	"github.com/medlsam-fast/medlsam-fast/kernels/cpunet"
	kgpu "github.com/medlsam-fast/medlsam-fast/kernels/gpu"
	"github.com/medlsam-fast/medlsam-fast/trt"
)

func init() {
	register(command{
		name:    "doctor",
		summary: "report GPUs, CUDA/TensorRT build, engines and ONNX Runtime, with advice",
		run:     runDoctor,
	})
}

// doctorProbe finds the GPUs; tests replace it.
var doctorProbe gpu.Prober = gpu.NVML{}

// doctorTRTVersion is the TensorRT library version; tests replace it.
var doctorTRTVersion = trt.LibraryVersion

// doctorCUDA says whether the CUDA kernels can run, and doctorCUDARuntime returns the
// version of the CUDA runtime linked in; tests replace them.
var (
	doctorCUDA        = kgpu.Available
	doctorCUDARuntime = kgpu.RuntimeVersion
)

// runDoctor prints what this machine and binary offer to each backend, and plain advice for
// whatever is missing. It fails only on bad flags: a machine without a GPU is a finding.
func runDoctor(args []string, stdout io.Writer) error {
	fs := newFlags("doctor", "", stdout)
	engines := fs.String("engines", "engines", "directory of TensorRT engine plans to check")
	ortLib := fs.String("ort-lib", "", "ONNX Runtime library to check (default: search as "+
		"the CPU backend does)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: doctor takes no arguments", errUsage)
	}
	var advice []string
	advise := func(format string, a ...any) { advice = append(advice, fmt.Sprintf(format, a...)) }

	// GPUs, through NVML.
	fmt.Fprintln(stdout, "GPUs (NVML)")
	rep, err := doctorProbe.Probe()
	var dev *gpu.Device
	if err != nil {
		fmt.Fprintf(stdout, "  none: %v\n", err)
		advise("no GPU: medlsam-fast runs on the CPU backend (the native MedLAM network, ONNX " +
			"Runtime for SAM); on a GPU machine, " +
			"install the NVIDIA driver so that libnvidia-ml.so.1 is found")
	} else {
		fmt.Fprintf(stdout, "  driver %s, CUDA %s\n", orUnknown(rep.Driver), orUnknown(rep.CUDA))
		for i, d := range rep.Devices {
			fmt.Fprintf(stdout, "  %d: %s, compute %s, %.1f of %.1f GiB free, utilisation "+
				"%d%% (memory %d%%)\n", d.Index, d.Name, d.ComputeCapability,
				gib(d.MemoryFree), gib(d.MemoryTotal), d.UtilizationGPU, d.UtilizationMemory)
			if dev == nil || d.MemoryFree > dev.MemoryFree {
				dev = &rep.Devices[i]
			}
		}
	}

	// What this binary was built with.
	fmt.Fprintln(stdout, "\nBuild")
	if err := doctorCUDA(); errors.Is(err, kgpu.ErrNoCUDA) {
		fmt.Fprintln(stdout, "  CUDA kernels: built without (build tag cuda)")
		advise("for the GPU backend, build the CUDA kernels: `make cuda` (needs nvcc: " +
			"bash build/setup.sh --cuda)")
	} else {
		rt := "CUDA runtime unknown"
		if v, verr := doctorCUDARuntime(); verr == nil {
			rt = "CUDA runtime " + kgpu.FormatVersion(v)
		} else {
			rt += fmt.Sprintf(" (%v)", verr)
		}
		if err != nil {
			fmt.Fprintf(stdout, "  CUDA kernels: built in, %s, no usable device: %v\n", rt, err)
		} else {
			fmt.Fprintf(stdout, "  CUDA kernels: built in, %s, device available\n", rt)
		}
	}
	var trtVer trt.Version
	if !trt.Built() {
		fmt.Fprintln(stdout, "  TensorRT: built without (build tag tensorrt)")
		advise("for the GPU backend, install TensorRT 10 or 11, build the shim with " +
			"`cmake -S . -B build/out/cuda -DTENSORRT_ROOT=<prefix>` and the binary with " +
			"-tags cuda,tensorrt")
	} else {
		hv, _ := trt.HeaderVersion()
		lv, err := doctorTRTVersion()
		if err != nil {
			fmt.Fprintf(stdout, "  TensorRT: headers %s, library: %v\n", hv, err)
		} else {
			trtVer = lv
			fmt.Fprintf(stdout, "  TensorRT: headers %s, library %s\n", hv, lv)
		}
	}

	// Engines, checked against this machine.
	fmt.Fprintf(stdout, "\nEngines (%s)\n", *engines)
	doctorEngines(stdout, *engines, dev, trtVer, advise)

	// The CPU backend: the native MedLAM kernels' build, and ONNX Runtime.
	fmt.Fprintln(stdout, "\nCPU backend")
	fmt.Fprintf(stdout, "  native MedLAM network: %s kernels (of %v)\n", cpunet.Best(),
		cpunet.Levels())
	if lib, err := ort.FindLibrary(*ortLib); err != nil {
		fmt.Fprintf(stdout, "  ONNX Runtime: not found: %v\n", err)
		advise("install ONNX Runtime for the CPU backend: bash build/install-onnxruntime.sh")
	} else if v, err := ort.Version(lib); err != nil {
		fmt.Fprintf(stdout, "  ONNX Runtime: %s does not load: %v\n", lib, err)
		advise("reinstall ONNX Runtime: bash build/install-onnxruntime.sh")
	} else {
		fmt.Fprintf(stdout, "  ONNX Runtime %s: %s\n", v, lib)
	}

	fmt.Fprintln(stdout, "\nAdvice")
	if len(advice) == 0 {
		fmt.Fprintln(stdout, "  none: everything the GPU and CPU backends need is present")
	}
	for _, a := range advice {
		fmt.Fprintf(stdout, "  - %s\n", a)
	}
	return nil
}

// doctorEngines lists the engines in dir and whether each matches the GPU and TensorRT here.
func doctorEngines(w io.Writer, dir string, dev *gpu.Device, ver trt.Version,
	advise func(string, ...any)) {
	if _, err := os.Stat(dir); err != nil {
		fmt.Fprintf(w, "  none: %v\n", err)
		if dev != nil {
			advise("build TensorRT engines for this GPU: bash build/engines/build.sh --out %s", dir)
		}
		return
	}
	var mach trt.Machine
	if dev != nil {
		mach = trt.Machine{GPUName: dev.Name, ComputeCapability: dev.ComputeCapability,
			TensorRT: ver}
	}
	found, err := trt.ScanEngines(dir, mach)
	if err != nil {
		fmt.Fprintf(w, "  %v\n", err)
		return
	}
	if len(found) == 0 {
		fmt.Fprintln(w, "  none (*.plan or *.engine)")
	}
	mismatched := false
	for _, st := range found {
		name := filepath.Base(st.Plan)
		switch {
		case st.Manifest == nil:
			fmt.Fprintf(w, "  %s: unusable: %v\n", name, st.Err)
			mismatched = true
		case st.Err != nil:
			m := st.Manifest
			fmt.Fprintf(w, "  %s: %s for %s (compute %s), TensorRT %s: does not match: %v\n",
				name, m.Model, m.GPUName, m.ComputeCapability, m.TensorRTVersion, st.Err)
			mismatched = true
		default:
			fmt.Fprintf(w, "  %s: %s, matches this machine\n", name, st.Manifest.Model)
		}
	}
	if mismatched {
		advise("rebuild the engines marked above on this machine: bash build/engines/build.sh "+
			"--out %s", dir)
	}
	usable := map[string]bool{}
	for _, st := range found {
		if st.Err == nil && st.Manifest != nil {
			usable[st.Manifest.Model] = true
		}
	}
	if line, todo := enginePlan(usable); line != "" {
		fmt.Fprintf(w, "  => %s\n", line)
		if todo != "" {
			advise(todo, dir)
		}
	}
}

// enginePlan says what `localize` and `segment` do on the GPU backend with the models that
// have usable engines, and what to build next (a format with the engines directory), if
// anything.
func enginePlan(usable map[string]bool) (line, advice string) {
	sam := usable["sam-encoder"] && usable["sam-decoder"]
	switch {
	case sam && usable["medlam"]:
		return "segment runs in the GPU worker: MedLAM localisation and SAM on the device, " +
			"one copy of each volume; localize runs MedLAM in a GPU worker too", ""
	case sam:
		return "segment runs SAM in the GPU worker; MedLAM localises on the CPU in the " +
				"calling process, as localize does",
			"build the MedLAM engine too, so that both localise on the device: " +
				"bash build/engines/build.sh --only medlam --out %s"
	case usable["medlam"]:
		return "localize runs MedLAM in a GPU worker; segment runs on the CPU (no SAM engines)",
			"build the SAM engines too, so that segment runs on the device: " +
				"bash build/engines/build.sh --only sam-encoder --out %s (and sam-decoder)"
	}
	return "", ""
}

func gib(b uint64) float64 { return float64(b) / (1 << 30) }

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
