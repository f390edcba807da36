"""Prepares a NIfTI volume for MedLAM the way the reference implementation does, for
TestReferencePreprocessing: reorientation to LAS with nibabel, array order (z, y, x),
resampling to 3 mm with zoom factors spacing/3 (images: scipy.ndimage.zoom, cubic spline;
label maps: one-hot, torch trilinear interpolation with those scale factors, argmax), and
for images whose minimum is below -10 the piecewise-linear HU map
(-1000, -200, 200, 1500) -> (0, 0.2, 0.8, 1).

usage: reference_preprocess.py image|labels IN.nii.gz OUT_PREFIX
writes OUT_PREFIX.f32 (float32, C order), OUT_PREFIX.json ({"shape": [z, y, x]}) and, for
label maps, OUT_PREFIX.tie (one byte per voxel: 1 where the two best labels' interpolated
weights are within 1e-5, so that torch's argmax there is float rounding).
"""
import json
import sys

import nibabel
import numpy as np
import torch
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
from scipy import ndimage


def load_las(path):
    img = nibabel.load(path)
    have, want = io_orientation(img.affine), axcodes2ornt("LAS")
    if not (have == want).all():
        img = img.as_reoriented(ornt_transform(have, want))
    data = img.get_fdata().transpose(2, 1, 0)
    spacing = [float(s) for s in img.header.get_zooms()][::-1]
    return data, spacing


def hu_map(x):
    xs, ys = [-1000.0, -200.0, 200.0, 1500.0], [0.0, 0.2, 0.8, 1.0]
    out = np.zeros(x.shape, np.float32)
    for k in range(3):
        inside = (x >= xs[k]) & (x < xs[k + 1])
        out[inside] = ys[k] + (x[inside] - xs[k]) * (ys[k + 1] - ys[k]) / (xs[k + 1] - xs[k])
    out[x >= xs[-1]] = ys[-1]
    return out


def main(kind, src, prefix):
    data, spacing = load_las(src)
    factors = np.array(spacing, np.float32) / np.array([3, 3, 3])
    tie = None
    if kind == "image":
        if spacing != [3, 3, 3]:
            data = ndimage.zoom(data, factors)
        out = hu_map(data) if data.min() < -10 else data.astype(np.float32)
    else:
        lab = torch.from_numpy(np.int64(data))
        onehot = torch.nn.functional.one_hot(lab, -1).float().permute(3, 0, 1, 2)[None]
        if spacing != [3, 3, 3]:
            onehot = torch.nn.functional.interpolate(onehot, scale_factor=list(factors),
                                                     mode="trilinear")
        out = torch.argmax(onehot, dim=1)[0].numpy().astype(np.float32)
        best = torch.topk(onehot[0], 2, dim=0).values
        tie = ((best[0] - best[1]) < 1e-5).numpy().astype(np.uint8)
    np.ascontiguousarray(out, np.float32).tofile(prefix + ".f32")
    if tie is not None:
        np.ascontiguousarray(tie).tofile(prefix + ".tie")
    with open(prefix + ".json", "w") as f:
        json.dump({"shape": list(out.shape)}, f)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("image", "labels"):
        sys.exit(__doc__)
    torch.set_num_threads(2)
    main(*sys.argv[1:])
