#!/usr/bin/python3
"""Times one MedLAM network forward pass in torch and in ONNX Runtime, interleaved in one run.

Issue 3's network-only comparison: models/full/medlam.onnx (`make models-medlam-full`, random
seed 0) in ONNX Runtime, through github.com/yalue/onnxruntime_go as engine/ort uses it, against
the same weights in Debian's torch (models/medlam.py), on a batch of --batch random 64^3 patches.
Variants run in turn, one run each per round, the starting variant rotating each round, so
that a load change on the shared cores shifts every variant alike.

Each run records wall seconds and CPU seconds of the process (user + system). On two shared
cores the wall time of a two-thread run depends on what else runs; the CPU time of a
one-thread run measures the work a runtime spends per patch and hardly moves with the load.
GMAC/s uses 211.6 GMAC per patch (models/medlam.py's block table).

Variants:
  torch-1t, torch-2t        fp32, torch.set_num_threads(1 or 2)
  torch-bf16-2t             fp32 weights under torch.autocast("cpu", torch.bfloat16)
  ort-1t, ort-2t            graph optimisation "all", intra-op threads 1 or 2 (engine/ort)
  ort-2t-nospin             ort-2t with session.intra_op.allow_spinning=0

The ONNX Runtime side is a small Go program, written into a temporary module that requires the
repository's onnxruntime_go version (module cache and go.sum of the repository; nothing is
downloaded), built once per run. Prints a table with medians and ratios to torch-2t.

  /usr/bin/python3 build/bench/medlam_network_compare.py [--batch 1] [--reps 2]
      [--variants torch-1t,torch-2t,ort-1t,ort-2t] [--ort-lib PATH]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models"))
import medlam  # noqa: E402

GMAC_PER_PATCH = 211.6
ALL_VARIANTS = ["torch-1t", "torch-2t", "torch-bf16-2t", "ort-1t", "ort-2t", "ort-2t-nospin"]

# The ONNX Runtime timing server: opens one session per line of its argument file
# ("name threads spin"), then answers "run NAME BATCH" with "wall_s cpu_s".
GO_SERVER = r'''package main

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "medlam_network_compare server:", err)
		os.Exit(1)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	fail(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func main() {
	model, lib, spec := os.Args[1], os.Args[2], os.Args[3]
	ort.SetSharedLibraryPath(lib)
	fail(ort.InitializeEnvironment())
	outs := []string{"position", "feature0", "feature1", "feature2"}
	edges := []int64{0, 16, 32, 64}
	sessions := map[string]*ort.DynamicAdvancedSession{}
	for _, line := range strings.Split(strings.TrimSpace(spec), ";") {
		f := strings.Fields(line)
		threads, _ := strconv.Atoi(f[1])
		so, err := ort.NewSessionOptions()
		fail(err)
		fail(so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll))
		fail(so.SetIntraOpNumThreads(threads))
		fail(so.AddSessionConfigEntry("session.intra_op.allow_spinning", f[2]))
		s, err := ort.NewDynamicAdvancedSession(model, []string{"patch"}, outs, so)
		fail(err)
		so.Destroy()
		sessions[f[0]] = s
	}
	rng := rand.New(rand.NewSource(1))
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			break
		}
		s := sessions[f[1]]
		b, _ := strconv.ParseInt(f[2], 10, 64)
		data := make([]float32, b*64*64*64)
		for i := range data {
			data[i] = 0.1 + 0.9*rng.Float32()
		}
		in, err := ort.NewTensor(ort.NewShape(b, 1, 64, 64, 64), data)
		fail(err)
		vals := make([]ort.Value, len(outs))
		for i, e := range edges {
			shape := ort.NewShape(b, 96, e, e, e)
			if e == 0 {
				shape = ort.NewShape(b, 3)
			}
			t, err := ort.NewEmptyTensor[float32](shape)
			fail(err)
			vals[i] = t
		}
		c0, t0 := cpuSeconds(), time.Now()
		fail(s.Run([]ort.Value{in}, vals))
		fmt.Printf("%.4f %.4f\n", time.Since(t0).Seconds(), cpuSeconds()-c0)
		in.Destroy()
		for _, v := range vals {
			v.Destroy()
		}
	}
}
'''


def build_server(workdir):
    """Builds the Go timing server in workdir against the repository's onnxruntime_go."""
    with open(os.path.join(ROOT, "go.mod")) as f:
        m = re.search(r"github.com/yalue/onnxruntime_go (v\S+)", f.read())
    if not m:
        sys.exit("medlam_network_compare: go.mod: no github.com/yalue/onnxruntime_go requirement")
    with open(os.path.join(workdir, "go.mod"), "w") as f:
        f.write("module medlamnetbench\n\ngo 1.26\n\nrequire github.com/yalue/onnxruntime_go %s\n"
                % m.group(1))
    shutil.copy(os.path.join(ROOT, "go.sum"), os.path.join(workdir, "go.sum"))
    with open(os.path.join(workdir, "main.go"), "w") as f:
        f.write(GO_SERVER)
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off")
    subprocess.run(["go", "build", "-o", "server", "."], cwd=workdir, env=env, check=True)
    return os.path.join(workdir, "server")


class OrtServer:
    """The Go server as a subprocess; run() returns (wall seconds, CPU seconds)."""

    def __init__(self, binary, model, lib, sessions):
        spec = ";".join("%s %d %d" % s for s in sessions)
        self.proc = subprocess.Popen([binary, model, lib, spec], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            sys.exit("medlam_network_compare: the ONNX Runtime server did not start")

    def run(self, name, batch):
        self.proc.stdin.write("run %s %d\n" % (name, batch))
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().split()
        if len(line) != 2:
            sys.exit("medlam_network_compare: the ONNX Runtime server failed on %s" % name)
        return float(line[0]), float(line[1])

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def torch_run(net, variant, batch):
    """One forward pass of a torch variant; returns (wall seconds, CPU seconds)."""
    torch.set_num_threads(1 if variant.endswith("-1t") else 2)
    x = torch.rand(batch, 1, medlam.PATCH, medlam.PATCH, medlam.PATCH) * 0.9 + 0.1
    with torch.no_grad():
        c0, t0 = time.process_time(), time.perf_counter()
        if "bf16" in variant:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                net(x)
        else:
            net(x)
        return time.perf_counter() - t0, time.process_time() - c0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=1, help="patches per forward pass")
    p.add_argument("--reps", type=int, default=2, help="timed rounds after one warm-up")
    p.add_argument("--variants", default="torch-1t,torch-2t,ort-1t,ort-2t",
                   help="comma-separated subset of: " + ",".join(ALL_VARIANTS))
    p.add_argument("--model", default=os.path.join(ROOT, "models", "full", "medlam.onnx"))
    p.add_argument("--ort-lib",
                   default=os.path.join(ROOT, ".deps", "onnxruntime", "libonnxruntime.so.1"))
    args = p.parse_args()
    variants = args.variants.split(",")
    bad = [v for v in variants if v not in ALL_VARIANTS]
    if bad or args.batch < 1 or args.reps < 1:
        p.error("unknown variants %s, or --batch/--reps below 1" % bad)
    for path, what in ((args.model, "make models-medlam-full"), (args.ort_lib, "README set-up")):
        if not os.path.exists(path):
            sys.exit("medlam_network_compare: %s is missing (%s)" % (path, what))

    net = medlam.random_network(0, medlam.FULL_CONFIG)
    sessions = [(v, 1 if v.endswith("-1t") else 2, 0 if "nospin" in v else 1)
                for v in variants if v.startswith("ort")]
    with tempfile.TemporaryDirectory() as tmp:
        server = OrtServer(build_server(tmp), args.model, args.ort_lib, sessions) \
            if sessions else None

        def run(v):
            return server.run(v, args.batch) if v.startswith("ort") else \
                torch_run(net, v, args.batch)

        for v in variants:  # warm-up: session allocations, oneDNN primitives
            run(v)
        times = {v: [] for v in variants}
        for r in range(args.reps):
            k = r % len(variants)
            for v in variants[k:] + variants[:k]:
                times[v].append(run(v))
        if server:
            server.close()

    b = args.batch
    print("batch %d, %d rounds, medians per patch (%.1f GMAC each); load average %s"
          % (b, args.reps, GMAC_PER_PATCH, os.getloadavg()))
    print("%-14s %8s %8s %10s %10s %12s" % ("variant", "wall_s", "cpu_s", "GMAC/s", "GMAC/cpu-s",
                                            "torch-2t/x"))
    ref = statistics.median(t[0] for t in times["torch-2t"]) if "torch-2t" in times else None
    for v in variants:
        wall = statistics.median(t[0] for t in times[v])
        cpu = statistics.median(t[1] for t in times[v])
        ratio = "%.2f" % (ref / wall) if ref else "-"
        print("%-14s %8.2f %8.2f %10.1f %10.1f %12s" % (v, wall / b, cpu / b,
                                                        GMAC_PER_PATCH * b / wall,
                                                        GMAC_PER_PATCH * b / cpu, ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
