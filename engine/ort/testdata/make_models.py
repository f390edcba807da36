#!/usr/bin/python3
"""Regenerate the test models of engine/ort.

Run from anywhere with Debian's interpreter (it has torch 1.13 and onnx 1.12):

    /usr/bin/python3 engine/ort/testdata/make_models.py

It writes, beside this script:

  affine_sum.onnx       two inputs, two outputs, dynamic batch B:
                          a [B,2,3], b [B,3] -> y = 2*a + 1      [B,2,3]
                                                z = sum(a, 1) + b [B,3]
  affine_sum.onnx.json  its manifest (engine/backend.Manifest, contract 1)
  upsample.onnx         output sizes known only at run time, as in the public SAM decoder:
                          x [1,1,2,2], size [2] -> u = nearest(x, size)  [-1,-1,-1,-1]
                                                   m = max of u per image [-1]  
                        (u's size is size's value; m has a dynamic batch that no input sets)
  upsample.onnx.json    its manifest

The function has no weights, so the Go tests compute the expected numbers themselves
from random inputs. The files are committed; rerunning the script rewrites the manifest
with the digest of whatever torch exported.
"""
import hashlib
import json
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17
CONTRACT = 1


class AffineSum(torch.nn.Module):
    def forward(self, a, b):
        return 2.0 * a + 1.0, a.sum(dim=1) + b


class Upsample(torch.nn.Module):
    def forward(self, x, size):
        hw = size.to(torch.int64)
        u = torch.nn.functional.interpolate(x, size=(hw[0], hw[1]), mode="nearest")
        return u, u.amax(dim=(1, 2, 3))


def export(module, args, in_specs, out_specs, name, model_kind, dynamic=None):
    path = os.path.join(HERE, name)
    names_in = [s[0] for s in in_specs]
    names_out = [s[0] for s in out_specs]
    if dynamic is None:
        dynamic = {n: {0: "batch"} for n in names_in + names_out}
    torch.onnx.export(module, args, path, opset_version=OPSET, input_names=names_in,
                      output_names=names_out, dynamic_axes=dynamic,
                      do_constant_folding=True)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()

    def specs(lst):
        return [{"name": n, "shape": shape, "type": "float32"} for n, shape in lst]

    manifest = {
        "contract": CONTRACT,
        "model": model_kind,
        "file": name,
        "sha256": digest,
        "inputs": specs(in_specs),
        "outputs": specs(out_specs),
        "source": "engine/ort/testdata/make_models.py (no weights)",
    }
    with open(path + ".json", "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"wrote {path} sha256 {digest[:12]}")


def main():
    torch.manual_seed(0)
    a = torch.randn(2, 2, 3)
    b = torch.randn(2, 3)
    export(AffineSum().eval(), (a, b),
           [("a", [-1, 2, 3]), ("b", [-1, 3])],
           [("y", [-1, 2, 3]), ("z", [-1, 3])],
           "affine_sum.onnx", "test-affine-sum")
    export(Upsample().eval(), (torch.randn(1, 1, 2, 2), torch.tensor([3.0, 5.0])),
           [("x", [1, 1, 2, 2]), ("size", [2])],
           [("u", [-1, -1, -1, -1]), ("m", [-1])],
           "upsample.onnx", "test-upsample",
           dynamic={"u": {0: "b", 1: "c", 2: "h", 3: "w"}, "m": {0: "b"}})


if __name__ == "__main__":
    main()
