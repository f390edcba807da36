#!/usr/bin/python3
"""Side-by-side checks of medlsam-fast's SAM segmentation against the reference formulation.

  resize  Writes the reference's preprocessed slices (window [-500, 1000], min-max over the
          volume, raw 0 -> 0, int truncation, skimage.transform.resize order 3 with
          anti_aliasing and preserve_range, uint8) of the abdomen CT's slices covered by an
          organ's box, for engine/segment's TestResizeEffect, then runs that test, which
          prints the Dice between the masks from the two preprocessings (same tiny model).
  bench   Encoder time per slice and decoder time per box: the Go benchmark
          (BenchmarkSAMFull, models/full/sam-*.onnx through ONNX Runtime) next to
          build/bench/sam_reference.py (torch, 2 threads, one encoder run per slice per
          organ, batch 1) on the same weights, and the ratios. Both sides run one after the
          other on the same machine; per slice and per box, so the saving from encoding a
          slice once for all organs comes on top (it is a count: see the segment report).

Always run with Debian's interpreter: /usr/bin/python3 build/bench/segment_compare.py resize
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CT = os.path.join(ROOT, "..", "shared", "data", "ct", "abdomen_ct.nii.gz")
LABELS = os.path.join(ROOT, "..", "shared", "data", "ct", "abdomen_ct_labels.nii.gz")


def reference_slices(organ: int, out: str) -> dict:
    import nibabel as nib
    import numpy as np
    from skimage import transform

    img = np.asarray(nib.load(CT).dataobj).astype(np.float64)
    lab = np.rint(np.asarray(nib.load(LABELS).dataobj)).astype(np.int32)
    # The reference's array is SimpleITK's (z, y, x) = (k, j, i): slice k is data[:, :, k].T.
    pre = np.clip(img, -500, 1000)
    pre = (pre - pre.min()) / (pre.max() - pre.min()) * 255.0
    pre[img == 0] = 0
    pre = np.int32(pre)
    ii, jj, kk = np.nonzero(lab == organ)
    box = [int(ii.min()), int(jj.min()), int(kk.min()), int(ii.max()), int(jj.max()),
           int(kk.max())]
    ks = list(range(box[2], box[5] + 1))
    with open(out, "wb") as f:
        for k in ks:
            s = pre[:, :, k].T
            r = transform.resize(s, (1024, 1024), order=3, preserve_range=True,
                                 mode="constant", anti_aliasing=True)
            f.write(np.uint8(r).tobytes())
    meta = {"organ": organ, "box": {"min": box[:3], "max": box[3:]}, "slices": ks,
            "file": out}
    with open(out + ".json", "w") as f:
        json.dump(meta, f)
    return meta


def resize(args) -> int:
    tmp = tempfile.mkdtemp(prefix="segment_compare_")
    raw = os.path.join(tmp, "reference_slices.u8")
    meta = reference_slices(args.organ, raw)
    print(f"reference slices: {len(meta['slices'])} of organ {args.organ}, box {meta['box']}")
    env = dict(os.environ, MEDLSAM_RESIZE_REF=raw)
    cmd = ["go", "test", "./engine/segment/", "-run", "TestResizeEffect", "-v", "-count=1"]
    print("$", " ".join(cmd), f"(MEDLSAM_RESIZE_REF={raw})")
    return subprocess.call(cmd, cwd=ROOT, env=env)


def bench(args) -> int:
    enc = os.path.join(ROOT, "models", "full", "sam-encoder.onnx")
    ref = os.path.join(ROOT, "build", "bench", "sam_reference.py")
    missing = [p for p in (enc, ref) if not os.path.exists(p)]
    if missing:
        print("bench: not run, missing: " + ", ".join(os.path.relpath(p, ROOT)
                                                      for p in missing))
        print("(make models-sam-full exports the full-size random ViT-B)")
        return 0
    cmd = ["go", "test", "./engine/segment/", "-run", "^$", "-bench", "BenchmarkSAMFull",
           "-benchtime", f"{args.n}x", "-count", "1"]
    print("$", " ".join(cmd))
    go = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    print(go.stdout[-2000:], go.stderr[-2000:])
    # "BenchmarkSAMFull/decoder-public-2   3   ...   12.3 ms/box"
    ours = {m.group(1) + " " + m.group(3): float(m.group(2)) for m in re.finditer(
        r"BenchmarkSAMFull/([\w-]+?)(?:-\d+)?\s.*?([\d.]+) (ms/slice|ms/box)", go.stdout)}
    cmd = ["/usr/bin/python3", ref, "--threads", "2", "--height", "512", "--width", "512",
           "--encoder-reps", str(args.n), "--decoder-reps", str(max(5, args.n))]
    print("$", " ".join(cmd))
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    try:
        theirs = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print("bench: sam_reference.py gave no JSON line:", r.stdout[-500:], r.stderr[-500:])
        return 1
    print(json.dumps(theirs))
    rows = (("encoder ms/slice", "encoder_s_per_slice"),
            ("decoder ms/box", "decoder_s_per_box"),
            ("decoder-public ms/box", "decoder_s_per_box"))
    for key, tkey in rows:
        if key in ours and tkey in theirs:
            t = theirs[tkey] * 1000
            print(f"{key}: ours {ours[key]:.1f}, reference (torch) {t:.1f}, "
                  f"reference/ours {t / ours[key]:.2f}x")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("resize")
    r.add_argument("--organ", type=int, default=1, help="label whose box's slices to use")
    b = sub.add_parser("bench")
    b.add_argument("-n", type=int, default=2, help="benchmark iterations")
    args = p.parse_args()
    return resize(args) if args.cmd == "resize" else bench(args)


if __name__ == "__main__":
    sys.exit(main())
