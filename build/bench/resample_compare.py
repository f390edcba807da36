#!/usr/bin/python3
"""Time resampling a CT to 3 mm: our Go kernel against scipy.ndimage.zoom and torch.

Run from anywhere with Debian's interpreter (python3-scipy, python3-torch, Go on PATH):

    /usr/bin/python3 build/bench/resample_compare.py [--repeat N] [--go-count N]

It builds the synthetic volume of kernels/resample_bench_test.go (512 x 512 x 300 voxels at
0.8 x 0.8 x 2.5 mm; keep both in step), times scipy.ndimage.zoom(order=1) and
torch.nn.functional.interpolate(trilinear, align_corners=False, 2 threads) to the output
size of the Go convention, runs the Go benchmark in the same run, and prints the medians and
the ratios. The three use different grids (see the kernels package comment), so this compares
speed at equal output size, not values. Not part of the test suite.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import scipy
import scipy.ndimage
import torch

SHAPE_XYZ = (512, 512, 300)
SPACING_XYZ = (0.8, 0.8, 2.5)
TARGET_MM = 3.0
GO_BENCH = "BenchmarkResampleTrilinearCT"


def synthetic_ct():
    """The benchmark volume in (z, y, x) order, float32, as the Go benchmark builds it."""
    nx, ny, nz = SHAPE_XYZ
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    x, y = (i - 256).astype(np.float64), (j - 256).astype(np.float64)
    bx, by = (i - 256) / 30.0, (j - 330) / 30.0
    vol = np.full((nz, ny, nx), -1000.0, dtype=np.float32)
    body = (x / 230) * (x / 230) + (y / 180) * (y / 180) <= 1
    vol[body] = (10 + (i * 7 + j * 3 + k * 11) % 61)[body]
    vol[bx * bx + by * by <= 1] = 700
    return vol


def go_shape():
    """Output (x, y, z) size under the Go convention: floor((n-1)/r + 1e-9) + 1."""
    return tuple(
        int(np.floor((n - 1) / (TARGET_MM / s) + 1e-9)) + 1
        for n, s in zip(SHAPE_XYZ, SPACING_XYZ)
    )


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def go_bench(root, count):
    cmd = ["go", "test", "-run", "^$", "-bench", "^%s$" % GO_BENCH, "-benchtime", "10x",
           "-count", str(count), "./kernels/"]
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit("go benchmark failed:\n" + res.stdout + res.stderr)
    ns = [float(m) for m in re.findall(GO_BENCH + r"-\d+\s+\d+\s+([\d.]+) ns/op", res.stdout)]
    if not ns:
        sys.exit("no ns/op in go output:\n" + res.stdout)
    return statistics.median(ns) / 1e9, " ".join(cmd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of scipy and torch")
    ap.add_argument("--go-count", type=int, default=5, help="go test -count")
    args = ap.parse_args()
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

    torch.set_num_threads(2)
    vol = synthetic_ct()
    ox, oy, oz = go_shape()
    out_zyx = (oz, oy, ox)
    zoom = tuple(o / n for o, n in zip(out_zyx, vol.shape))

    got = scipy.ndimage.zoom(vol, zoom, order=1)
    assert got.shape == out_zyx, (got.shape, out_zyx)
    t_scipy = median_time(lambda: scipy.ndimage.zoom(vol, zoom, order=1), args.repeat)

    tv = torch.from_numpy(vol)[None, None]

    def run_torch():
        with torch.no_grad():
            return torch.nn.functional.interpolate(tv, size=out_zyx, mode="trilinear",
                                                   align_corners=False)

    assert tuple(run_torch().shape[2:]) == out_zyx
    t_torch = median_time(run_torch, max(args.repeat, 10))

    t_go, go_cmd = go_bench(root, args.go_count)

    print("volume %s (x, y, z) at %s mm -> %s at %.0f mm; %d CPUs; scipy %s, torch %s"
          % (SHAPE_XYZ, SPACING_XYZ, (ox, oy, oz), TARGET_MM, os.cpu_count(),
             scipy.__version__, torch.__version__))
    print("go: %s" % go_cmd)
    print("%-44s %10s %12s" % ("implementation", "median s", "go speed-up"))
    rows = [
        ("scipy.ndimage.zoom order=1", t_scipy),
        ("torch interpolate trilinear, 2 threads", t_torch),
        ("go kernels.ResampleTrilinear", t_go),
    ]
    for name, t in rows:
        print("%-44s %10.4f %11.2fx" % (name, t, t / t_go))


if __name__ == "__main__":
    main()
