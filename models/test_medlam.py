"""Tests of models/medlam.py: checkpoint contract, shapes, batch independence, export.

Run: /usr/bin/python3 -m pytest -q models/test_medlam.py (Debian python3-torch, python3-onnx,
python3-pytest).
"""

import collections
import json
import math
import os
import sys

import numpy as np
import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import medlam  # noqa: E402

REPO = os.path.dirname(HERE)
TESTDATA = os.path.join(REPO, "testdata", "models")
TINY = medlam.TINY_CONFIG


@pytest.fixture(scope="module")
def tiny_net():
    torch.set_num_threads(2)
    return medlam.random_network(0, TINY)


@pytest.fixture(scope="module")
def tiny_batch3(tiny_net):
    """Outputs of the tiny network on golden_patch(3)."""
    with torch.no_grad():
        return tiny_net(torch.from_numpy(medlam.golden_patch(3)))


def _official_keys():
    with open(medlam.KEYS_JSON) as f:
        return json.load(f, object_pairs_hook=collections.OrderedDict)


def test_full_state_dict_matches_official_keys():
    want = _official_keys()["keys"]
    net = medlam.MedLAM(**medlam.FULL_CONFIG)
    got = collections.OrderedDict(("module." + k, list(v.shape))
                                  for k, v in net.state_dict().items())
    assert list(got.items()) == list(want.items())
    # The published size: about 15.07 M parameters.
    assert sum(int(np.prod(s)) for s in want.values()) == 15067878


def test_state_dict_spec_matches_official_keys():
    assert list(medlam.state_dict_spec().items()) == list(_official_keys()["keys"].items())


@pytest.mark.parametrize("base", [2, 3, 5])
def test_state_dict_spec_matches_module_at_any_width(base):
    net = medlam.MedLAM(base_chns=base, n_classes=4)
    got = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    assert got == list(medlam.state_dict_spec(base, 4, prefix="").items())


def test_golden_patch_recipe():
    p = medlam.golden_patch(2)
    assert p.dtype == np.float32 and p.shape == (2, 1, 64, 64, 64)
    for b, i, j, k in [(0, 0, 0, 0), (0, 5, 17, 63), (1, 63, 1, 30), (1, 40, 40, 2)]:
        v = 0.5 + 0.3 * math.sin(0.1 * i + 0.2 * j + 0.3 * k + 0.5 * b) \
            + 0.2 * math.cos(0.013 * i * j - 0.021 * k * (b + 1))
        assert p[b, 0, i, j, k] == np.float32(v), (b, i, j, k)


def test_tiny_output_shapes(tiny_net, tiny_batch3):
    c = 4 * TINY["base_chns"]
    want = [(3, 3), (3, c, 16, 16, 16), (3, c, 32, 32, 32), (3, c, 64, 64, 64)]
    assert [tuple(t.shape) for t in tiny_batch3] == want
    with torch.no_grad():
        one = tiny_net(torch.from_numpy(medlam.golden_patch(1)))
    assert [tuple(t.shape) for t in one] == [(1,) + w[1:] for w in want]


def test_batch_rows_equal_single_runs(tiny_net, tiny_batch3):
    patches = medlam.golden_patch(3)
    for b in [1, 2]:
        with torch.no_grad():
            single = tiny_net(torch.from_numpy(patches[b:b + 1]))
        for name, whole, one in zip(["position", "f0", "f1", "f2"], tiny_batch3, single):
            # torch's CPU convolution sums in a batch-dependent order: equal up to fp32
            # rounding here (bit-identity across batch sizes is the Go runtime's check).
            diff = (whole[b] - one[0]).abs().max().item()
            scale = max(1.0, one[0].abs().max().item())
            assert diff <= 1e-5 * scale, "%s row %d differs by %g" % (name, b, diff)
    # The rows are distinct inputs, so a broken test (same row everywhere) would show here.
    assert not torch.allclose(tiny_batch3[0][0], tiny_batch3[0][1])


def test_features_not_degenerate(tiny_batch3):
    for t in tiny_batch3[1:]:
        std = t.reshape(t.shape[0], t.shape[1], -1).std(dim=2)
        assert std.min().item() > 1e-3, "a feature channel is constant: %s" % std


def test_encoder_position_equals_full_position(tiny_net, tiny_batch3):
    enc = medlam.MedLAMEncoder(tiny_net).eval()
    with torch.no_grad():
        pos = enc(torch.from_numpy(medlam.golden_patch(3)))
    assert torch.allclose(pos, tiny_batch3[0], rtol=0, atol=1e-6)


def test_full_size_shapes():
    torch.set_num_threads(2)
    net = medlam.random_network(1, medlam.FULL_CONFIG)
    x = torch.from_numpy(medlam.golden_patch(1))
    with torch.no_grad():
        pos = medlam.MedLAMEncoder(net)(x)
        bottom, skips = net.encode(x)
    assert tuple(pos.shape) == (1, 3)
    assert tuple(bottom.shape) == (1, 384, 4, 4, 4)
    assert [tuple(s.shape[1:2]) for s in skips] == [(48,), (48,), (96,), (192,)]


def _save(tmp_path, obj):
    path = str(tmp_path / "ck.pth")
    torch.save(obj, path)
    return path


def _prefixed(net):
    return collections.OrderedDict(("module." + k, v) for k, v in net.state_dict().items())


def test_load_checkpoint_roundtrip(tmp_path):
    src = medlam.random_network(7, TINY)
    for name, obj in [("bare", _prefixed(src)),
                      ("wrapped", {"state_dict": _prefixed(src), "epoch": 3}),
                      ("half", collections.OrderedDict((k, v.half())
                                                       for k, v in _prefixed(src).items()))]:
        net = medlam.load_checkpoint(_save(tmp_path, obj), **TINY)
        for k, v in src.state_dict().items():
            got = net.state_dict()[k]
            assert got.dtype == torch.float32, (name, k)
            tol = 1e-3 if name == "half" else 0
            assert torch.allclose(got, v, rtol=tol, atol=tol), (name, k)


@pytest.mark.parametrize("edit,needle", [
    ("drop", "missing keys ['fc3.bias']"),
    ("extra", "unexpected keys ['extra.weight']"),
    ("shape", "fc2.weight [1, 1]"),
    ("width", "wrong shapes"),
])
def test_load_checkpoint_rejects_mismatch(tmp_path, edit, needle):
    state = _prefixed(medlam.random_network(0, TINY))
    if edit == "drop":
        del state["module.fc3.bias"]
    elif edit == "extra":
        state["module.extra.weight"] = torch.zeros(1)
    elif edit == "shape":
        state["module.fc2.weight"] = torch.zeros(1, 1)
    else:
        state = _prefixed(medlam.random_network(0, {"base_chns": 2, "n_classes": 3}))
    path = _save(tmp_path, state)
    with pytest.raises(medlam.CheckpointError) as err:
        medlam.load_checkpoint(path, **TINY)
    assert needle in str(err.value) and path in str(err.value)


def test_load_checkpoint_rejects_non_state_dict(tmp_path):
    with pytest.raises(medlam.CheckpointError, match="not a state_dict"):
        medlam.load_checkpoint(_save(tmp_path, [1, 2]), **TINY)
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(medlam.CheckpointError, match="cannot read"):
        medlam.load_checkpoint(str(bad), **TINY)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The tiny export done twice into fresh directories, as `make models-medlam` does."""
    dirs = []
    for n in range(2):
        d = str(tmp_path_factory.mktemp("export%d" % n))
        assert medlam.main(["export", "--random-seed", "0", "--tiny", "--out", d,
                            "--golden", os.path.join(d, "medlam_tiny_golden.json")]) == 0
        dirs.append(d)
    return dirs


FILES = ["medlam_tiny.onnx", "medlam_tiny.onnx.json", "medlam_tiny-encoder.onnx",
         "medlam_tiny-encoder.onnx.json", "medlam_tiny_golden.json"]


@pytest.mark.parametrize("name", FILES)
def test_export_is_deterministic(exports, name):
    a, b = (open(os.path.join(d, name), "rb").read() for d in exports)
    assert a == b


def _assert_close(got, want, rel, abs_tol, where="golden"):
    """Asserts that two parsed JSON documents agree: numbers within rel * |want| + abs_tol,
    everything else exactly."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), where
        for k in want:
            _assert_close(got[k], want[k], rel, abs_tol, "%s.%s" % (where, k))
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_close(g, w, rel, abs_tol, "%s[%d]" % (where, i))
    elif isinstance(want, float) or isinstance(got, float):
        assert abs(got - want) <= rel * abs(want) + abs_tol, "%s: %r, committed %r" % (
            where, got, want)
    else:
        assert got == want, "%s: %r, committed %r" % (where, got, want)


@pytest.mark.parametrize("name", FILES)
def test_committed_files_are_current(exports, name):
    committed = os.path.join(TESTDATA, name)
    if not os.path.exists(committed):
        pytest.fail("%s missing: run make models-medlam" % committed)
    fresh = open(os.path.join(exports[0], name), "rb").read()
    if name.endswith("_golden.json"):
        # torch's fp32 results depend on the CPU's instruction set (oneDNN picks its
        # convolution code by it), so a fresh export is held to the golden file's own
        # tolerance, the one the Go runtimes are held to; the weights and manifests must
        # match to the byte.
        want = json.load(open(committed))
        tol = want["tolerance"]
        _assert_close(json.loads(fresh), want, tol["rel"], tol["abs"])
        return
    assert open(committed, "rb").read() == fresh, "%s is stale: run make models-medlam" % name


@pytest.mark.parametrize("name,model,outputs", [
    ("medlam_tiny.onnx", "medlam", ["position", "feature0", "feature1", "feature2"]),
    ("medlam_tiny-encoder.onnx", "medlam-encoder", ["position"]),
])
def test_manifest(exports, name, model, outputs):
    path = os.path.join(exports[0], name)
    with open(path + ".json") as f:
        m = json.load(f)
    c = 4 * TINY["base_chns"]
    shapes = {"position": [-1, 3], "feature0": [-1, c, 16, 16, 16],
              "feature1": [-1, c, 32, 32, 32], "feature2": [-1, c, 64, 64, 64]}
    assert m["contract"] == 1 and m["model"] == model and m["file"] == name
    assert m["sha256"] == medlam._sha256_file(path)
    assert m["inputs"] == [{"name": "patch", "shape": [-1, 1, 64, 64, 64], "type": "float32"}]
    assert m["outputs"] == [{"name": n, "shape": shapes[n], "type": "float32"} for n in outputs]
    assert m["spacing_mm"] == [3, 3, 3] and m["patch_size"] == [64, 64, 64]
    assert m["normalisation"] == "medlam-piecewise-hu"
    assert m["source"] == "random seed 0 (tiny)"
    assert m["config"]["feature_channels"] == c
    assert os.path.getsize(path) < 2 << 20


def test_onnx_graph(exports):
    import onnx
    model = onnx.load(os.path.join(exports[0], "medlam_tiny.onnx"))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == medlam.OPSET
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "InstanceNormalization", "Relu", "MaxPool", "Resize"} <= ops
    # Trilinear x2 with align_corners=False: linear Resize on half-pixel centres.
    for node in model.graph.node:
        if node.op_type == "Resize":
            attrs = {a.name: a for a in node.attribute}
            assert attrs["mode"].s == b"linear"
            assert attrs["coordinate_transformation_mode"].s in (b"half_pixel",
                                                                 b"pytorch_half_pixel")


def test_golden_agrees_with_torch(tiny_batch3):
    with open(os.path.join(TESTDATA, "medlam_tiny_golden.json")) as f:
        g = json.load(f)
    assert g["batch"] == 2
    names = ["position", "feature0", "feature1", "feature2"]
    for name, t in zip(names, tiny_batch3):
        a = t[:2].numpy().astype(np.float64)
        rec = g["outputs"][name]
        np.testing.assert_allclose([a[b].sum() for b in range(2)], rec["sum"], rtol=1e-4,
                                   atol=1e-4)
        if name == "position":
            np.testing.assert_allclose(a, rec["values"], rtol=1e-4, atol=1e-5)
        else:
            c = a.shape[2] // 2
            np.testing.assert_allclose(a[:, :, c, c, c], rec["centre"], rtol=1e-4, atol=1e-5)
