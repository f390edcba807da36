"""Tests of models/sam.py: the checkpoint key contract, output shapes, batch independence,
box-prompt semantics, and byte-identical export of the committed tiny models.

Run with Debian's interpreter from the repository root:
  /usr/bin/python3 -m pytest -q models/test_sam.py
  /usr/bin/python3 -m unittest discover -s models -p 'test_sam*.py'
"""

import hashlib
import json
import math
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import torch

    import sam as S
except ImportError as err:  # pragma: no cover - reported as a skip
    torch = None
    IMPORT_ERROR = str(err)

try:
    import onnx
except ImportError:  # pragma: no cover
    onnx = None

TESTDATA = os.path.join(HERE, "..", "testdata", "models")
KEYS = os.path.join(HERE, "sam_vit_b_keys.json")


def setUpModule():
    if torch is None:
        raise unittest.SkipTest(f"torch missing ({IMPORT_ERROR}); use /usr/bin/python3")
    torch.set_num_threads(2)


class KeyTable(unittest.TestCase):
    def test_vit_b_state_dict_matches_table(self):
        with open(KEYS) as f:
            want = json.load(f)
        got = S.key_table(S.VIT_B)
        self.assertEqual(len(got), len(want))
        for (gn, gs), (wn, ws) in zip(got, want):
            self.assertEqual((gn, gs), (wn, ws))

    def test_table_facts(self):
        with open(KEYS) as f:
            table = {n: s for n, s in json.load(f)}
        # SAM ViT-B has 93,735,472 parameters; the state_dict adds the 2 x 128 Gaussian
        # matrix of the prompt encoder, a buffer.
        total = sum(math.prod(s) for s in table.values())
        self.assertEqual(total, 93_735_472 + 256)
        self.assertFalse(any(n.startswith(("pixel_", "module.")) for n in table))
        for i in range(12):
            rows = 127 if i in (2, 5, 8, 11) else 27  # global: 2*64-1, windowed: 2*14-1
            self.assertEqual(table[f"image_encoder.blocks.{i}.attn.rel_pos_h"], [rows, 64])
        self.assertEqual(table["mask_decoder.mask_tokens.weight"], [4, 256])
        self.assertEqual(
            table["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"],
            [128, 256])
        self.assertEqual(table["mask_decoder.output_upscaling.0.weight"], [256, 64, 2, 2])


class Checkpoints(unittest.TestCase):
    def test_wrapped_and_prefixed_state_dict_loads(self):
        src = S.build(S.TINY, 3)
        sd = {"module." + k: v for k, v in src.state_dict().items()}
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ckpt.pth")
            torch.save({"model": sd}, path)
            got = S.load_checkpoint(path, S.TINY)
        for k, v in src.state_dict().items():
            self.assertTrue(torch.equal(got.state_dict()[k], v), k)

    def test_bad_checkpoints_name_file_and_key(self):
        sd = S.build(S.TINY, 3).state_dict()
        cases = {
            "missing": {k: v for k, v in sd.items() if k != "mask_decoder.iou_token.weight"},
            "shape": {**sd, "mask_decoder.iou_token.weight": torch.zeros(2, 256)},
            "extra": {**sd, "image_encoder.blocks.9.norm1.weight": torch.zeros(32)},
        }
        want = {"missing": "iou_token", "shape": "iou_token", "extra": "blocks.9"}
        with tempfile.TemporaryDirectory() as d:
            for name, bad in cases.items():
                path = os.path.join(d, f"{name}.pth")
                torch.save(bad, path)
                with self.assertRaises(ValueError) as ctx:
                    S.load_checkpoint(path, S.TINY)
                self.assertIn(path, str(ctx.exception))
                self.assertIn(want[name], str(ctx.exception))


class TinyModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sam = S.build(S.TINY, 1)
        cls.images, cls.emb, cls.boxes = S.example_inputs(S.TINY, 3)

    def encode(self, images):
        with torch.no_grad():
            return S.EncoderGraph(self.sam)(images)

    def decode(self, emb, boxes):
        with torch.no_grad():
            return self.sam.decode_boxes(emb, boxes)

    def test_shapes(self):
        for b in (1, 3):
            with self.subTest(batch=b):
                e = self.encode(self.images[:b])
                self.assertEqual(list(e.shape), [b, 256, 64, 64])
                m, iou = self.decode(self.emb[:b], self.boxes[:b])
                self.assertEqual(list(m.shape), [b, 1, 256, 256])
                self.assertEqual(list(iou.shape), [b, 1])
                self.assertTrue(torch.isfinite(m).all())

    def test_encoder_batch_independence(self):
        full = self.encode(self.images)
        for i in range(3):
            one = self.encode(self.images[i:i + 1])
            torch.testing.assert_close(full[i:i + 1], one, atol=1e-4, rtol=1e-4)
        self.assertGreater((full[0] - full[1]).abs().max().item(), 1e-3)

    def test_decoder_batch_independence_and_broadcast(self):
        m, iou = self.decode(self.emb, self.boxes)
        for i in range(3):
            mi, ioui = self.decode(self.emb[i:i + 1], self.boxes[i:i + 1])
            torch.testing.assert_close(m[i:i + 1], mi, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(iou[i:i + 1], ioui, atol=1e-5, rtol=1e-4)
        # One embedding shared by every box equals that embedding repeated per box.
        shared, _ = self.decode(self.emb[:1], self.boxes)
        repeated, _ = self.decode(self.emb[:1].expand(3, -1, -1, -1), self.boxes)
        torch.testing.assert_close(shared, repeated, atol=1e-4, rtol=1e-4)

    def test_box_corner_encoding(self):
        # Known answer: a corner (x, y) in 1024-pixel space is encoded at the pixel centre,
        # normalised by the image side, x first: sin/cos(2 pi (2 (p + 0.5) / 1024 - 1) G).
        pe = self.sam.prompt_encoder
        box = torch.tensor([[100.0, 700.0, 900.0, 1000.0]])
        got = pe.embed_boxes(box).detach()
        g = pe.pe_layer.positional_encoding_gaussian_matrix.double()
        for corner, (x, y) in enumerate([(100.0, 700.0), (900.0, 1000.0)]):
            u = torch.tensor([2 * (x + 0.5) / 1024 - 1, 2 * (y + 0.5) / 1024 - 1],
                             dtype=torch.float64)
            f = 2 * math.pi * (u @ g)
            want = torch.cat([f.sin(), f.cos()]) + pe.point_embeddings[2 + corner].weight[0]
            torch.testing.assert_close(got[0, corner].double(), want, atol=1e-5, rtol=1e-5)

    def test_box_equals_public_two_point_prompt(self):
        # The public layout's box (points labelled 2 and 3, no mask input) must give the same
        # single-mask output (channel 0) as the box graph.
        pub = S.PublicDecoderGraph(self.sam)
        for i in range(3):
            box = self.boxes[i:i + 1]
            with torch.no_grad():
                _, iou_p, low = pub(self.emb[:1], box.reshape(1, 2, 2),
                                    torch.tensor([[2.0, 3.0]]), torch.zeros(1, 1, 256, 256),
                                    torch.tensor([0.0]), torch.tensor([1024.0, 1024.0]))
            m, iou = self.decode(self.emb[:1], box)
            torch.testing.assert_close(low[:, :1], m, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(iou_p[:, :1], iou, atol=1e-5, rtol=1e-4)

    def test_box_changes_the_mask(self):
        a, _ = self.decode(self.emb[:1], torch.tensor([[100.0, 100.0, 300.0, 300.0]]))
        b, _ = self.decode(self.emb[:1], torch.tensor([[600.0, 600.0, 900.0, 900.0]]))
        c, _ = self.decode(self.emb[:1], torch.tensor([[100.0, 100.0, 300.0, 300.0]]))
        self.assertGreater((a - b).abs().mean().item(), 1e-3)
        torch.testing.assert_close(a, c)

    def test_public_upscaling_to_original_size(self):
        pub = S.PublicDecoderGraph(self.sam)
        args = list(S.public_example(S.TINY))
        for h, w in [(512, 384), (300, 700), (1024, 1024)]:
            args[5] = torch.tensor([float(h), float(w)])
            with torch.no_grad():
                masks, iou, low = pub(*args)
            self.assertEqual(list(masks.shape), [1, 4, h, w])
            self.assertEqual(list(low.shape), [1, 4, 256, 256])

    def test_golden_matches_torch(self):
        path = os.path.join(TESTDATA, "sam_tiny_golden.json")
        with open(path) as f:
            want = json.load(f)
        got = json.loads(json.dumps(S.golden(self.sam)))
        for part in ("encoder", "decoder", "decoder_public"):
            for k, v in got[part].items():
                if isinstance(v, dict) and "sum" in v:
                    for stat in ("sum", "abs_sum", "sq_sum"):
                        self.assertAlmostEqual(v[stat], want[part][k][stat],
                                               delta=1e-4 * (1 + abs(v[stat])), msg=(part, k))


@unittest.skipIf(onnx is None, "onnx missing: install python3-onnx")
class Export(unittest.TestCase):
    def test_tiny_export_is_byte_identical_to_committed(self):
        sam = S.build(S.TINY, 1)
        with tempfile.TemporaryDirectory() as d:
            files = S.export(sam, d, "sam_tiny", "random seed 1", public=True)
            self.assertEqual(len(files), 3)
            for f in files:
                for suffix in ("", ".json"):
                    with self.subTest(file=f + suffix):
                        with open(os.path.join(d, f + suffix), "rb") as a, \
                                open(os.path.join(TESTDATA, f + suffix), "rb") as b:
                            self.assertEqual(a.read(), b.read(),
                                             "re-export differs: run make models-sam")

    def test_manifests(self):
        want_io = {
            "sam_tiny-encoder.onnx": ("sam-encoder", {
                "images": [-1, 3, 1024, 1024], "image_embeddings": [-1, 256, 64, 64]}),
            "sam_tiny-decoder.onnx": ("sam-decoder", {
                "image_embeddings": [-1, 256, 64, 64], "boxes": [-1, 4],
                "masks": [-1, 1, 256, 256], "iou_predictions": [-1, 1]}),
            "sam_tiny-decoder-public.onnx": ("sam-decoder-public", {
                "image_embeddings": [1, 256, 64, 64], "point_coords": [1, -1, 2],
                "point_labels": [1, -1], "mask_input": [1, 1, 256, 256],
                "has_mask_input": [1], "orig_im_size": [2], "masks": [-1, -1, -1, -1],
                "iou_predictions": [-1, 4], "low_res_masks": [-1, 4, 256, 256]}),
        }
        for f, (model, io) in want_io.items():
            with self.subTest(file=f):
                path = os.path.join(TESTDATA, f)
                with open(path + ".json") as fh:
                    m = json.load(fh)
                with open(path, "rb") as fh:
                    data = fh.read()
                self.assertLess(len(data), 5 << 20)
                self.assertEqual(m["contract"], 1)
                self.assertEqual(m["model"], model)
                self.assertEqual(m["file"], f)
                self.assertEqual(m["sha256"], hashlib.sha256(data).hexdigest())
                self.assertEqual(m["patch_size"], [1024, 1024])
                self.assertEqual(m["normalisation"], "sam-window-500-1000")
                self.assertEqual(m["source"], "random seed 1")
                specs = {s["name"]: s["shape"] for s in m["inputs"] + m["outputs"]}
                self.assertEqual(specs, io)
                self.assertTrue(all(s["type"] == "float32" for s in m["inputs"] + m["outputs"]))
                g = onnx.load_from_string(data)
                self.assertEqual([o.version for o in g.opset_import if o.domain in ("", "ai.onnx")],
                                 [17])
                init = {i.name for i in g.graph.initializer}
                self.assertEqual([v.name for v in g.graph.input if v.name not in init],
                                 [s["name"] for s in m["inputs"]])

    def test_cli_rejects_bad_name(self):
        with self.assertRaises(SystemExit):
            S.main(["export", "--random-seed", "1", "--tiny", "--out", "/nonexistent",
                    "--name", "../x"])


if __name__ == "__main__":
    unittest.main()
