#!/usr/bin/python3
"""Times MedLAM localisation per stage in Go and in the torch reference, in one run.

Issue 3's benchmark: the full-size network with random weights (models/full, made by
`make models-medlam-full` when absent), each stage of the Go implementation (the
BenchmarkStage* benchmarks of engine/localize, run once each with -benchtime 1x) side by side
with the reference formulation of the same stage in torch on the same weights
(build/bench/medlam_reference.py: 2 threads, fp32). Prints a table with ratios.

Stages (per point where the reference works per point; a query of 16 organs in WPL mode is
96 points):
  coarse          the coarse step, 10 crops (Go: encoder only; reference: whole network)
  templates       one template point's features and kernels (Go: one organ, 6 points)
  refine network  one refinement patch through the whole network (Go: a batch of 2)
  similarity      one point's multi-scale similarity search (Go: 8 points, random features
                  of the full-size shapes; reference: one point, grouped conv3d)
Full-size forward passes take seconds each on two shared cores, so the per-point stages run a
few points: the table says how many. Machine load shifts both sides alike; quote the ratios.

  /usr/bin/python3 build/bench/localize_compare.py [--ref-points 1]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "build", "bench"))
import medlam_reference as ref  # noqa: E402


def go_bench():
    """Runs the Go stage benchmarks once; returns {stage: seconds (per point or per op)}."""
    cmd = ["go", "test", "./engine/localize/", "-run", "^$", "-bench", "^BenchmarkStage",
           "-benchtime", "1x", "-count", "1", "-timeout", "30m"]
    print("+ " + " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        m = re.match(r"BenchmarkStage(\w+?)(-\d+)?\s+\d+\s+(\d+) ns/op(.*)", line)
        if not m:
            continue
        name, ns, rest = m.group(1), int(m.group(3)), m.group(4)
        per = re.search(r"([\d.e+-]+) s/point", rest)
        res[name] = float(per.group(1)) if per else ns / 1e9
        if "SKIP" in line:
            raise SystemExit("localize_compare: %s skipped" % name)
    missing = {"Coarse", "Templates", "RefineNetwork", "Similarity"} - set(res)
    if missing:
        raise SystemExit("localize_compare: no result for %s in:\n%s" % (missing, out))
    return res


def torch_reference(points):
    """Times the reference formulation of each stage; returns {stage: seconds}."""
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    shape = [264, 231, 231]
    volume = rng.uniform(0.1, 1.0, size=shape).astype(np.float32)
    net = ref.medlam.random_network(0, ref.medlam.FULL_CONFIG)
    centre = np.array(shape) // 2
    out = {}
    t0 = time.perf_counter()
    ref.coarse(net, volume, rng, 10)
    out["Coarse"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    kern = ref.kernels(net, volume, centre, points)
    out["Templates"] = (time.perf_counter() - t0) / points
    pts = [centre + np.array([7 * p, 0, -5 * p]) for p in range(points)]
    _, tn, ts = ref.refine(net, volume, pts, kern)
    out["RefineNetwork"] = tn / points
    out["Similarity"] = ts / points
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ref-points", type=int, default=1,
                   help="points of the reference's per-point stages (each about 15 s)")
    args = p.parse_args()
    if not os.path.exists(os.path.join(ROOT, "models", "full", "medlam.onnx")):
        subprocess.run(["make", "models-medlam-full"], cwd=ROOT, check=True)
    go = go_bench()
    tr = torch_reference(args.ref_points)
    rows = [("coarse (10 crops)", "Coarse", "per query", "10 crops", "10 crops"),
            ("templates", "Templates", "per point", "6 points", "%d" % args.ref_points),
            ("refine network", "RefineNetwork", "per point", "2 points",
             "%d" % args.ref_points),
            ("similarity search", "Similarity", "per point", "8 points",
             "%d" % args.ref_points)]
    print("| stage | unit | Go s | torch s | torch / Go | Go measured on | torch on |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, key, unit, gon, ton in rows:
        print("| %s | %s | %.3f | %.3f | %.1fx | %s | %s |" % (
            label, unit, go[key], tr[key], tr[key] / go[key], gon, ton))
    per_query_go = go["Coarse"] + 96 * (go["RefineNetwork"] + go["Similarity"])
    per_query_tr = tr["Coarse"] + 96 * (tr["RefineNetwork"] + tr["Similarity"])
    print("| query, 16 organs (96 points), estimated | per query | %.1f | %.1f | %.1fx | "
          "from the rows | from the rows |" % (per_query_go, per_query_tr,
                                               per_query_tr / per_query_go))
    print(json.dumps({"go": go, "torch": tr}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
