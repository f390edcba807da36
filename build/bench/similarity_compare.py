#!/usr/bin/python3
"""Time MedLAM's multi-scale similarity search: our Go kernel against the reference in torch.

Run from anywhere with Debian's interpreter (python3-torch, Go on PATH):

    /usr/bin/python3 build/bench/similarity_compare.py [--reps 1] [--go-count 1] [--no-check]

The reference formulation, as openmedlab/MedLSAM's Relative_distance.cal_RD_with_feature runs
it (shared/notes/method.md section 4 step 3), on random inputs of the full size (96 channels,
feature maps of 16^3, 32^3, 64^3, kernels of 2^3, 4^3, 8^3 voxels), fp32 on the CPU with
2 threads: F.normalize over channels, grouped conv3d with padding k/2 (one group per point,
no bias: the reference's freshly built conv carries a random bias that shifts the whole map),
divided by k^3, F.interpolate trilinear to 64^3 (align_corners=False), the sum over scales,
and the first maximum in C order. The Go benchmark (kernels.BenchmarkSimilaritySearch) runs
in the same invocation and the table gives the ratio.

Unless --no-check, it first writes a small case (7 channels, 3 points) with torch's answers to
a temporary folder and runs the Go test TestSimilarityMatchesTorch on it, so the Go kernel is
checked against torch itself, not only against the Go reference formulation.
Not part of the test suite.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

SCALES = ((16, 2), (32, 4), (64, 8))  # (feature map edge S, kernel edge k)
PATCH = 64
GO_BENCH = "BenchmarkSimilaritySearch"


def make_inputs(rng, channels, points):
    """Raw query features [P, C, S, S, S] and kernels [P, C, k, k, k] per scale.

    Kernels are the normalised centre crop of two random template maps, summed, as the
    reference builds its support_center_feature.
    """
    feats, kerns = [], []
    for size, k in SCALES:
        f = (rng.random((points, channels, size, size, size), dtype=np.float32) * 2 - 1) * 3
        lo = size // 2 - k // 2
        kern = np.zeros((points, channels, k, k, k), dtype=np.float32)
        for _ in range(2):
            t = rng.random((points, channels, size, size, size), dtype=np.float32) * 2 - 1
            crop = torch.from_numpy(t[:, :, lo:lo + k, lo:lo + k, lo:lo + k].copy())
            kern += F.normalize(crop, dim=1).numpy()
        feats.append(f)
        kerns.append(kern)
    return feats, kerns


def reference(feats, kerns):
    """The fused 64^3 maps [P, 64, 64, 64] of the reference formulation."""
    points = feats[0].shape[0]
    fused = torch.zeros((points, PATCH, PATCH, PATCH))
    with torch.no_grad():
        for f, kern in zip(feats, kerns):
            q = F.normalize(torch.from_numpy(f), dim=1)
            p, c, s = q.shape[0], q.shape[1], q.shape[2]
            k = kern.shape[-1]
            q = q.reshape(1, p * c, s, s, s)
            sim = F.conv3d(q, torch.from_numpy(kern), padding=k // 2, groups=p)
            sim = sim / k ** 3  # [1, P, S+1, S+1, S+1]
            sim = F.interpolate(sim, size=(PATCH, PATCH, PATCH), mode="trilinear",
                                align_corners=False)
            fused += sim[0]
    return fused.numpy()


def argmax_first(m):
    """Index (z, y, x) of the first maximum in C order, as np.where(m == max)[:, 0]."""
    return np.unravel_index(int(np.argmax(m)), m.shape)


def check_against_go(root):
    """Write a small case with torch's answers and run the Go test that reads it."""
    rng = np.random.default_rng(11)
    channels, points = 7, 3
    feats, kerns = make_inputs(rng, channels, points)
    fused = reference(feats, kerns)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(len(SCALES)):
            feats[i].astype("<f4").tofile(os.path.join(tmp, "features%d.f32" % i))
            kerns[i].astype("<f4").tofile(os.path.join(tmp, "kernels%d.f32" % i))
        fused.astype("<f4").tofile(os.path.join(tmp, "fused.f32"))
        case = {
            "channels": channels,
            "points": points,
            "index": [[int(v) for v in argmax_first(fused[p])] for p in range(points)],
            "score": [float(fused[p].max()) for p in range(points)],
        }
        with open(os.path.join(tmp, "case.json"), "w") as fh:
            json.dump(case, fh)
        cmd = ["go", "test", "-count", "1", "-run", "^TestSimilarityMatchesTorch$", "-v",
               "./kernels/"]
        env = dict(os.environ, MEDLSAM_SIMILARITY_TORCH_CASE=tmp)
        res = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                             check=False)
        if res.returncode != 0 or "--- PASS" not in res.stdout:
            sys.exit("go check against torch failed:\n" + res.stdout + res.stderr)
        print("check: Go matches torch on %d points x %d channels (%s)"
              % (points, channels, " ".join(cmd)))
        for p in range(points):
            print("  point %d: torch argmax %s, score %.6f" % (p, case["index"][p],
                                                              case["score"][p]))
        for line in res.stdout.splitlines():
            if "go index" in line:
                print("  " + line.strip())


def go_bench(root, count):
    """Median s/point of the Go benchmark per (points, tile), and the command."""
    cmd = ["go", "test", "-run", "^$", "-bench",
           "^%s$/points=(1|8)/(avx2|avx512)$" % GO_BENCH, "-benchtime", "2x", "-count",
           str(count), "./kernels/"]
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit("go benchmark failed:\n" + res.stdout + res.stderr)
    found = {}
    pat = r"%s/points=(\d+)/(\w+)-\d+\s+\d+\s+[\d.]+ ns/op.*?([\d.]+) s/point" % GO_BENCH
    for points, impl, sec in re.findall(pat, res.stdout):
        found.setdefault((int(points), impl), []).append(float(sec))
    if not found:
        sys.exit("no assembly tile benchmarked (no AVX2 here?); go output:\n" + res.stdout)
    return {key: statistics.median(v) for key, v in found.items()}, " ".join(cmd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1, help="timed torch runs (about 10 s each)")
    ap.add_argument("--go-count", type=int, default=1, help="go test -count")
    ap.add_argument("--no-check", action="store_true", help="skip the check against Go")
    args = ap.parse_args()
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    torch.set_num_threads(2)

    if not args.no_check:
        check_against_go(root)

    feats, kerns = make_inputs(np.random.default_rng(1), 96, 1)
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        fused = reference(feats, kerns)
        argmax_first(fused[0])
        times.append(time.perf_counter() - t0)
    t_torch = statistics.median(times)

    go_t, go_cmd = go_bench(root, args.go_count)
    print("similarity search, 96 channels, maps 16^3/32^3/64^3, kernels 2^3/4^3/8^3; "
          "%d CPUs; torch %s, %d threads" % (os.cpu_count(), torch.__version__,
                                             torch.get_num_threads()))
    print("go: %s" % go_cmd)
    print("%-46s %12s %12s" % ("implementation", "s per point", "vs torch"))
    rows = [("torch reference (grouped conv3d), 1 point", t_torch)]
    for (points, impl), t in sorted(go_t.items()):
        rows.append(("go SimilaritySearch, %d point%s, %s tile" % (
            points, "s" if points > 1 else "", impl), t))
    for name, t in rows:
        print("%-46s %12.3f %11.2fx" % (name, t, t_torch / t))


if __name__ == "__main__":
    main()
