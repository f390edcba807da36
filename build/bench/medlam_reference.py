#!/usr/bin/python3
"""Times the reference formulation of MedLAM's two query stages in torch, for comparison.

The weights are the full-size random network of `make models-medlam-full` (models/medlam.py,
random seed 0), built again here from the same seed, so the Go side's benchmark on
models/full/medlam.onnx runs the same weights. fp32 on the CPU with --threads threads.

Stages, as the reference code runs them (shared/notes/method.md section 4):
  coarse   10 random 64^3 crops within +-10 voxels of the padded volume's centre, one batch
           through the whole network (decoder included, as the reference does), mean position.
  refine   per point: crop the 64^3 patch, run the whole network, L2-normalise each feature
           map over channels, correlate with the point's kernel (2^3, 4^3, 8^3 voxels) by a
           grouped conv3d with padding k/2, divide by k^3, resize the 17^3, 33^3, 65^3 maps
           to 64^3 (trilinear, align_corners=False), sum, argmax (first maximum, C order).
The volume is seeded noise in [0.1, 1) (never air, so no crop is redrawn): the timings do not
depend on its content. Prints one JSON object: seconds per stage, the median over --reps.

  /usr/bin/python3 build/bench/medlam_reference.py [--reps 1] [--points 1] [--threads 2]
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "models"))
import medlam  # noqa: E402

PATCH = medlam.PATCH
HALF = PATCH // 2
KERNEL_EDGES = {"feature0": 2, "feature1": 4, "feature2": 8}


def crop(volume, centre):
    z, y, x = centre
    return volume[z - HALF:z + HALF, y - HALF:y + HALF, x - HALF:x + HALF]


def coarse(net, volume, rng, crops):
    """The reference's relative-distance step: returns the mean position and crop centre."""
    shape = np.array(volume.shape)
    centres = [shape // 2 + rng.integers(-10, 11, size=3) for _ in range(crops)]
    batch = torch.from_numpy(np.stack([crop(volume, c) for c in centres])[:, None])
    with torch.no_grad():
        position = net(batch)[0]
    return position.mean(0).numpy(), np.mean(centres, axis=0)


def kernels(net, volume, point, count):
    """Similarity kernels of count template points: L2-normalised centre crops."""
    with torch.no_grad():
        patch = torch.from_numpy(crop(volume, point)[None, None])
        feats = net(patch.expand(count, -1, -1, -1, -1).contiguous())[1:]
    out = {}
    for name, f in zip(KERNEL_EDGES, feats):
        r, c = KERNEL_EDGES[name] // 2, f.shape[2] // 2
        out[name] = F.normalize(f[:, :, c - r:c + r, c - r:c + r, c - r:c + r], dim=1)
    return out


def refine(net, volume, points, kern):
    """The reference's multi-scale similarity search for points (one grouped conv per scale).

    Returns (offsets [P,3], network seconds, similarity seconds).
    """
    t0 = time.perf_counter()
    batch = torch.from_numpy(np.stack([crop(volume, p) for p in points])[:, None])
    with torch.no_grad():
        feats = net(batch)[1:]
    t1 = time.perf_counter()
    n = len(points)
    with torch.no_grad():
        total = torch.ones(n, PATCH, PATCH, PATCH)
        for name, f in zip(KERNEL_EDGES, feats):
            q = F.normalize(f, dim=1)
            q = q.reshape(1, n * q.shape[1], *q.shape[2:])
            w = kern[name]
            k = w.shape[-1]
            sim = F.conv3d(q, w, padding=k // 2, groups=n) / k ** 3
            total += F.interpolate(sim, size=(PATCH, PATCH, PATCH), mode="trilinear",
                                   align_corners=False)[0]
        flat = total.reshape(n, -1).argmax(dim=1).numpy()
    offsets = np.stack(np.unravel_index(flat, (PATCH, PATCH, PATCH)), axis=1) - HALF + 1
    return offsets, t1 - t0, time.perf_counter() - t1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="weight seed (models-medlam-full: 0)")
    p.add_argument("--reps", type=int, default=1, help="repetitions of each stage")
    p.add_argument("--points", type=int, default=1, help="refinement points per call")
    p.add_argument("--crops", type=int, default=10, help="coarse-step crops")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stage", choices=["all", "coarse", "refine"], default="all",
                   help="time only one stage (bounds the run time)")
    p.add_argument("--shape", type=int, nargs=3, default=[264, 231, 231],
                   help="padded volume shape z y x (default: 200x167x167 at 3 mm, padded)")
    args = p.parse_args()
    if args.reps < 1 or args.points < 1 or args.crops < 1:
        p.error("--reps, --points and --crops must be positive")
    if min(args.shape) < PATCH + 22:
        p.error("--shape must be at least %d on every axis" % (PATCH + 22))
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    volume = rng.uniform(0.1, 1.0, size=args.shape).astype(np.float32)
    net = medlam.random_network(args.seed, medlam.FULL_CONFIG)
    centre = np.array(args.shape) // 2
    high = np.array(args.shape) - HALF - 1
    points = [np.clip(centre + rng.integers(-40, 41, size=3), HALF, high)
              for _ in range(args.points)]
    kern = kernels(net, volume, centre, args.points)

    times = {"coarse": [], "refine_network": [], "refine_similarity": []}
    for _ in range(args.reps):
        if args.stage in ("all", "coarse"):
            t0 = time.perf_counter()
            coarse(net, volume, rng, args.crops)
            times["coarse"].append(time.perf_counter() - t0)
        if args.stage in ("all", "refine"):
            _, tn, ts = refine(net, volume, points, kern)
            times["refine_network"].append(tn / args.points)
            times["refine_similarity"].append(ts / args.points)
    def median(name):
        return statistics.median(times[name]) if times[name] else None

    out = {
        "weights": "models/medlam.py full size, random seed %d" % args.seed,
        "threads": args.threads, "reps": args.reps, "crops": args.crops,
        "points": args.points, "volume_shape": args.shape,
        "coarse_s": median("coarse"),
        "refine_network_s_per_point": median("refine_network"),
        "refine_similarity_s_per_point": median("refine_similarity"),
    }
    if times["refine_network"]:
        out["refine_s_per_point"] = out["refine_network_s_per_point"] + \
            out["refine_similarity_s_per_point"]
    out["all_s"] = times
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
