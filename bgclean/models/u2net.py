"""U²-Net (Qin et al. 2020) in plain torch, in the BatchNorm-folded form of rembg's ONNX exports.

Every ``REBNCONV`` of the paper is a 3x3 conv (bias carries the folded BatchNorm) followed by ReLU.
Modules are defined in the order the ONNX graph executes its Conv nodes, which is what
``bgclean.weights.convert`` relies on to map weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvReLU(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x), inplace=True)


def _up_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[2:], mode="bilinear", align_corners=False)


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, stride=2, ceil_mode=True)


class RSU(nn.Module):
    """Residual U-block of ``depth`` levels (RSU-7 ... RSU-4)."""

    def __init__(self, depth: int, in_ch: int, mid_ch: int, out_ch: int):
        super().__init__()
        self.conv_in = ConvReLU(in_ch, out_ch)
        self.encoders = nn.ModuleList(
            [ConvReLU(out_ch if i == 0 else mid_ch, mid_ch) for i in range(depth - 1)]
        )
        self.bottom = ConvReLU(mid_ch, mid_ch, dilation=2)
        self.decoders = nn.ModuleList(
            [ConvReLU(mid_ch * 2, out_ch if i == depth - 2 else mid_ch) for i in range(depth - 1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hx_in = self.conv_in(x)
        feats = []
        h = hx_in
        for i, enc in enumerate(self.encoders):
            h = enc(h if i == 0 else _pool(h))
            feats.append(h)
        h = self.bottom(h)
        for i, dec in enumerate(self.decoders):
            skip = feats[-1 - i]
            if i > 0:
                h = _up_to(h, skip)
            h = dec(torch.cat([h, skip], dim=1))
        return h + hx_in


class RSU4F(nn.Module):
    """Dilated RSU without pooling (used at the coarsest stages)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int):
        super().__init__()
        self.conv_in = ConvReLU(in_ch, out_ch)
        self.encoders = nn.ModuleList(
            [ConvReLU(out_ch, mid_ch, 1), ConvReLU(mid_ch, mid_ch, 2), ConvReLU(mid_ch, mid_ch, 4)]
        )
        self.bottom = ConvReLU(mid_ch, mid_ch, dilation=8)
        self.decoders = nn.ModuleList(
            [ConvReLU(mid_ch * 2, mid_ch, 4), ConvReLU(mid_ch * 2, mid_ch, 2), ConvReLU(mid_ch * 2, out_ch, 1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hx_in = self.conv_in(x)
        feats = []
        h = hx_in
        for enc in self.encoders:
            h = enc(h)
            feats.append(h)
        h = self.bottom(h)
        for i, dec in enumerate(self.decoders):
            h = dec(torch.cat([h, feats[-1 - i]], dim=1))
        return h + hx_in


# (kind, in, mid, out) per stage; kind is the RSU depth or "4F".
_FULL_ENCODER = [(7, 3, 32, 64), (6, 64, 32, 128), (5, 128, 64, 256), (4, 256, 128, 512),
                 ("4F", 512, 256, 512), ("4F", 512, 256, 512)]
_FULL_DECODER = [("4F", 1024, 256, 512), (4, 1024, 128, 256), (5, 512, 64, 128),
                 (6, 256, 32, 64), (7, 128, 16, 64)]
_SMALL_ENCODER = [(7, 3, 16, 64), (6, 64, 16, 64), (5, 64, 16, 64), (4, 64, 16, 64),
                  ("4F", 64, 16, 64), ("4F", 64, 16, 64)]
_SMALL_DECODER = [("4F", 128, 16, 64), (4, 128, 16, 64), (5, 128, 16, 64),
                  (6, 128, 16, 64), (7, 128, 16, 64)]


def _block(kind, in_ch, mid_ch, out_ch) -> nn.Module:
    return RSU4F(in_ch, mid_ch, out_ch) if kind == "4F" else RSU(kind, in_ch, mid_ch, out_ch)


class U2Net(nn.Module):
    """U²-Net salient-object segmenter.

    Input ``(B,3,H,W)`` float, ImageNet-normalised. Output ``(B,1,H,W)`` foreground probability
    in [0,1] (the fused map ``d0`` of the paper; the side outputs are not returned).
    """

    def __init__(self, variant: str = "full"):
        super().__init__()
        if variant not in ("full", "small"):
            raise ValueError(f"U2Net variant must be 'full' or 'small', got {variant!r}")
        enc, dec = (_FULL_ENCODER, _FULL_DECODER) if variant == "full" else (_SMALL_ENCODER, _SMALL_DECODER)
        self.variant = variant
        self.encoder = nn.ModuleList([_block(*spec) for spec in enc])
        self.decoder = nn.ModuleList([_block(*spec) for spec in dec])
        side_in = [dec[-1 - i][3] for i in range(5)] + [enc[-1][3]]
        self.sides = nn.ModuleList([nn.Conv2d(c, 1, 3, padding=1) for c in side_in])
        self.fuse = nn.Conv2d(6, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        h = x
        for i, stage in enumerate(self.encoder):
            h = stage(h if i == 0 else _pool(h))
            feats.append(h)
        dec_feats = [feats[-1]]
        h = feats[-1]
        for i, stage in enumerate(self.decoder):
            skip = feats[-2 - i]
            h = stage(torch.cat([_up_to(h, skip), skip], dim=1))
            dec_feats.append(h)
        # side i (1..6) reads decoder level of matching resolution; dec_feats[-1] is the finest.
        sides: list[torch.Tensor] = []
        for i, conv in enumerate(self.sides):
            s = conv(dec_feats[-1 - i])
            sides.append(s if i == 0 else _up_to(s, sides[0]))
        return torch.sigmoid(self.fuse(torch.cat(sides, dim=1)))
