#!/usr/bin/python3
"""Runs the MedLAM network of models/medlam.py in float64 torch on one patch.

Used by engine/native's TestPaddedPatchTorch as the precise reference: the weights come from
the ONNX file's initializers (the export of models/medlam.py, so the names match), the
patch and the result are raw little-endian float32 files.

  torch_features.py MODEL.onnx BASE_CHNS PATCH.f32 OUT.f32   # OUT: feature0, 1, 2 in turn
"""

import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "models"))
import medlam  # noqa: E402


def main():
    model, base, patch_path, out_path = sys.argv[1:5]
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).astype(np.float64))
               for t in onnx.load(model).graph.initializer}
    net = medlam.MedLAM(base_chns=int(base), n_classes=3).double()
    missing, unexpected = net.load_state_dict(weights, strict=False)
    if unexpected or set(missing) - {"classification.0.weight", "classification.0.bias"}:
        raise SystemExit("weights do not fit: missing %s, unexpected %s" % (missing, unexpected))
    net.eval()
    patch = np.fromfile(patch_path, dtype="<f4").astype(np.float64).reshape(1, 1, 64, 64, 64)
    with torch.no_grad():
        _, f0, f1, f2 = net(torch.from_numpy(patch))
    np.concatenate([f.numpy().ravel() for f in (f0, f1, f2)]).astype("<f4").tofile(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
