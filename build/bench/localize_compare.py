#!/usr/bin/python3
"""Times MedLAM localisation per stage in Go and in the torch reference, interleaved.

Issue 3's benchmark: the full-size network with random weights (models/full, made by
`make models-medlam-full` when absent), each stage of the Go implementation (the
BenchmarkStage* benchmarks of engine/localize, run once each with -benchtime 1x; the network
stages on both CPU runtimes, native and ort) side by side with the reference formulation of
the same stage in torch on the same weights (build/bench/medlam_reference.py: 2 threads,
fp32). Rounds alternate Go and torch (--rounds, the side that starts alternating too), so a
change in the load of the shared cores falls on both sides; the table gives the median of the
rounds and the ratio of medians.

Stages (per point where the reference works per point; a query of 16 organs in WPL mode is
96 points):
  coarse          the coarse step, 10 crops (Go: encoder only; reference: whole network)
  templates       one template point's features and kernels (Go: one organ, 6 points)
  refine network  one refinement patch through the whole network (Go: a batch of 2)
  similarity      one point's multi-scale similarity search (Go: 8 points, random features
                  of the full-size shapes; reference: one point, grouped conv3d)
Full-size forward passes take seconds each on two shared cores, so the per-point stages run a
few points: the table says how many.

  /usr/bin/python3 build/bench/localize_compare.py [--ref-points 1] [--rounds 3]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "build", "bench"))
import medlam_reference as ref  # noqa: E402


def go_bench():
    """Runs the Go stage benchmarks once; returns {stage or stage/runtime: seconds}."""
    cmd = ["go", "test", "./engine/localize/", "-run", "^$", "-bench", "^BenchmarkStage",
           "-benchtime", "1x", "-count", "1", "-timeout", "30m"]
    print("+ " + " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        if "SKIP" in line:
            raise SystemExit("localize_compare: skipped: " + line)
        m = re.match(r"BenchmarkStage(\w+?)(/\w+?)?(-\d+)?\s+\d+\s+(\d+) ns/op(.*)", line)
        if not m:
            continue
        name = m.group(1) + (m.group(2) or "")
        ns, rest = int(m.group(4)), m.group(5)
        per = re.search(r"([\d.e+-]+) s/point", rest)
        res[name] = float(per.group(1)) if per else ns / 1e9
    want = {"Similarity"} | {s + "/" + r for s in NETWORK_STAGES for r in RUNTIMES}
    missing = want - set(res)
    if missing:
        raise SystemExit("localize_compare: no result for %s in:\n%s" % (missing, out))
    return res


NETWORK_STAGES = ["Coarse", "Templates", "RefineNetwork"]
RUNTIMES = ["native", "ort"]


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
                   help="points of the reference's per-point stages (each about 3 s)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of each side")
    args = p.parse_args()
    if not os.path.exists(os.path.join(ROOT, "models", "full", "medlam.onnx")):
        subprocess.run(["make", "models-medlam-full"], cwd=ROOT, check=True)
    gos, trs = [], []
    for r in range(args.rounds):
        sides = [lambda: gos.append(go_bench()),
                 lambda: trs.append(torch_reference(args.ref_points))]
        for run in (sides if r % 2 == 0 else sides[::-1]):
            run()
    med = lambda runs, key: statistics.median(x[key] for x in runs)
    go = {k: med(gos, k) for k in gos[0]}
    tr = {k: med(trs, k) for k in trs[0]}
    rows = [("coarse (10 crops)", "Coarse", "per query", "10 crops", "10 crops"),
            ("templates", "Templates", "per point", "6 points", "%d" % args.ref_points),
            ("refine network", "RefineNetwork", "per point", "2 points",
             "%d" % args.ref_points),
            ("similarity search", "Similarity", "per point", "8 points",
             "%d" % args.ref_points)]
    print("Medians of %d interleaved rounds; seconds." % args.rounds)
    print("| stage | unit | torch s | Go native s | Go ort s | torch / native | torch / ort "
          "| Go measured on | torch on |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, key, unit, gon, ton in rows:
        nat = go.get(key + "/native", go.get(key))
        ort = go.get(key + "/ort", go.get(key))
        print("| %s | %s | %.3f | %.3f | %.3f | %.1fx | %.1fx | %s | %s |" % (
            label, unit, tr[key], nat, ort, tr[key] / nat, tr[key] / ort, gon, ton))
    q_nat = go["Coarse/native"] + 96 * (go["RefineNetwork/native"] + go["Similarity"])
    q_ort = go["Coarse/ort"] + 96 * (go["RefineNetwork/ort"] + go["Similarity"])
    q_tr = tr["Coarse"] + 96 * (tr["RefineNetwork"] + tr["Similarity"])
    print("| query, 16 organs (96 points), estimated | per query | %.1f | %.1f | %.1f | "
          "%.1fx | %.1fx | from the rows | from the rows |" % (
              q_tr, q_nat, q_ort, q_tr / q_nat, q_tr / q_ort))
    print(json.dumps({"go": gos, "torch": trs}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
