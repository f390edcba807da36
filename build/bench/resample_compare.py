#!/usr/bin/python3
"""Time resampling a CT to 3 mm: our Go kernel against scipy.ndimage.zoom and torch.

Run from anywhere with Debian's interpreter (python3-scipy, python3-torch, Go on PATH):

    /usr/bin/python3 build/bench/resample_compare.py [--rounds N]

It builds the synthetic volume of kernels/resample_bench_test.go (512 x 512 x 300 voxels at
0.8 x 0.8 x 2.5 mm; keep both in step), times scipy.ndimage.zoom(order=1) and
torch.nn.functional.interpolate(trilinear, align_corners=False, 2 threads) to the output
size of the Go convention, runs the Go benchmarks in the same run (rounds interleave all of
them), and prints the medians and the ratios; the intensity kernels are timed against numpy
the same way. The three use different grids (see the kernels package comment), so this compares
speed at equal output size, not values.

It also times the reference implementation's own calls, which --resample reference
reproduces value for value (kernels/zoom.go): scipy.ndimage.zoom with its defaults (cubic
spline) on the float64 volume, and the label map (air, body, bone) one-hot encoded,
interpolated trilinearly by torch with scale factors and reduced by argmax; against
BenchmarkZoomCubicCT and BenchmarkResampleLabelsOneHotCT. Not part of the test suite.
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
GO_INTENSITY = ("BenchmarkNormalizeHUCT", "BenchmarkSAMWindowCT")
GO_REFERENCE = ("BenchmarkZoomCubicCT", "BenchmarkResampleLabelsOneHotCT")


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


def synthetic_labels(vol):
    """The label map of BenchmarkResampleLabelsOneHotCT: 0 air, 1 body, 2 bone."""
    lab = np.zeros(vol.shape, np.int64)
    lab[vol > -1000] = 1
    lab[vol >= 700] = 2
    return lab


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def go_bench(root, names, count):
    """Median seconds per op of each named Go benchmark in ./kernels/, and the command."""
    pattern = "^(%s)$" % "|".join(names)
    cmd = ["go", "test", "-run", "^$", "-bench", pattern, "-benchtime", "5x",
           "-count", str(count), "./kernels/"]
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        sys.exit("go benchmark failed:\n" + res.stdout + res.stderr)
    out = {}
    for name in names:
        ns = [float(m) for m in re.findall(name + r"-\d+\s+\d+\s+([\d.]+) ns/op", res.stdout)]
        if not ns:
            sys.exit("no ns/op for %s in go output:\n%s" % (name, res.stdout))
        out[name] = statistics.median(ns) / 1e9
    return out, " ".join(cmd)


def sam_window_numpy(vol):
    """method.md section 5 step 2 as the reference writes it, on float64."""
    data = vol.astype(np.float64)
    pre = np.clip(data, -500, 1000)
    pre = (pre - np.min(pre)) / (np.max(pre) - np.min(pre)) * 255.0
    pre[data == 0] = 0
    return np.uint8(pre)


def normalize_hu_numpy(vol):
    """MedLAM's piecewise-linear normalisation, vectorised with np.interp."""
    return np.interp(vol, [-1000, -200, 200, 1500], [0, 0.2, 0.8, 1]).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds; each times every implementation once, so that load from "
                    "other processes falls on all of them alike")
    ap.add_argument("--go-root", default=os.path.join(os.path.dirname(__file__), "..", ".."),
                    help="module root holding ./kernels/ (default: this repository)")
    args = ap.parse_args()
    root = os.path.abspath(args.go_root)

    torch.set_num_threads(2)
    vol = synthetic_ct()
    ox, oy, oz = go_shape()
    out_zyx = (oz, oy, ox)
    zoom = tuple(o / n for o, n in zip(out_zyx, vol.shape))
    tv = torch.from_numpy(vol)[None, None]

    def run_scipy():
        return scipy.ndimage.zoom(vol, zoom, order=1)

    def run_torch():
        with torch.no_grad():
            return torch.nn.functional.interpolate(tv, size=out_zyx, mode="trilinear",
                                                   align_corners=False)

    factors = [s / TARGET_MM for s in SPACING_XYZ[::-1]]
    vol64 = vol.astype(np.float64)  # the reference reads volumes with get_fdata()
    labels = torch.from_numpy(synthetic_labels(vol))

    def run_scipy_cubic():
        return scipy.ndimage.zoom(vol64, factors)

    def run_torch_onehot():
        with torch.no_grad():
            onehot = torch.nn.functional.one_hot(labels, -1).float().permute(3, 0, 1, 2)[None]
            out = torch.nn.functional.interpolate(onehot, scale_factor=factors,
                                                  mode="trilinear")
            return torch.argmax(out, dim=1)

    assert run_scipy().shape == out_zyx
    assert tuple(run_torch().shape[2:]) == out_zyx
    names = (GO_BENCH,) + GO_INTENSITY + GO_REFERENCE
    times = {k: [] for k in ("scipy", "torch", "sam", "hu", "cubic", "onehot") + names}
    go_cmd = ""
    for _ in range(args.rounds):
        times["scipy"].append(median_time(run_scipy, 1))
        times["torch"].append(median_time(run_torch, 3))
        times["sam"].append(median_time(lambda: sam_window_numpy(vol), 1))
        times["hu"].append(median_time(lambda: normalize_hu_numpy(vol), 1))
        times["cubic"].append(median_time(run_scipy_cubic, 1))
        times["onehot"].append(median_time(run_torch_onehot, 1))
        go_t, go_cmd = go_bench(root, names, 1)
        for k, t in go_t.items():
            times[k].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}

    print("volume %s (x, y, z) at %s mm -> %s at %.0f mm; %d CPUs; scipy %s, torch %s; "
          "medians of %d interleaved rounds"
          % (SHAPE_XYZ, SPACING_XYZ, (ox, oy, oz), TARGET_MM, os.cpu_count(),
             scipy.__version__, torch.__version__, args.rounds))
    print("go, each round: %s" % go_cmd)
    print("%-44s %10s %12s" % ("resampling", "median s", "go speed-up"))
    t_go = med[GO_BENCH]
    for name, t in [("scipy.ndimage.zoom order=1", med["scipy"]),
                    ("torch interpolate trilinear, 2 threads", med["torch"]),
                    ("go kernels.ResampleTrilinear", t_go)]:
        print("%-44s %10.4f %11.2fx" % (name, t, t / t_go))
    print("%-44s %10s %12s" % ("intensity, whole volume", "median s", "go speed-up"))
    for name, key, bench in [("numpy SAM window (reference code)", "sam", GO_INTENSITY[1]),
                             ("numpy np.interp HU normalisation", "hu", GO_INTENSITY[0])]:
        print("%-44s %10.4f %11.2fx" % (name, med[key], med[key] / med[bench]))
        print("%-44s %10.4f %11.2fx" % ("  go " + bench, med[bench], 1.0))
    print("%-44s %10s %12s" % ("reference resampling (--resample reference)", "median s",
                               "go speed-up"))
    for name, key, bench in [("scipy zoom, cubic spline, float64", "cubic", GO_REFERENCE[0]),
                             ("torch one-hot trilinear argmax, labels", "onehot",
                              GO_REFERENCE[1])]:
        print("%-44s %10.4f %11.2fx" % (name, med[key], med[key] / med[bench]))
        print("%-44s %10.4f %11.2fx" % ("  go " + bench, med[bench], 1.0))


if __name__ == "__main__":
    main()
