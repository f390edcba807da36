#!/usr/bin/python3
"""SAM / MedSAM (ViT-B) for medlsam-fast: PyTorch definitions and ONNX export.

The modules below reproduce the Segment Anything ViT-B layout (image encoder, prompt encoder,
mask decoder) with the parameter names and shapes of the official checkpoint
sam_vit_b_01ec64.pth, so that it and MedSAM's medsam_vit_b.pth load without any renaming.
models/sam_vit_b_keys.json is the key table that contract is checked against.

Exports (opset 17), each with a manifest <file>.json that engine/backend reads:

  <name>-encoder.onnx         images [B,3,1024,1024] (already normalised with SAM's pixel
                              mean and std) -> image_embeddings [B,256,64,64]
  <name>-decoder.onnx         image_embeddings [E,256,64,64], boxes [B,4] (x0,y0,x1,y1 in
                              1024-pixel space) -> masks [B,1,256,256] (low-resolution
                              logits of the single-mask output), iou_predictions [B,1].
                              E is B (embedding i pairs with box i) or 1 (one slice, B boxes).
  <name>-decoder-public.onnx  (with --public) the layout that segment-anything's
                              scripts/export_onnx_model.py writes by default.

Usage (always Debian's interpreter, which has torch 1.13 and onnx 1.12):

  /usr/bin/python3 models/sam.py export --checkpoint sam_vit_b_01ec64.pth --out DIR --name sam
  /usr/bin/python3 models/sam.py export --random-seed 1 --tiny --public --golden \
      --out testdata/models --name sam_tiny
  /usr/bin/python3 models/sam.py keys > models/sam_vit_b_keys.json
"""

import argparse
import hashlib
import io
import json
import math
import os
import re
import sys
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# SAM's pixel normalisation (RGB order), applied by the caller before the encoder.
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
OPSET = 17
CONTRACT = 1


@dataclass(frozen=True)
class SamConfig:
    """Architecture hyper-parameters. VIT_B is the official ViT-B; TINY is for tests."""

    img_size: int = 1024
    patch_size: int = 16
    enc_dim: int = 768
    enc_depth: int = 12
    enc_heads: int = 12
    enc_mlp_ratio: float = 4.0
    window: int = 14
    global_blocks: Tuple[int, ...] = (2, 5, 8, 11)
    prompt_dim: int = 256  # image embedding channels = prompt and decoder width
    mask_in_chans: int = 16
    dec_depth: int = 2
    dec_heads: int = 8
    dec_mlp_dim: int = 2048
    # Internal width divisors of the decoder's attentions. The official model uses 1 for the
    # token self-attention and 2 for the cross-attentions; the tiny test model uses more.
    self_attn_downsample: int = 1
    cross_attn_downsample: int = 2
    multimask_outputs: int = 3
    iou_hidden: int = 256
    # Hidden width of the hypernetwork MLPs; 0 means prompt_dim, as in the official model.
    hyper_hidden: int = 0

    @property
    def grid(self) -> int:
        """Side of the image-embedding grid (64 for 1024-pixel input, patch 16)."""
        return self.img_size // self.patch_size


VIT_B = SamConfig()
TINY = replace(
    VIT_B,
    enc_dim=32,
    enc_depth=2,
    enc_heads=2,
    global_blocks=(1,),
    dec_depth=2,
    dec_heads=2,
    dec_mlp_dim=64,
    self_attn_downsample=4,
    cross_attn_downsample=4,
    iou_hidden=32,
    hyper_hidden=32,
)


# ---------------------------------------------------------------------------------------------
# Shared layers


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channel axis of an NCHW tensor (eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(dim=1, keepdim=True)
        var = (x - mu).square().mean(dim=1, keepdim=True)
        y = (x - mu) * torch.rsqrt(var + self.eps)
        return y * self.weight[:, None, None] + self.bias[:, None, None]


class MLPBlock(nn.Module):
    """Two linear layers with an activation between them (lin1, lin2)."""

    def __init__(self, dim: int, hidden: int, act=nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class MLP(nn.Module):
    """A stack of linear layers ("layers.N") with ReLU between them, none after the last."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int, depth: int) -> None:
        super().__init__()
        widths = [dim_in] + [hidden] * (depth - 1) + [dim_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = F.relu(x)
        return x


# ---------------------------------------------------------------------------------------------
# Image encoder: ViT with windowed attention, a few global blocks, decomposed relative
# positions, and a convolutional neck down to prompt_dim channels.


def _relative_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """Expands a (2*size-1, C) relative-position table to (size, size, C): entry [i, j] is the
    embedding of offset i - j. Only equal query and key sizes occur in this model."""
    if table.shape[0] != 2 * size - 1:
        raise ValueError(
            f"sam: relative position table has {table.shape[0]} rows, want {2 * size - 1}"
        )
    idx = torch.arange(size)[:, None] - torch.arange(size)[None, :] + (size - 1)
    return table[idx]


class EncoderAttention(nn.Module):
    """Multi-head self-attention over an (N, S, S, C) grid with decomposed relative
    positional terms along rows and columns."""

    def __init__(self, dim: int, heads: int, size: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.size = size
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * size - 1, self.head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * size - 1, self.head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, h, d = self.size, self.heads, self.head_dim
        # (N, S, S, C) -> three (N*heads, S*S, d) tensors
        qkv = self.qkv(x).reshape(-1, s * s, 3, h, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, -1, s * s, d).unbind(0)
        logits = (q * d**-0.5) @ k.transpose(-2, -1)
        # Relative terms: for query (y, x) and key (y', x'), add q . Rh[y - y'] + q . Rw[x - x'].
        rh = _relative_table(self.rel_pos_h, s)  # (S, S', d): [y, y']
        rw = _relative_table(self.rel_pos_w, s)  # (S, S', d): [x, x']
        qg = q.reshape(-1, s, s, d)  # (N*heads, y, x, d)
        # Matrix products rather than einsum: torch's ONNX shape inference loses the static
        # sizes through Einsum.
        rel_y = qg @ rh.transpose(1, 2)  # (n, y, x, y')
        rel_x = (qg.transpose(1, 2) @ rw.transpose(1, 2)).transpose(1, 2)  # (n, y, x, x')
        logits = logits.reshape(-1, s, s, s, s) + rel_y[..., :, None] + rel_x[..., None, :]
        attn = logits.reshape(-1, s * s, s * s).softmax(dim=-1)
        out = (attn @ v).reshape(-1, h, s, s, d).permute(0, 2, 3, 1, 4).reshape(-1, s, s, h * d)
        return self.proj(out)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block; window > 0 attends within non-overlapping windows of
    window x window tokens (the grid zero-padded to a multiple), window 0 attends globally."""

    def __init__(self, cfg: SamConfig, window: int) -> None:
        super().__init__()
        dim = cfg.enc_dim
        self.window = window
        self.grid = cfg.grid
        self.dim = dim
        if window > 0 and -(-cfg.grid // window) * window - cfg.grid > cfg.grid:
            raise ValueError(f"sam: window {window} too large for a {cfg.grid} grid")
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EncoderAttention(dim, cfg.enc_heads, window if window > 0 else cfg.grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * cfg.enc_mlp_ratio))

    def _windowed(self, x: torch.Tensor) -> torch.Tensor:
        g, w, c = self.grid, self.window, self.dim
        n = -(-g // w)  # windows per side
        gp = n * w
        if gp > g:
            # Zero padding at the bottom and right, written as concatenation with a zeroed
            # slice: F.pad exports its pads as a computed tensor, which hides the static
            # grid size from ONNX shape inference.
            x = torch.cat([x, x[:, : gp - g] * 0.0], dim=1)
            x = torch.cat([x, x[:, :, : gp - g] * 0.0], dim=2)
        x = x.reshape(-1, n, w, n, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w, w, c)
        x = self.attn(x)
        x = x.reshape(-1, n, n, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, gp, gp, c)
        return x[:, :g, :g, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        y = self._windowed(y) if self.window > 0 else self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (a strided convolution), output NHWC."""

    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        p = cfg.patch_size
        self.proj = nn.Conv2d(3, cfg.enc_dim, kernel_size=p, stride=p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    """images (B, 3, img, img), normalised -> embeddings (B, prompt_dim, grid, grid)."""

    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        self.img_size = cfg.img_size
        g, c = cfg.grid, cfg.prompt_dim
        self.patch_embed = PatchEmbed(cfg)
        self.pos_embed = nn.Parameter(torch.zeros(1, g, g, cfg.enc_dim))
        self.blocks = nn.ModuleList(
            EncoderBlock(cfg, 0 if i in cfg.global_blocks else cfg.window)
            for i in range(cfg.enc_depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(cfg.enc_dim, c, kernel_size=1, bias=False),
            LayerNorm2d(c),
            nn.Conv2d(c, c, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(c),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))


# ---------------------------------------------------------------------------------------------
# Prompt encoder


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of 2-D positions in [0, 1]^2: sin and cos of
    2 pi (2p - 1) G, G a fixed (2, C/2) Gaussian matrix stored as a buffer."""

    def __init__(self, half: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, half))

    def encode(self, unit_xy: torch.Tensor) -> torch.Tensor:
        """unit_xy (..., 2) as (x, y) in [0, 1] -> (..., C)."""
        f = (2.0 * unit_xy - 1.0) @ self.positional_encoding_gaussian_matrix
        f = f * (2.0 * math.pi)
        return torch.cat([torch.sin(f), torch.cos(f)], dim=-1)

    def dense(self, like: torch.Tensor) -> torch.Tensor:
        """Encoding of every cell centre of like's (H, W) grid, (1, C, H, W). The grid comes
        from like's shape at run time so that ONNX export does not fold it into a constant."""
        ones = torch.ones_like(like[0, 0])
        y = (ones.cumsum(dim=0) - 0.5) / ones.sum(dim=0, keepdim=True)
        x = (ones.cumsum(dim=1) - 0.5) / ones.sum(dim=1, keepdim=True)
        return self.encode(torch.stack([x, y], dim=-1)).permute(2, 0, 1).unsqueeze(0)


class PromptEncoder(nn.Module):
    """Embeds boxes and points (sparse tokens) and masks (a dense map). Point labels: -1 not
    a point, 0 background, 1 foreground, 2 box top-left corner, 3 box bottom-right corner."""

    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        c = cfg.prompt_dim
        self.embed_dim = c
        self.img_size = cfg.img_size
        self.grid = cfg.grid
        self.pe_layer = PositionEmbeddingRandom(c // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, c) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, c)
        m = cfg.mask_in_chans
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, m // 4, kernel_size=2, stride=2),
            LayerNorm2d(m // 4),
            nn.GELU(),
            nn.Conv2d(m // 4, m, kernel_size=2, stride=2),
            LayerNorm2d(m),
            nn.GELU(),
            nn.Conv2d(m, c, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, c)

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """boxes (B, 4) x0, y0, x1, y1 in input pixels -> (B, 2, C) corner tokens."""
        corners = (boxes.reshape(-1, 2, 2) + 0.5) / self.img_size
        emb = self.pe_layer.encode(corners)
        return torch.cat(
            [
                emb[:, :1] + self.point_embeddings[2].weight,
                emb[:, 1:] + self.point_embeddings[3].weight,
            ],
            dim=1,
        )

    def embed_labelled_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """coords (B, N, 2), labels (B, N) in the public ONNX convention -> (B, N, C). Label -1
        replaces the positional term by not_a_point_embed; labels 0..3 add point_embeddings."""
        emb = self.pe_layer.encode((coords + 0.5) / self.img_size)
        lab = labels.unsqueeze(-1)
        emb = emb * (lab != -1).to(emb.dtype)
        emb = emb + self.not_a_point_embed.weight * (lab == -1).to(emb.dtype)
        for i, table in enumerate(self.point_embeddings):
            emb = emb + table.weight * (lab == i).to(emb.dtype)
        return emb

    def no_mask(self) -> torch.Tensor:
        """Dense embedding used when no mask is given, (1, C, 1, 1), broadcast by callers."""
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1)


# ---------------------------------------------------------------------------------------------
# Mask decoder: two-way transformer between prompt tokens and image embedding, then an
# upscaled embedding dotted with per-mask hypernetwork outputs.


class DecoderAttention(nn.Module):
    """Multi-head attention whose projections run at dim / downsample channels."""

    def __init__(self, dim: int, heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        if inner % heads:
            raise ValueError(f"sam: {heads} heads do not divide attention width {inner}")
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        return x.reshape(n, t, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = self._split(self.q_proj(q))
        k = self._split(self.k_proj(k))
        v = self._split(self.v_proj(v))
        attn = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        out = attn.softmax(dim=-1) @ v
        n, h, t, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(n, t, h * d))


class TwoWayBlock(nn.Module):
    """Token self-attention, tokens-to-image attention, token MLP, image-to-tokens attention,
    each followed by a LayerNorm. The first block's self-attention has no positional term
    and no residual."""

    def __init__(self, cfg: SamConfig, first: bool) -> None:
        super().__init__()
        c = cfg.prompt_dim
        self.first = first
        self.self_attn = DecoderAttention(c, cfg.dec_heads, cfg.self_attn_downsample)
        self.norm1 = nn.LayerNorm(c)
        self.cross_attn_token_to_image = DecoderAttention(
            c, cfg.dec_heads, cfg.cross_attn_downsample
        )
        self.norm2 = nn.LayerNorm(c)
        self.mlp = MLPBlock(c, cfg.dec_mlp_dim, act=nn.ReLU)
        self.norm3 = nn.LayerNorm(c)
        self.norm4 = nn.LayerNorm(c)
        self.cross_attn_image_to_token = DecoderAttention(
            c, cfg.dec_heads, cfg.cross_attn_downsample
        )

    def forward(self, tok, img, tok_pe, img_pe):
        if self.first:
            tok = self.self_attn(tok, tok, tok)
        else:
            t = tok + tok_pe
            tok = tok + self.self_attn(t, t, tok)
        tok = self.norm1(tok)
        tok = self.norm2(tok + self.cross_attn_token_to_image(tok + tok_pe, img + img_pe, img))
        tok = self.norm3(tok + self.mlp(tok))
        img = self.norm4(img + self.cross_attn_image_to_token(img + img_pe, tok + tok_pe, tok))
        return tok, img


class TwoWayTransformer(nn.Module):
    """dec_depth two-way blocks and a final tokens-to-image attention."""

    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        c = cfg.prompt_dim
        self.layers = nn.ModuleList(TwoWayBlock(cfg, i == 0) for i in range(cfg.dec_depth))
        self.final_attn_token_to_image = DecoderAttention(
            c, cfg.dec_heads, cfg.cross_attn_downsample
        )
        self.norm_final_attn = nn.LayerNorm(c)

    def forward(self, img, img_pe, tokens):
        """img, img_pe (N, C, H, W) (broadcastable batch), tokens (B, T, C)."""
        img = img.flatten(2).transpose(1, 2)
        img_pe = img_pe.flatten(2).transpose(1, 2)
        tok = tokens
        for layer in self.layers:
            tok, img = layer(tok, img, tokens, img_pe)
        tok = self.norm_final_attn(
            tok + self.final_attn_token_to_image(tok + tokens, img + img_pe, img)
        )
        return tok, img


class MaskDecoder(nn.Module):
    """Predicts multimask_outputs + 1 low-resolution mask logits and their IoU estimates."""

    def __init__(self, cfg: SamConfig) -> None:
        super().__init__()
        c = cfg.prompt_dim
        self.num_mask_tokens = cfg.multimask_outputs + 1
        self.transformer = TwoWayTransformer(cfg)
        self.iou_token = nn.Embedding(1, c)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, c)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2),
            LayerNorm2d(c // 4),
            nn.GELU(),
            nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        hyper = cfg.hyper_hidden or c
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(c, hyper, c // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(c, cfg.iou_hidden, self.num_mask_tokens, 3)

    def predict(self, img, img_pe, sparse, dense):
        """img (E, C, H, W) with E equal to the prompt batch B or 1; img_pe (1, C, H, W);
        sparse (B, T, C); dense broadcastable to (B, C, H, W). Returns masks
        (B, num_mask_tokens, 4H, 4W) and iou (B, num_mask_tokens)."""
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        out_tokens = out_tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1)
        tokens = torch.cat([out_tokens, sparse], dim=1)
        src = img + dense
        c, h, w = src.shape[1], src.shape[2], src.shape[3]
        hs, src = self.transformer(src, img_pe, tokens)
        src = src.transpose(1, 2).reshape(-1, c, h, w)
        up = self.output_upscaling(src)
        hyper = torch.stack(
            [mlp(hs[:, 1 + i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        uc, uh, uw = up.shape[1], up.shape[2], up.shape[3]
        masks = (hyper @ up.reshape(-1, uc, uh * uw)).reshape(-1, self.num_mask_tokens, uh, uw)
        iou = self.iou_prediction_head(hs[:, 0, :])
        return masks, iou


class Sam(nn.Module):
    """The three parts under the official attribute names. pixel_mean and pixel_std are
    non-persistent buffers, as in the official module, so they are not in the state_dict."""

    def __init__(self, cfg: SamConfig = VIT_B) -> None:
        super().__init__()
        self.cfg = cfg
        self.image_encoder = ImageEncoderViT(cfg)
        self.prompt_encoder = PromptEncoder(cfg)
        self.mask_decoder = MaskDecoder(cfg)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(3, 1, 1), False)

    def decode_boxes(self, emb: torch.Tensor, boxes: torch.Tensor):
        """The reference's box-only prompt with single-mask output: emb (E, C, H, W), E = B
        or 1; boxes (B, 4) -> masks (B, 1, 4H, 4W) logits, iou (B, 1)."""
        pe = self.prompt_encoder
        masks, iou = self.mask_decoder.predict(
            emb, pe.pe_layer.dense(emb), pe.embed_boxes(boxes), pe.no_mask()
        )
        return masks[:, :1], iou[:, :1]


# ---------------------------------------------------------------------------------------------
# Export graphs


class EncoderGraph(nn.Module):
    def __init__(self, sam: Sam) -> None:
        super().__init__()
        self.image_encoder = sam.image_encoder

    def forward(self, images):
        return self.image_encoder(images)


class DecoderGraph(nn.Module):
    def __init__(self, sam: Sam) -> None:
        super().__init__()
        self.sam = sam

    def forward(self, image_embeddings, boxes):
        return self.sam.decode_boxes(image_embeddings, boxes)


class PublicDecoderGraph(nn.Module):
    """The prompt encoder + mask decoder in the layout of segment-anything's
    scripts/export_onnx_model.py with its defaults (all masks returned, no stability score):
    inputs image_embeddings, point_coords, point_labels, mask_input, has_mask_input,
    orig_im_size; outputs masks (upscaled to orig_im_size), iou_predictions, low_res_masks.
    A box is two points labelled 2 and 3; channel 0 is the single-mask output."""

    def __init__(self, sam: Sam) -> None:
        super().__init__()
        self.sam = sam
        self.img_size = sam.cfg.img_size

    def forward(self, image_embeddings, point_coords, point_labels, mask_input,
                has_mask_input, orig_im_size):
        pe = self.sam.prompt_encoder
        sparse = pe.embed_labelled_points(point_coords, point_labels)
        dense = has_mask_input * pe.mask_downscaling(mask_input)
        dense = dense + (1 - has_mask_input) * pe.no_mask()
        low, iou = self.sam.mask_decoder.predict(
            image_embeddings, pe.pe_layer.dense(image_embeddings), sparse, dense
        )
        s = self.img_size
        up = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
        size = orig_im_size.to(torch.float32)
        scaled = torch.floor(size * (s / torch.max(size)) + 0.5).to(torch.int64)
        up = up[..., : scaled[0], : scaled[1]]
        hw = orig_im_size.to(torch.int64)
        up = F.interpolate(up, size=(hw[0], hw[1]), mode="bilinear", align_corners=False)
        return up, iou, low


# ---------------------------------------------------------------------------------------------
# Weights


def build(cfg: SamConfig, seed: Optional[int] = None) -> Sam:
    """Returns a Sam in eval mode. With seed, every parameter and buffer is drawn from a
    generator seeded with it (zero-initialised tables included, so that every weight
    influences the outputs); the result depends only on cfg and seed."""
    torch.manual_seed(0 if seed is None else seed)
    sam = Sam(cfg).eval()
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, t in sam.state_dict(keep_vars=True).items():
                t.copy_(_random_like(name, t, gen))
    return sam


def _random_like(name: str, t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    r = torch.randn(t.shape, generator=gen, dtype=torch.float32)
    leaf = name.rsplit(".", 1)[-1]
    is_norm = re.search(r"norm|neck\.[13]\.|upscaling\.1\.|downscaling\.[14]\.", name)
    if name.endswith("positional_encoding_gaussian_matrix"):
        return r
    if is_norm and leaf == "weight":
        return 1.0 + 0.1 * r
    if leaf == "bias" or t.dim() <= 1:
        return 0.02 * r
    if name.endswith(("embed.weight", "_token.weight", "tokens.weight")) \
            or ".point_embeddings." in name or "rel_pos" in name or "pos_embed" in name:
        return 0.5 * r
    # Weights: variance-preserving scale over the fan-in.
    fan_in = t[0].numel()
    if "output_upscaling" in name:
        fan_in = t.shape[0]  # ConvTranspose2d weights are (in, out, kh, kw)
    return r / math.sqrt(max(fan_in, 1))


# TODO(#4): the key table and the layer-by-layer reading of the published architecture are
# the only checks against the official model here (its checkpoints cannot be downloaded on
# these machines). Where sam_vit_b_01ec64.pth is at hand, compare this module's embeddings and
# masks with segment-anything's SamPredictor on a few images and record the differences.
def load_checkpoint(path: str, cfg: SamConfig = VIT_B) -> Sam:
    """Loads sam_vit_b_01ec64.pth, medsam_vit_b.pth or any state_dict with the official key
    names (optionally wrapped in {"model": ...} or {"state_dict": ...}, or with DataParallel's
    "module." prefix). Raises ValueError naming the file and the offending keys."""
    obj = torch.load(path, map_location="cpu")
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise ValueError(f"sam: {path}: not a state_dict (got {type(obj).__name__})")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    sam = Sam(cfg).eval()
    want = sam.state_dict()
    missing = sorted(set(want) - set(sd))
    extra = sorted(set(sd) - set(want))
    if missing or extra:
        raise ValueError(
            f"sam: {path}: {len(missing)} keys missing (first: {missing[:3]}), "
            f"{len(extra)} unexpected (first: {extra[:3]})"
        )
    for k, v in want.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ValueError(
                f"sam: {path}: {k} has shape {list(sd[k].shape)}, want {list(v.shape)}"
            )
    sam.load_state_dict({k: sd[k].float() for k in want})
    return sam


def key_table(cfg: SamConfig = VIT_B) -> List[List]:
    """[[name, shape], ...] of the state_dict, in state_dict order."""
    return [[k, list(v.shape)] for k, v in Sam(cfg).state_dict().items()]


def format_key_table(rows: List[List]) -> str:
    """The JSON text of models/sam_vit_b_keys.json: one [name, shape] per line."""
    lines = ",\n".join("  " + json.dumps(r, separators=(", ", ": ")) for r in rows)
    return "[\n" + lines + "\n]\n"


# ---------------------------------------------------------------------------------------------
# ONNX export and manifests


def _onnx_bytes(graph: nn.Module, args, names_in, names_out, dynamic) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph, args, buf, export_params=True, opset_version=OPSET,
            do_constant_folding=True, input_names=names_in, output_names=names_out,
            dynamic_axes=dynamic,
        )
    return _refine_outputs(buf.getvalue())


def _refine_outputs(model_bytes: bytes) -> bytes:
    """Declares the graph outputs with the shapes ONNX's own inference (with data propagation)
    finds. torch 1.13's exporter loses static sizes through reshapes whose targets hold a
    dynamic batch and declares them symbolic; the runtime reads the declared shapes."""
    import onnx  # noqa: PLC0415 (only the exporter needs it)

    model = onnx.load_from_string(model_bytes)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    for out, inf in zip(model.graph.output, inferred.graph.output):
        if out.name != inf.name:
            raise RuntimeError(f"sam: output order changed by shape inference: {out.name}")
        out.type.CopyFrom(inf.type)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _specs(model_bytes: bytes) -> Tuple[List[dict], List[dict]]:
    """Reads the tensor specs back from the exported graph; symbolic dimensions are -1."""
    import onnx  # noqa: PLC0415 (only the exporter needs it)

    m = onnx.load_from_string(model_bytes)
    names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64"}

    def spec(v):
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        return {"name": v.name, "shape": dims, "type": names.get(tt.elem_type, "unknown")}

    init = {i.name for i in m.graph.initializer}
    ins = [spec(v) for v in m.graph.input if v.name not in init]
    return ins, [spec(v) for v in m.graph.output]


def _write(out_dir: str, file: str, model_bytes: bytes, model: str, source: str,
           cfg: SamConfig, expect: Dict[str, List[int]]) -> None:
    ins, outs = _specs(model_bytes)
    for s in ins + outs:
        if s["name"] in expect and s["shape"] != expect[s["name"]]:
            raise RuntimeError(
                f"sam: {file}: {s['name']} exported as {s['shape']}, contract {expect[s['name']]}"
            )
    path = os.path.join(out_dir, file)
    with open(path, "wb") as f:
        f.write(model_bytes)
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
    manifest = {
        "contract": CONTRACT,
        "model": model,
        "file": file,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "inputs": ins,
        "outputs": outs,
        "patch_size": [cfg.img_size, cfg.img_size],
        "normalisation": "sam-window-500-1000",
        "source": source,
        "config": config,
    }
    with open(path + ".json", "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def example_inputs(cfg: SamConfig, batch: int = 2):
    """Deterministic inputs shared by export tracing and the golden file (documented there)."""
    g, s, c = cfg.grid, cfg.img_size, cfg.prompt_dim
    b = torch.arange(batch, dtype=torch.float64).view(-1, 1, 1, 1)
    ch = torch.arange(3, dtype=torch.float64).view(1, -1, 1, 1)
    y = torch.arange(s, dtype=torch.float64).view(1, 1, -1, 1)
    x = torch.arange(s, dtype=torch.float64).view(1, 1, 1, -1)
    images = torch.sin(0.01 * (x + 2 * y + 3 * ch + b)).float()
    ce = torch.arange(c, dtype=torch.float64).view(1, -1, 1, 1)
    ye = torch.arange(g, dtype=torch.float64).view(1, 1, -1, 1)
    xe = torch.arange(g, dtype=torch.float64).view(1, 1, 1, -1)
    emb = torch.sin(0.05 * (xe + 3 * ye) + 0.1 * ce + b).float()
    base = torch.tensor([[200.0, 300.0, 600.0, 700.0], [50.0, 80.0, 1000.0, 1020.0],
                         [400.0, 100.0, 500.0, 900.0]])
    boxes = base[torch.arange(batch) % 3]
    return images, emb, boxes


def export(sam: Sam, out_dir: str, name: str, source: str, public: bool) -> List[str]:
    """Writes <name>-encoder.onnx, <name>-decoder.onnx (and -decoder-public.onnx) with
    manifests into out_dir; returns the file names."""
    cfg = sam.cfg
    g, c, s = cfg.grid, cfg.prompt_dim, cfg.img_size
    images, emb, boxes = example_inputs(cfg, 2)
    os.makedirs(out_dir, exist_ok=True)
    files = []
    with torch.no_grad():
        enc = _onnx_bytes(EncoderGraph(sam).eval(), (images,), ["images"], ["image_embeddings"],
                          {"images": {0: "batch"}, "image_embeddings": {0: "batch"}})
        f = f"{name}-encoder.onnx"
        _write(out_dir, f, enc, "sam-encoder", source, cfg,
               {"images": [-1, 3, s, s], "image_embeddings": [-1, c, g, g]})
        files.append(f)

        dec = _onnx_bytes(DecoderGraph(sam).eval(), (emb, boxes),
                          ["image_embeddings", "boxes"], ["masks", "iou_predictions"],
                          {"image_embeddings": {0: "embedding_batch"}, "boxes": {0: "batch"},
                           "masks": {0: "batch"}, "iou_predictions": {0: "batch"}})
        f = f"{name}-decoder.onnx"
        _write(out_dir, f, dec, "sam-decoder", source, cfg,
               {"image_embeddings": [-1, c, g, g], "boxes": [-1, 4],
                "masks": [-1, 1, 4 * g, 4 * g], "iou_predictions": [-1, 1]})
        files.append(f)

        if public:
            args = public_example(cfg)
            pub = _onnx_bytes(
                PublicDecoderGraph(sam).eval(), args,
                ["image_embeddings", "point_coords", "point_labels", "mask_input",
                 "has_mask_input", "orig_im_size"],
                ["masks", "iou_predictions", "low_res_masks"],
                {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
            )
            f = f"{name}-decoder-public.onnx"
            k = cfg.multimask_outputs + 1
            # Output batch sizes come out symbolic through the point count; users' own exports
            # differ there too, so the Go side must accept 1 or -1.
            _write(out_dir, f, pub, "sam-decoder-public", source, cfg,
                   {"image_embeddings": [1, c, g, g], "point_coords": [1, -1, 2],
                    "point_labels": [1, -1], "mask_input": [1, 1, 4 * g, 4 * g],
                    "has_mask_input": [1], "orig_im_size": [2],
                    "iou_predictions": [-1, k],
                    "low_res_masks": [-1, k, 4 * g, 4 * g]})
            files.append(f)
    return files


def public_example(cfg: SamConfig):
    """Inputs of the public layout for the first example box: corners labelled 2 and 3, no
    mask input, a 512 x 384 (H x W) original image."""
    _, emb, boxes = example_inputs(cfg, 1)
    g = cfg.grid
    return (
        emb,
        boxes.reshape(1, 2, 2),
        torch.tensor([[2.0, 3.0]]),
        torch.zeros(1, 1, 4 * g, 4 * g),
        torch.tensor([0.0]),
        torch.tensor([512.0, 384.0]),
    )


def _r(v):
    """Rounds floats (nested in lists) to 7 significant digits for the golden file."""
    if isinstance(v, list):
        return [_r(x) for x in v]
    return float(f"{v:.7g}")


def _summary(t: torch.Tensor) -> dict:
    d = t.double()
    return {"shape": list(t.shape), "sum": _r(d.sum().item()),
            "abs_sum": _r(d.abs().sum().item()), "sq_sum": _r(d.square().sum().item())}


def golden(sam: Sam) -> dict:
    """Torch's outputs on example_inputs, for the Go side to check the ONNX export against."""
    cfg = sam.cfg
    images, emb, boxes = example_inputs(cfg, 2)
    with torch.no_grad():
        e = EncoderGraph(sam)(images)
        m, iou = DecoderGraph(sam)(emb, boxes)
        pm, piou, plow = PublicDecoderGraph(sam)(*public_example(cfg))
    return {
        "inputs": {
            "images": "[2,3,1024,1024], images[b,c,y,x] = sin(0.01*(x + 2*y + 3*c + b)), "
                      "computed in float64, stored as float32",
            "image_embeddings": "[2,256,64,64], emb[b,c,y,x] = sin(0.05*(x + 3*y) + 0.1*c + b), "
                                "float64 then float32; the decoder's input, not the encoder's "
                                "output",
            "boxes": boxes.tolist(),
            "public": "image_embeddings[:1]; point_coords = boxes[0] as [[x0,y0],[x1,y1]]; "
                      "point_labels [[2,3]]; mask_input zeros [1,1,256,256]; has_mask_input "
                      "[0]; orig_im_size [512,384]",
        },
        "tolerance": {"abs": 1e-4, "rel": 1e-3},
        "encoder": {
            "image_embeddings": _summary(e),
            "slices": {
                "[0,0:4,0,0:4]": _r(e[0, 0:4, 0, 0:4].tolist()),
                "[1,255,63,60:64]": _r(e[1, 255, 63, 60:64].tolist()),
                "[1,128,31,30:34]": _r(e[1, 128, 31, 30:34].tolist()),
            },
        },
        "decoder": {
            "masks": _summary(m),
            "iou_predictions": _r(iou.tolist()),
            "slices": {
                "[0,0,0,0:4]": _r(m[0, 0, 0, 0:4].tolist()),
                "[1,0,128,126:130]": _r(m[1, 0, 128, 126:130].tolist()),
                "[0,0,255,252:256]": _r(m[0, 0, 255, 252:256].tolist()),
            },
        },
        "decoder_public": {
            "masks": _summary(pm),
            "low_res_masks": _summary(plow),
            "iou_predictions": _r(piou.tolist()),
            "slices": {
                "masks[0,0,256,190:194]": _r(pm[0, 0, 256, 190:194].tolist()),
                "low_res_masks[0,0,128,126:130]": _r(plow[0, 0, 128, 126:130].tolist()),
            },
        },
    }


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="sam.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="export the encoder and decoder to ONNX")
    src = ex.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="sam_vit_b_01ec64.pth, medsam_vit_b.pth, ...")
    src.add_argument("--random-seed", type=int, help="random weights from this seed")
    ex.add_argument("--tiny", action="store_true", help="the tiny test configuration")
    ex.add_argument("--out", required=True, help="output directory")
    ex.add_argument("--name", default="sam", help="file prefix, e.g. sam or medsam")
    ex.add_argument("--public", action="store_true",
                    help="also write <name>-decoder-public.onnx (public SAM decoder layout)")
    ex.add_argument("--golden", action="store_true",
                    help="also write <name>_golden.json with torch's outputs")
    sub.add_parser("keys", help="print the ViT-B state_dict key table as JSON")
    args = p.parse_args(argv)

    if args.cmd == "keys":
        sys.stdout.write(format_key_table(key_table(VIT_B)))
        return 0
    if not re.fullmatch(r"[A-Za-z0-9_]+", args.name):
        p.error(f"--name {args.name!r}: use letters, digits and underscores")
    # One thread: the golden sums then do not depend on the machine's core count.
    torch.set_num_threads(1)
    cfg = TINY if args.tiny else VIT_B
    if args.checkpoint:
        if args.tiny:
            p.error("--tiny applies to --random-seed only: checkpoints are ViT-B")
        sam = load_checkpoint(args.checkpoint, cfg)
        source = f"checkpoint {os.path.basename(args.checkpoint)} " \
                 f"sha256 {_sha256_file(args.checkpoint)}"
    else:
        sam = build(cfg, args.random_seed)
        source = f"random seed {args.random_seed}"
    files = export(sam, args.out, args.name, source, args.public)
    if args.golden:
        path = os.path.join(args.out, f"{args.name}_golden.json")
        with open(path, "w") as f:
            json.dump(golden(sam), f, indent=1)
            f.write("\n")
        files.append(os.path.basename(path))
    for f in files:
        print(os.path.join(args.out, f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
