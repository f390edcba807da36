#!/usr/bin/env python3
"""Compare TensorRT engines built from the tiny ONNX models with the golden outputs.

    python3 build/engines/compare.py --engines DIR [--golden testdata/models]
                                     [--trtexec trtexec] [--work DIR] [--precision fp32]

For every engine in DIR whose manifest names a tiny model with a golden file (medlam,
medlam-encoder, sam-encoder, sam-decoder), this script writes the golden inputs (their
formulas, evaluated in float64 and stored as float32), runs the engine once with
`trtexec --loadInputs --exportOutput`, and checks the outputs against the golden file's
summaries: per-tensor (or per-batch-item) sum, sum of squares, listed values and slices.

The golden outputs are torch's; engine/ort's golden tests hold ONNX Runtime to the same
files, so an engine that passes here agrees with ONNX Runtime on the same inputs.

Tolerances (stated, per precision): a value v is accepted against g when
|v - g| <= abs + rel * scale, where scale is |g| for listed values and slices, and the
golden abs_sum (for sums) or sq_sum (for sums of squares).
    fp32 engines (built --noTF32): rel 1e-3, abs 1e-3
    fp16 engines (strongly typed mixed precision): rel 3e-2, abs 3e-2
Only numpy is needed. Exit status 0 when every compared engine passes, 1 otherwise, 2 on
a usage error.
"""

import argparse
import glob
import json
import os
import subprocess
import sys

try:
    import numpy as np
except ImportError:  # the device machines may lack numpy: say so, do not crash
    print("compare.py: SKIPPED: numpy is not installed for", sys.executable)
    sys.exit(0)

TOL = {"fp32": (1e-3, 1e-3), "fp16": (3e-2, 3e-2)}


def medlam_patch(batch):
    """patch[b,0,i,j,k] of medlam_tiny_golden.json."""
    i, j, k = np.meshgrid(np.arange(64.0), np.arange(64.0), np.arange(64.0), indexing="ij")
    out = np.empty((batch, 1, 64, 64, 64), np.float32)
    for b in range(batch):
        v = 0.5 + 0.3 * np.sin(0.1 * i + 0.2 * j + 0.3 * k + 0.5 * b) \
            + 0.2 * np.cos(0.013 * i * j - 0.021 * k * (b + 1))
        out[b, 0] = v.astype(np.float32)
    return out


def sam_images():
    """images[b,c,y,x] = sin(0.01*(x + 2y + 3c + b)), [2,3,1024,1024]."""
    b, c, y, x = np.meshgrid(np.arange(2.0), np.arange(3.0), np.arange(1024.0),
                             np.arange(1024.0), indexing="ij")
    return np.sin(0.01 * (x + 2 * y + 3 * c + b)).astype(np.float32)


def sam_embeddings():
    """emb[b,c,y,x] = sin(0.05*(x + 3y) + 0.1c + b), [2,256,64,64]."""
    b, c, y, x = np.meshgrid(np.arange(2.0), np.arange(256.0), np.arange(64.0),
                             np.arange(64.0), indexing="ij")
    return np.sin(0.05 * (x + 3 * y) + 0.1 * c + b).astype(np.float32)


def index(key):
    """Parses a golden slice key such as "[1,255,63,60:64]" into a numpy index."""
    parts = []
    for p in key.strip("[]").split(","):
        if ":" in p:
            lo, hi = p.split(":")
            parts.append(slice(int(lo), int(hi)))
        else:
            parts.append(int(p))
    return tuple(parts)


class Checker:
    def __init__(self, name, rel, abs_):
        self.name, self.rel, self.abs, self.failures, self.worst = name, rel, abs_, [], 0.0

    def near(self, what, got, want, scale):
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        if got.shape != want.shape:
            self.failures.append(f"{what}: shape {got.shape}, want {want.shape}")
            return
        err = np.abs(got - want)
        lim = self.abs + self.rel * np.asarray(scale, np.float64)
        self.worst = max(self.worst, float(np.max(err / lim)) if err.size else 0.0)
        if np.any(err > lim):
            i = int(np.argmax(err - lim))
            self.failures.append(f"{what}: {got.ravel()[i]:.7g} vs {want.ravel()[i]:.7g} "
                                 f"(limit {np.ravel(lim)[min(i, np.size(lim) - 1)]:.3g})")

    def summaries(self, name, arr, g, per_batch):
        """Checks sum and sq_sum (per batch item when per_batch) and listed values."""
        a = arr.astype(np.float64)
        if per_batch:
            axes = tuple(range(1, a.ndim))
            s, q = a.sum(axis=axes), (a * a).sum(axis=axes)
        else:
            s, q = a.sum(), (a * a).sum()
        self.near(f"{name} shape", list(arr.shape), g["shape"], 0)
        if "sum" in g:
            self.near(f"{name} sum", s, g["sum"], g["abs_sum"])
        if "sq_sum" in g:
            self.near(f"{name} sq_sum", q, g["sq_sum"], g["sq_sum"])
        if "values" in g:
            self.near(f"{name} values", arr, g["values"], np.abs(g["values"]))


def run_trtexec(trtexec, plan, inputs, work):
    """Runs plan once on inputs ({name: array}) and returns {name: array} of its outputs."""
    loads, shapes = [], []
    for name, arr in inputs.items():
        path = os.path.join(work, f"{name}.bin")
        arr.tofile(path)
        loads.append(f"{name}:{path}")
        shapes.append(f"{name}:" + "x".join(str(d) for d in arr.shape))
    out = os.path.join(work, "outputs.json")
    cmd = [trtexec, f"--loadEngine={plan}", "--loadInputs=" + ",".join(loads),
           "--shapes=" + ",".join(shapes), f"--exportOutput={out}", "--iterations=1",
           "--warmUp=0", "--duration=0", "--avgRuns=1"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"trtexec failed ({r.returncode}):\n{r.stdout[-3000:]}")
    res = {}
    for t in json.load(open(out)):
        dims = [int(d) for d in str(t["dimensions"]).split("x")]
        res[t["name"]] = np.asarray(t["values"], np.float32).reshape(dims)
    return res


def compare(model, plan, golden_dir, trtexec, work, precision):
    rel, abs_ = TOL[precision]
    c = Checker(model, rel, abs_)
    if model in ("medlam", "medlam-encoder"):
        g = json.load(open(os.path.join(golden_dir, "medlam_tiny_golden.json")))
        outs = run_trtexec(trtexec, plan, {"patch": medlam_patch(g["batch"])}, work)
        for name, want in g["outputs"].items():
            if name not in outs:
                if model == "medlam":
                    c.failures.append(f"output {name} missing")
                continue
            c.summaries(name, outs[name], want, per_batch=True)
    else:
        g = json.load(open(os.path.join(golden_dir, "sam_tiny_golden.json")))
        if model == "sam-encoder":
            outs = run_trtexec(trtexec, plan, {"images": sam_images()}, work)
            want = g["encoder"]
        else:
            boxes = np.asarray(g["inputs"]["boxes"], np.float32)
            outs = run_trtexec(trtexec, plan, {"image_embeddings": sam_embeddings(),
                                               "boxes": boxes}, work)
            want = g["decoder"]
        for name, w in want.items():
            if name == "slices":
                continue
            if name not in outs:
                c.failures.append(f"output {name} missing")
            elif isinstance(w, dict):
                c.summaries(name, outs[name], w, per_batch=False)
            else:
                c.near(name, outs[name], w, np.abs(w))
        main = "image_embeddings" if model == "sam-encoder" else "masks"
        for key, w in want.get("slices", {}).items():
            if main in outs:
                c.near(f"{main}{key}", outs[main][index(key)], w, np.abs(w))
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engines", required=True)
    ap.add_argument("--golden", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                     "testdata", "models"))
    ap.add_argument("--trtexec", default=os.environ.get("TRTEXEC", "trtexec"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--precision", choices=sorted(TOL), default="fp32")
    a = ap.parse_args()
    work = a.work or a.engines
    os.makedirs(work, exist_ok=True)
    plans = sorted(glob.glob(os.path.join(a.engines, "*.plan")))
    if not plans:
        print(f"compare.py: no *.plan in {a.engines}", file=sys.stderr)
        return 2
    rel, abs_ = TOL[a.precision]
    print(f"compare.py: {a.precision} engines against the golden outputs, "
          f"tolerance |d| <= {abs_:g} + {rel:g} * scale")
    failed = 0
    for plan in plans:
        model = json.load(open(plan + ".json"))["model"]
        if model not in ("medlam", "medlam-encoder", "sam-encoder", "sam-decoder"):
            continue
        try:
            c = compare(model, plan, a.golden, a.trtexec, work, a.precision)
        except (RuntimeError, OSError, KeyError, ValueError) as e:
            print(f"  {os.path.basename(plan)} ({model}): ERROR: {e}")
            failed += 1
            continue
        verdict = "ok" if not c.failures else "FAIL"
        print(f"  {os.path.basename(plan)} ({model}): {verdict}, worst error "
              f"{c.worst:.3f} of the tolerance")
        for f in c.failures[:8]:
            print(f"    {f}")
        failed += bool(c.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
