#!/usr/bin/python3
"""MedLAM localisation network: PyTorch definition, checkpoint loader and ONNX exporter.

The module reproduces the parameter names and shapes of the official MedLAM checkpoint
(medlam.pth, a DataParallel state_dict, keys prefixed "module.") so that checkpoint loads
unchanged with strict=True. The forward pass is the inference path of the method
(shared/notes/method.md section 2): every conv block is Conv3d k3 s1 p1 with bias,
InstanceNorm3d without affine parameters or running statistics, then ReLU; max-pool 2 down,
trilinear x2 up with align_corners=False; a linear regression head on the flattened bottleneck.

Export contract (models/README.md):
  medlam.onnx          patch [B,1,64,64,64] -> position [B,3], feature0 [B,C,16^3],
                       feature1 [B,C,32^3], feature2 [B,C,64^3]   (C = 4 * base_chns)
  medlam-encoder.onnx  patch -> position (encoder and regression head only)
each with a manifest <file>.json beside it (engine/backend/manifest.go).

Usage:
  /usr/bin/python3 models/medlam.py export (--checkpoint medlam.pth | --random-seed N)
      [--tiny] [--name PREFIX] --out DIR [--golden FILE]
  /usr/bin/python3 models/medlam.py keys     # print the expected checkpoint keys as JSON
"""

import argparse
import collections
import hashlib
import io
import json
import math
import os
import re
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CONTRACT_VERSION = 1
OPSET = 17
PATCH = 64
SPACING_MM = [3, 3, 3]
NORMALISATION = "medlam-piecewise-hu"
CHECKPOINT_PREFIX = "module."
KEYS_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "medlam_keys.json")

# Full size is the published network (base width 24, 3 unused classification outputs).
FULL_CONFIG = {"base_chns": 24, "n_classes": 3}
# Tiny keeps the topology and the contract's spatial sizes with 1/8 of the widths: feature
# maps of 12 channels, about 0.24 M parameters, about 3.3 GMAC per patch.
TINY_CONFIG = {"base_chns": 3, "n_classes": 3}

# Feature scales of the contract: output name -> spatial edge for a 64^3 patch.
FEATURE_EDGES = collections.OrderedDict([("feature0", 16), ("feature1", 32), ("feature2", 64)])


def block_table(base_chns, n_classes, patch=PATCH):
    """Returns the network's layers as (name, kind, in, out) rows in checkpoint order.

    kind is "block" (Conv3d k3 + InstanceNorm + ReLU), "conv1" (the 1x1 classification conv)
    or "linear". The table is the single source of the widths: the module is built from it
    and state_dict_spec derives the checkpoint keys from it.
    """
    b = base_chns
    fc_in = (patch // 16) ** 3 * 16 * b
    return [
        ("conv0_1", "block", 1, 2 * b),
        ("conv0_2", "block", 2 * b, 2 * b),
        ("conv1_1", "block", 2 * b, 2 * b),
        ("conv1_2", "block", 2 * b, 2 * b),
        ("conv2_1", "block", 2 * b, 2 * b),
        ("conv2_2", "block", 2 * b, 4 * b),
        ("conv3_1", "block", 4 * b, 4 * b),
        ("conv3_2", "block", 4 * b, 8 * b),
        ("conv4_1", "block", 8 * b, 8 * b),
        ("conv4_2", "block", 8 * b, 16 * b),
        # Decoder inputs are the upsampled path concatenated with the encoder skip.
        ("conv5_1", "block", 16 * b + 8 * b, 8 * b),
        ("conv5_2", "block", 8 * b, 8 * b),
        ("conv6_1", "block", 8 * b + 4 * b, 4 * b),
        ("conv6_2", "block", 4 * b, 4 * b),
        ("conv7_1", "block", 4 * b + 2 * b, 4 * b),
        ("conv7_2", "block", 4 * b, 4 * b),
        ("conv8_1", "block", 4 * b + 2 * b, 4 * b),
        ("conv8_2", "block", 4 * b, 4 * b),
        ("classification", "conv1", 4 * b, n_classes),
        ("fc1", "linear", fc_in, 8 * b),
        ("fc2", "linear", 8 * b, 4 * b),
        ("fc3", "linear", 4 * b, 3),
    ]


def state_dict_spec(base_chns=24, n_classes=3, prefix=CHECKPOINT_PREFIX):
    """Returns an ordered {key: shape} of the checkpoint that a network of this size has.

    The names follow the official checkpoint: a conv block's Conv3d sits at
    <block>.model.conv1_1.Conv, the classification conv at classification.0.
    """
    spec = collections.OrderedDict()
    for name, kind, cin, cout in block_table(base_chns, n_classes):
        if kind == "block":
            stem = "%s%s.model.conv1_1.Conv" % (prefix, name)
            spec[stem + ".weight"] = [cout, cin, 3, 3, 3]
        elif kind == "conv1":
            stem = "%s%s.0" % (prefix, name)
            spec[stem + ".weight"] = [cout, cin, 1, 1, 1]
        else:
            stem = prefix + name
            spec[stem + ".weight"] = [cout, cin]
        spec[stem + ".bias"] = [cout]
    return spec


class _ConvHolder(nn.Module):
    """Holds a Conv3d under the attribute name "Conv", as the checkpoint's keys require."""

    def __init__(self, cin, cout):
        super().__init__()
        self.Conv = nn.Conv3d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True)

    def forward(self, x):
        return self.Conv(x)


class ConvBlock(nn.Module):
    """Conv3d 3x3x3 (stride 1, padding 1) -> InstanceNorm3d (no affine) -> ReLU."""

    def __init__(self, cin, cout):
        super().__init__()
        self.model = nn.Sequential(collections.OrderedDict([
            ("conv1_1", _ConvHolder(cin, cout)),
            ("norm1_1", nn.InstanceNorm3d(cout, affine=False, track_running_stats=False)),
            ("relu1_1", nn.ReLU()),
        ]))

    def forward(self, x):
        return self.model(x)


def _up(x):
    return F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)


class MedLAM(nn.Module):
    """The MedLAM U-Net with a position-regression head.

    forward(patch [B,1,64,64,64]) returns (position [B,3], feature0, feature1, feature2).
    Every sample of a batch is independent (InstanceNorm normalises per sample and channel).
    The classification conv exists only so that the checkpoint loads strictly; it is not
    evaluated. Dropout of the reference is inactive at inference and therefore omitted.
    """

    def __init__(self, base_chns=24, n_classes=3):
        super().__init__()
        self.base_chns = base_chns
        self.n_classes = n_classes
        for name, kind, cin, cout in block_table(base_chns, n_classes):
            if kind == "block":
                layer = ConvBlock(cin, cout)
            elif kind == "conv1":
                layer = nn.Sequential(nn.Conv3d(cin, cout, kernel_size=1))
            else:
                layer = nn.Linear(cin, cout)
            self.add_module(name, layer)

    def encode(self, x):
        """Returns the bottleneck [B,16b,4^3] and the skips at 64^3, 32^3, 16^3, 8^3."""
        s0 = self.conv0_2(self.conv0_1(x))
        s1 = self.conv1_2(self.conv1_1(F.max_pool3d(s0, 2)))
        s2 = self.conv2_2(self.conv2_1(F.max_pool3d(s1, 2)))
        s3 = self.conv3_2(self.conv3_1(F.max_pool3d(s2, 2)))
        bottom = self.conv4_2(self.conv4_1(F.max_pool3d(s3, 2)))
        return bottom, (s0, s1, s2, s3)

    def position(self, bottom):
        """The regression head: flatten, three linear maps without activation."""
        return self.fc3(self.fc2(self.fc1(torch.flatten(bottom, 1))))

    def decode(self, bottom, skips):
        """Returns feature0 (1/4 resolution), feature1 (1/2) and feature2 (full)."""
        s0, s1, s2, s3 = skips
        x = self.conv5_2(self.conv5_1(torch.cat((_up(bottom), s3), 1)))
        f0 = self.conv6_2(self.conv6_1(torch.cat((_up(x), s2), 1)))
        f1 = self.conv7_2(self.conv7_1(torch.cat((_up(f0), s1), 1)))
        f2 = self.conv8_2(self.conv8_1(torch.cat((_up(f1), s0), 1)))
        return f0, f1, f2

    def forward(self, patch):
        bottom, skips = self.encode(patch)
        f0, f1, f2 = self.decode(bottom, skips)
        return self.position(bottom), f0, f1, f2

    def config(self):
        """The architecture as recorded in a manifest's "config"."""
        b = self.base_chns
        return {
            "base_chns": b,
            "n_classes": self.n_classes,
            "encoder_channels": [2 * b, 2 * b, 4 * b, 8 * b, 16 * b],
            "feature_channels": 4 * b,
            "head": [(PATCH // 16) ** 3 * 16 * b, 8 * b, 4 * b, 3],
        }


class MedLAMEncoder(nn.Module):
    """Encoder and regression head of a MedLAM, sharing its weights: patch -> position."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, patch):
        bottom, _ = self.net.encode(patch)
        return self.net.position(bottom)


class CheckpointError(ValueError):
    """A checkpoint that does not fit the network; the message names the file and keys."""


def load_checkpoint(path, base_chns=24, n_classes=3):
    """Builds a MedLAM of the given size and loads the official checkpoint at path.

    Accepts a bare state_dict or a dict holding one under "state_dict"; strips the
    DataParallel "module." prefix; casts fp16 weights to fp32. Raises CheckpointError naming
    the missing, unexpected and mis-shaped keys rather than loading a partial network.

    TODO(#3): tested only on synthetic checkpoints built from the official key table
    (medlam_keys.json); the real medlam.pth is not on these machines: load it once.
    """
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many types for a bad file
        raise CheckpointError("medlam: %s: cannot read checkpoint: %s" % (path, e)) from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError("medlam: %s: not a state_dict (%s)" % (path, type(obj).__name__))
    state = collections.OrderedDict()
    for key, value in obj.items():
        name = key[len(CHECKPOINT_PREFIX):] if key.startswith(CHECKPOINT_PREFIX) else key
        if not torch.is_tensor(value):
            raise CheckpointError("medlam: %s: key %s is not a tensor" % (path, key))
        state[name] = value.float()
    net = MedLAM(base_chns, n_classes)
    want = net.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = ["%s %s (want %s)" % (k, list(state[k].shape), list(want[k].shape))
              for k in want if k in state and state[k].shape != want[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(
            "medlam: %s does not match MedLAM(base_chns=%d): missing keys %s; unexpected keys "
            "%s; wrong shapes %s" % (path, base_chns, missing, unexpected, shapes))
    net.load_state_dict(state, strict=True)
    return net.eval()


def random_network(seed, config):
    """Builds a network with PyTorch's default initialisation drawn from torch seed seed."""
    torch.manual_seed(seed)
    net = MedLAM(config["base_chns"], config["n_classes"])
    return net.eval()


def golden_patch(batch):
    """The deterministic test input of the golden file, float32 [batch,1,64,64,64].

    patch[b,0,i,j,k] = float32(0.5 + 0.3*sin(0.1*i + 0.2*j + 0.3*k + 0.5*b)
                                    + 0.2*cos(0.013*i*j - 0.021*k*(b+1)))
    evaluated in float64 (i, j, k: indices along axes 2, 3, 4), then rounded to float32.
    """
    i, j, k = np.meshgrid(np.arange(PATCH, dtype=np.float64), np.arange(PATCH, dtype=np.float64),
                          np.arange(PATCH, dtype=np.float64), indexing="ij")
    out = np.empty((batch, 1, PATCH, PATCH, PATCH), dtype=np.float32)
    for b in range(batch):
        v = 0.5 + 0.3 * np.sin(0.1 * i + 0.2 * j + 0.3 * k + 0.5 * b) \
            + 0.2 * np.cos(0.013 * i * j - 0.021 * k * (b + 1))
        out[b, 0] = v.astype(np.float32)
    return out


def dumps(obj):
    """JSON with two-space indentation and lists of numbers kept on one line."""
    text = json.dumps(obj, indent=2)
    return re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
                  text) + "\n"


def _sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _onnx_bytes(module, outputs):
    """Exports module (patch -> outputs) to ONNX bytes with a dynamic batch axis."""
    dummy = torch.zeros(1, 1, PATCH, PATCH, PATCH)
    axes = {name: {0: "batch"} for name in ["patch"] + outputs}
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # torch 1.13 warns that prim::Constant lacks shape inference (_check_onnx verifies
        # the declared shapes instead) and that instance_norm exports with train=True (it
        # has no running statistics: it always normalises with the sample's own).
        warnings.filterwarnings("ignore", message="The shape inference of prim::Constant")
        warnings.filterwarnings("ignore", message=".*'instance_norm' is set to train=True")
        # instance_norm's input-size check is traced as a constant; the batch stays dynamic.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(module, (dummy,), buf, input_names=["patch"], output_names=outputs,
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True,
                          export_params=True)
    return buf.getvalue()


def _output_specs(net, outputs):
    c = 4 * net.base_chns
    specs = []
    for name in outputs:
        if name == "position":
            shape = [-1, 3]
        else:
            e = FEATURE_EDGES[name]
            shape = [-1, c, e, e, e]
        specs.append({"name": name, "shape": shape, "type": "float32"})
    return specs


def _check_onnx(data, path, specs):
    """Validates the exported graph and that its declared tensors match the manifest."""
    import onnx  # imported here: the network and loader do not need onnx
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)

    def dims(value):
        return [d.dim_value if d.HasField("dim_value") else -1
                for d in value.type.tensor_type.shape.dim]

    got_in = [(v.name, dims(v)) for v in model.graph.input]
    want_in = [("patch", [-1, 1, PATCH, PATCH, PATCH])]
    if got_in != want_in:
        raise RuntimeError("medlam: %s: inputs %s, want %s" % (path, got_in, want_in))
    got_out = [(v.name, dims(v)) for v in model.graph.output]
    want_out = [(s["name"], s["shape"]) for s in specs]
    if got_out != want_out:
        raise RuntimeError("medlam: %s: outputs %s, want %s" % (path, got_out, want_out))


def export(net, out_dir, prefix, source):
    """Writes <prefix>.onnx and <prefix>-encoder.onnx with their manifests into out_dir.

    Returns the two model paths. The bytes depend only on the weights, the torch version
    and the fixed export settings, so a re-export of the same weights is byte-identical.
    """
    os.makedirs(out_dir, exist_ok=True)
    parts = [
        ("medlam", prefix + ".onnx", net, ["position", "feature0", "feature1", "feature2"]),
        ("medlam-encoder", prefix + "-encoder.onnx", MedLAMEncoder(net), ["position"]),
    ]
    paths = []
    for model_name, file_name, module, outputs in parts:
        path = os.path.join(out_dir, file_name)
        data = _onnx_bytes(module.eval(), outputs)
        specs = _output_specs(net, outputs)
        _check_onnx(data, path, specs)
        with open(path, "wb") as f:
            f.write(data)
        manifest = collections.OrderedDict([
            ("contract", CONTRACT_VERSION),
            ("model", model_name),
            ("file", file_name),
            ("sha256", _sha256_bytes(data)),
            ("inputs", [{"name": "patch", "shape": [-1, 1, PATCH, PATCH, PATCH],
                         "type": "float32"}]),
            ("outputs", specs),
            ("spacing_mm", SPACING_MM),
            ("patch_size", [PATCH, PATCH, PATCH]),
            ("normalisation", NORMALISATION),
            ("source", source),
            ("config", net.config()),
        ])
        with open(path + ".json", "w") as f:
            f.write(dumps(manifest))
        paths.append(path)
    return paths


def _g(x):
    """A float rounded to 7 significant digits, enough for fp32 and stable across CPUs."""
    return float("%.7g" % float(x))


def golden(net, model_path, batch=2):
    """Returns the golden record: torch's outputs on golden_patch(batch), summarised.

    Per output and sample: sum, sum of absolute values, sum of squares (in float64), the
    full position, the channel vector at the centre voxel (edge//2 on each axis) and the
    first 8 values of channel 0's first row ([b,0,0,0,:8]).
    """
    torch.set_num_threads(1)
    patch = torch.from_numpy(golden_patch(batch))
    with torch.no_grad():
        outs = net(patch)
    rec = collections.OrderedDict()
    rec["model"] = os.path.basename(model_path)
    rec["model_sha256"] = _sha256_file(model_path)
    rec["input"] = ("patch[b,0,i,j,k] = float32(0.5 + 0.3*sin(0.1*i + 0.2*j + 0.3*k + 0.5*b)"
                    " + 0.2*cos(0.013*i*j - 0.021*k*(b+1))), evaluated in float64")
    rec["batch"] = batch
    rec["tolerance"] = {"rel": 1e-4, "abs": 1e-4,
                        "note": "torch fp32 vs another runtime; sums scale abs by count"}
    tensors = collections.OrderedDict()
    for name, t in zip(["position", "feature0", "feature1", "feature2"], outs):
        a = t.numpy().astype(np.float64)
        entry = collections.OrderedDict([("shape", list(t.shape))])
        entry["sum"] = [_g(a[b].sum()) for b in range(batch)]
        entry["abs_sum"] = [_g(np.abs(a[b]).sum()) for b in range(batch)]
        entry["sq_sum"] = [_g((a[b] ** 2).sum()) for b in range(batch)]
        if name == "position":
            entry["values"] = [[_g(v) for v in a[b]] for b in range(batch)]
        else:
            c = a.shape[2] // 2
            entry["centre"] = [[_g(v) for v in a[b, :, c, c, c]] for b in range(batch)]
            entry["row0"] = [[_g(v) for v in a[b, 0, 0, 0, :8]] for b in range(batch)]
            entry["min_channel_std"] = [_g(a[b].reshape(a.shape[1], -1).std(axis=1).min())
                                        for b in range(batch)]
        tensors[name] = entry
    rec["outputs"] = tensors
    return rec


def _set_deterministic():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


def main(argv=None):
    p = argparse.ArgumentParser(prog="medlam.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="export medlam.onnx and medlam-encoder.onnx")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="official medlam.pth (full size)")
    src.add_argument("--random-seed", type=int, help="seeded random weights")
    e.add_argument("--tiny", action="store_true", help="tiny widths (random weights only)")
    e.add_argument("--name", help="file name prefix (default medlam, or medlam_tiny)")
    e.add_argument("--out", required=True, help="output directory")
    e.add_argument("--golden", help="also write the golden JSON of the full model here")
    sub.add_parser("keys", help="print the expected checkpoint keys and shapes as JSON")
    args = p.parse_args(argv)

    if args.cmd == "keys":
        json.dump(state_dict_spec(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0

    _set_deterministic()
    if args.checkpoint:
        if args.tiny:
            p.error("--tiny needs --random-seed: the checkpoint is full size")
        try:
            net = load_checkpoint(args.checkpoint, **FULL_CONFIG)
        except CheckpointError as err:
            print(err, file=sys.stderr)
            return 1
        source = "checkpoint %s sha256 %s" % (os.path.basename(args.checkpoint),
                                              _sha256_file(args.checkpoint))
    else:
        config = TINY_CONFIG if args.tiny else FULL_CONFIG
        net = random_network(args.random_seed, config)
        source = "random seed %d%s" % (args.random_seed, " (tiny)" if args.tiny else "")
    prefix = args.name or ("medlam_tiny" if args.tiny else "medlam")
    paths = export(net, args.out, prefix, source)
    for path in paths:
        print(path)
    if args.golden:
        with open(args.golden, "w") as f:
            f.write(dumps(golden(net, paths[0])))
        print(args.golden)
    return 0


if __name__ == "__main__":
    sys.exit(main())
