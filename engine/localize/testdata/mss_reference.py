#!/usr/bin/python3
"""MedLAM's multi-scale similarity search in torch, on features and kernels dumped by Go.

Used by parity_test.go (TestSimilarityParityTorch): the Go test writes, into one directory,
meta.json and little-endian float32 files, and this script recomputes, the way the reference
code does, what the Go refinement computed on the same numbers:

  kernels   for each point and scale, the centre crop (size/2 - k/2 .. size/2 + k/2 - 1) of
            the template patch's feature map, L2-normalised over channels (F.normalize, dim 1);
            compared with the kernels Go built (max abs difference).
  search    the query feature maps L2-normalised over channels, a grouped conv3d with the
            kernels (padding k/2, one group per point) divided by k^3, each result resized to
            64^3 (trilinear, align_corners=False), summed over the scales, first maximum in C
            order; offset = index - 32 + 1.

meta.json: {"points": P, "patch": 64, "scales": [{"channels", "size", "kernel"}...],
"go_index": [[z, y, x] per point], "truth": [[z, y, x] per point] (the true point's index
in the fused map, or null)}. Files: query<s>.f32 [P,C,S^3], template<s>.f32 [P,C,S^3],
kernel<s>.f32 [P,C,k^3] (Go's kernels).

Prints one JSON object: per point the reference's index, its score, the score at Go's
index and at the true index, and the kernels' largest difference per scale.

  /usr/bin/python3 mss_reference.py DIR
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def load(d, name, shape):
    a = np.fromfile(os.path.join(d, name), dtype="<f4")
    if a.size != int(np.prod(shape)):
        raise SystemExit("mss_reference: %s holds %d values, want %s" % (name, a.size, shape))
    return torch.from_numpy(a.reshape(shape))


def main(d):
    torch.set_num_threads(2)
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    n, patch = meta["points"], meta["patch"]
    total = torch.zeros(n, patch, patch, patch, dtype=torch.float32)
    kernel_diff = []
    for s, sc in enumerate(meta["scales"]):
        c, e, k = sc["channels"], sc["size"], sc["kernel"]
        query = load(d, "query%d.f32" % s, (n, c, e, e, e))
        tmpl = load(d, "template%d.f32" % s, (n, c, e, e, e))
        go_kernel = load(d, "kernel%d.f32" % s, (n, c, k, k, k))
        lo = e // 2 - k // 2
        ref_kernel = F.normalize(tmpl[:, :, lo:lo + k, lo:lo + k, lo:lo + k], dim=1)
        kernel_diff.append(float((ref_kernel - go_kernel).abs().max()))
        q = F.normalize(query, dim=1).reshape(1, n * c, e, e, e)
        with torch.no_grad():
            sim = F.conv3d(q, ref_kernel, padding=k // 2, groups=n) / k ** 3
            total += F.interpolate(sim, size=(patch, patch, patch), mode="trilinear",
                                   align_corners=False)[0]
    flat = total.reshape(n, -1)
    best = flat.argmax(dim=1)
    out = {"kernel_max_abs_diff": kernel_diff, "points": []}
    for p in range(n):
        idx = [int(v) for v in np.unravel_index(int(best[p]), (patch,) * 3)]
        gi = meta["go_index"][p]
        rec = {"index": idx, "offset": [v - patch // 2 + 1 for v in idx],
               "score": float(flat[p, best[p]]),
               "score_at_go": float(total[p, gi[0], gi[1], gi[2]])}
        tr = meta["truth"][p]
        if tr is not None and all(0 <= v < patch for v in tr):
            rec["score_at_truth"] = float(total[p, tr[0], tr[1], tr[2]])
        out["points"].append(rec)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1]))
