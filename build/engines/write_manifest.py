#!/usr/bin/env python3
"""Write an engine's manifest (PLAN.json), the schema of trt/manifest.go.

The tensors, normalisation and source come from the ONNX export's own manifest; the plan's
digest, the GPU, its compute capability, the TensorRT version and the ONNX digest are what the
runtime checks before it loads the plan.

usage: write_manifest.py --onnx M.onnx --plan P.plan --gpu NAME --cc X.Y --trt A.B.C
                         --precision P --profile INPUT=MIN/OPT/MAX [...] --rebuild CMD
(a shape is written 1x3x1024x1024; one --profile per dynamic input)
"""
import argparse
import hashlib
import json
import os
import sys


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shape(text):
    return [int(d) for d in text.split("x")]


def main():
    p = argparse.ArgumentParser()
    for flag in ("--onnx", "--plan", "--gpu", "--cc", "--trt", "--precision", "--rebuild"):
        p.add_argument(flag, required=True)
    p.add_argument("--profile", action="append", default=[])
    a = p.parse_args()
    with open(a.onnx + ".json") as f:
        m = json.load(f)
    onnx_sum = sha256(a.onnx)
    if m.get("sha256") != onnx_sum:
        sys.exit(f"{a.onnx}: sha256 does not match its manifest; re-export it first")
    shapes = {}
    for spec in a.profile:
        name, _, rng = spec.partition("=")
        lo, opt, hi = (shape(s) for s in rng.split("/"))
        shapes[name] = {"min": lo, "opt": opt, "max": hi}
    m.update({
        "file": os.path.basename(a.plan),
        "sha256": sha256(a.plan),
        "gpu_name": a.gpu,
        "compute_capability": a.cc,
        "tensorrt_version": a.trt,
        "onnx_file": os.path.basename(a.onnx),
        "onnx_sha256": onnx_sum,
        "precision": a.precision,
        "profiles": [{"shapes": shapes}],
        "rebuild": a.rebuild,
    })
    with open(a.plan + ".json", "w") as f:
        json.dump(m, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
