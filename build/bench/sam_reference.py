#!/usr/bin/python3
"""Times the reference formulation of MedLSAM's segmentation stage (SAM ViT-B) in torch.

The weights are the full-size random ViT-B of `make models-sam-full` (models/sam.py, random
seed 1), built again here from the same seed, so the Go side's benchmark on
models/full/sam-*.onnx runs the same weights. fp32 on the CPU with --threads threads.

Stages, as the reference code runs them (shared/notes/method.md section 5):
  encoder  per slice and per organ: normalise the 1024 x 1024 x 3 slice with SAM's pixel mean
           and std, run the image encoder with batch 1 -> [1,256,64,64].
  decoder  per box: prompt encoder (box only) and mask decoder with a single mask output,
           logits upsampled bilinearly to 1024 x 1024 then to the slice's H x W (align_corners
           false), thresholded at 0.
The slice is seeded noise in [0, 255]: the timings do not depend on its content. One encoder
repetition by default (about 28 s on these machines). Prints one JSON object: seconds, the
median over the repetitions.

  /usr/bin/python3 build/bench/sam_reference.py [--encoder-reps 1] [--decoder-reps 5] \
      [--threads 2] [--height 512] [--width 512]
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "models"))
import sam as S  # noqa: E402

SEED = 1  # the seed of `make models-sam-full`


def encode(model, slice_u8):
    """The reference's per-slice encoder call: HWC uint8 slice -> [1,256,64,64]."""
    x = slice_u8.permute(2, 0, 1).float()[None]
    x = (x - model.pixel_mean) / model.pixel_std
    return model.image_encoder(x)


def decode(model, emb, box, height, width):
    """The reference's per-box decoder call -> boolean mask [1,1,H,W] and IoU [1,1]."""
    low, iou = model.decode_boxes(emb, box)
    s = model.cfg.img_size
    up = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
    up = F.interpolate(up, size=(height, width), mode="bilinear", align_corners=False)
    return up > 0, iou


def timed(fn, reps):
    times = []
    out = None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoder-reps", type=int, default=1)
    p.add_argument("--decoder-reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--height", type=int, default=512, help="slice height before resizing")
    p.add_argument("--width", type=int, default=512, help="slice width before resizing")
    args = p.parse_args()
    if min(args.encoder_reps, args.decoder_reps, args.threads, args.height, args.width) < 1:
        p.error("repetitions, threads and sizes must be positive")

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = S.build(S.VIT_B, SEED)
    build_s = time.perf_counter() - t0

    gen = torch.Generator().manual_seed(0)
    slice_u8 = torch.randint(0, 256, (1024, 1024, 3), generator=gen, dtype=torch.uint8)
    box = torch.tensor([[300.0, 280.0, 620.0, 710.0]])
    with torch.no_grad():
        enc_s, emb = timed(lambda: encode(model, slice_u8), args.encoder_reps)
        decode(model, emb, box, args.height, args.width)  # warm-up
        dec_s, _ = timed(lambda: decode(model, emb, box, args.height, args.width),
                         args.decoder_reps)

    print(json.dumps({
        "model": "sam vit_b, random seed %d, fp32" % SEED,
        "threads": args.threads,
        "build_s": round(build_s, 3),
        "encoder_s_per_slice": round(enc_s, 4),
        "encoder_reps": args.encoder_reps,
        "decoder_s_per_box": round(dec_s, 5),
        "decoder_reps": args.decoder_reps,
        "slice_hw": [args.height, args.width],
    }))


if __name__ == "__main__":
    main()
