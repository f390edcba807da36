"""Writes zoom_reference.json: the reference implementation's resampling on small inputs.

Images: scipy.ndimage.zoom with its defaults (cubic spline, corner-aligned grid), as the
reference's load_and_pre_ct calls it. Label maps: one-hot, torch trilinear interpolation
with scale factors, argmax, as its resize_Multi_label_to_given_shape. The Go tests of
kernels/zoom.go compare against this file; `make testdata-zoom` rewrites it (Debian's
python3-scipy and python3-torch, run with /usr/bin/python3).

Shapes and factors are stored in the Go kernels' order (i fastest): a numpy array of shape
(nz, ny, nx) in C order is the Go volume of shape [nx, ny, nz].
"""
import json
import os

import numpy as np
import torch
from scipy import ndimage


def spline_case(rng, shape_zyx, factors_zyx, scale):
    x = (rng.normal(size=shape_zyx) * scale).astype(np.float32).astype(np.float64)
    y = ndimage.zoom(x, factors_zyx)
    return {
        "shape": list(shape_zyx[::-1]),
        "factors": list(factors_zyx[::-1]),
        "src": x.ravel().tolist(),
        "out_shape": list(y.shape[::-1]),
        "want": y.ravel().tolist(),
    }


def labels_case(rng, shape_zyx, factors_zyx, n_labels, exact_ties=False):
    # Blocky labels (random values on a coarse grid, repeated) so that most voxels have one
    # clear winner and label borders cross the interpolation cells.
    coarse = rng.integers(0, n_labels, size=[(s + 2) // 3 for s in shape_zyx])
    lab = coarse.repeat(3, 0).repeat(3, 1).repeat(3, 2)
    lab = lab[: shape_zyx[0], : shape_zyx[1], : shape_zyx[2]]
    lab[rng.random(size=lab.shape) < 0.1] = rng.integers(0, n_labels)
    v = torch.from_numpy(lab.copy()).long()
    oh = torch.nn.functional.one_hot(v, -1).float().permute(3, 0, 1, 2).unsqueeze(0)
    out = torch.nn.functional.interpolate(oh, scale_factor=list(factors_zyx), mode="trilinear")
    arg = torch.argmax(out, dim=1).squeeze(0)
    top = torch.topk(out[0], 2, dim=0).values
    near_tie = (top[0] - top[1]) < 1e-5
    return {
        "shape": list(shape_zyx[::-1]),
        "factors": list(factors_zyx[::-1]),
        "src": lab.ravel().tolist(),
        "out_shape": list(arg.shape[::-1]),
        "want": arg.ravel().tolist(),
        "near_tie": near_tie.ravel().int().tolist(),
        # Every weight is a sum of exact binary fractions: no tie is left to float rounding.
        "exact_ties": exact_ties,
    }


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(2023)
    spline = [
        spline_case(rng, (5, 7, 9), (1.6, 0.5, 0.37), 1000.0),
        # A CT-length line at 0.7 mm to 3 mm, an axis left alone and one squeezed to a voxel.
        spline_case(rng, (2, 3, 512), (0.5, 1.0, 0.7 / 3), 1.0),
        spline_case(rng, (6, 4, 1), (2.2, 0.6, 1.0), 100.0),
        # 122 / 20 rounds past 122 at the last output along x: scipy's "constant" mode makes
        # that face 0.
        spline_case(rng, (3, 5, 123), (1.0, 1.0, 0.5 / 3), 10.0),
    ]
    labels = [
        labels_case(rng, (8, 10, 12), (1.5, 0.4, 0.27), 5),
        # 1.5 mm to 3 mm: weights of exactly one half, so exact ties go to the smaller label.
        labels_case(rng, (6, 16, 16), (0.5, 0.5, 0.5), 4, exact_ties=True),
        labels_case(rng, (9, 14, 11), (0.8 / 3 * 2, 0.7, 1.0), 3),
    ]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoom_reference.json")
    with open(path, "w") as f:
        json.dump({"spline": spline, "labels": labels}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
