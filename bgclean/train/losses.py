"""Losses and discriminators for inpainter training.

- reconstruction: L1 inside the hole and outside it, weighted separately;
- total variation on the composite, over the hole and its border;
- perceptual and style terms on a frozen pretrained CNN. The one natural-image CNN among the
  registered weights is U²-Net
  (the small one, 1.1 MB): its encoder was trained on natural photos (DUTS) to separate objects
  from background, so its features respond to edges, object boundaries and textures at 1, 1/2 and
  1/4 resolution; the terms compare the first three encoder stages. It is cheap enough for a CPU
  run, and it is a weight we already ship and verify.
- adversarial (hinge) with a global discriminator on the whole image and a local one on a crop
  around the hole (GLCIC's pair), plus discriminator feature matching (DMFN).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.u2net import U2Net


def _mean(terms: list[torch.Tensor]) -> torch.Tensor:
    """The mean of loss terms, added in order (what ``sum(terms) / len(terms)`` computes)."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total / len(terms)


def l1_hole_valid(out: torch.Tensor, truth: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean L1 inside the hole and outside it, each normalised by its own area."""
    err = (out - truth).abs()
    hole_area = hole.sum().clamp_min(1) * out.shape[1]
    valid_area = (1 - hole).sum().clamp_min(1) * out.shape[1]
    return (err * hole).sum() / hole_area, (err * (1 - hole)).sum() / valid_area


def total_variation(x: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbours where ``region`` (B,1,H,W) is set."""
    dy = (x[:, :, 1:] - x[:, :, :-1]).abs() * region[:, :, 1:]
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs() * region[:, :, :, 1:]
    return (dy.sum() + dx.sum()) / region.sum().clamp_min(1) / x.shape[1]


def gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    f = f.flatten(2)
    return f @ f.transpose(1, 2) / (c * h * w)


class U2NetFeatures(nn.Module):
    """The first three encoder stages of a U²-Net, frozen. Input RGB in [0,1]."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, u2net: U2Net, stages: int = 3):
        super().__init__()
        self.stages = nn.ModuleList(list(u2net.encoder)[:stages])
        for p in self.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean) / self.std
        feats = []
        for i, stage in enumerate(self.stages):
            h = stage(h if i == 0 else F.max_pool2d(h, 2, 2, ceil_mode=True))
            feats.append(h)
        return feats


def perceptual_style(feat: U2NetFeatures, out: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    fo, ft = feat(out), feat(truth)
    perc = _mean([F.l1_loss(a, b) for a, b in zip(fo, ft)])
    style = _mean([F.l1_loss(gram(a), gram(b)) for a, b in zip(fo, ft)])
    return perc, style


class PatchDiscriminator(nn.Module):
    """Spectral-normalised strided convs; returns the score map and the intermediate features
    (for feature matching). Input: RGB in [-1,1] and the hole mask (4 channels)."""

    def __init__(self, width: int = 32, layers: int = 4):
        super().__init__()
        sn = nn.utils.spectral_norm
        blocks, c_in = [], 4
        for i in range(layers):
            c = width * 2 ** min(i, 3)
            blocks.append(nn.Sequential(sn(nn.Conv2d(c_in, c, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)))
            c_in = c
        self.blocks = nn.ModuleList(blocks)
        self.head = sn(nn.Conv2d(c_in, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return self.head(x), feats


def local_crops(x: torch.Tensor, hole: torch.Tensor, side: int) -> torch.Tensor:
    """A ``side``x``side`` crop of each image centred on its hole's bounding box (clamped inside)."""
    b, _, h, w = x.shape
    out = []
    for i in range(b):
        ys, xs = torch.nonzero(hole[i, 0] > 0, as_tuple=True)
        cy = int((ys.min() + ys.max()) // 2) if len(ys) else h // 2
        cx = int((xs.min() + xs.max()) // 2) if len(xs) else w // 2
        y0 = min(max(0, cy - side // 2), h - side)
        x0 = min(max(0, cx - side // 2), w - side)
        out.append(x[i, :, y0 : y0 + side, x0 : x0 + side])
    return torch.stack(out)


class GlobalLocalDiscriminator(nn.Module):
    """GLCIC's pair: one discriminator sees the whole image, the other a crop around the hole at
    half the image side. Scores are hinge-loss logits."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.global_d = PatchDiscriminator(width, 4)
        self.local_d = PatchDiscriminator(width, 3)

    def forward(self, img: torch.Tensor, hole: torch.Tensor):
        x = torch.cat([img, hole], 1)
        side = max(16, (img.shape[-1] // 2) // 8 * 8)
        g, gf = self.global_d(x)
        loc, lf = self.local_d(local_crops(x, hole, side))
        return (g, loc), gf + lf


def d_hinge(real: tuple[torch.Tensor, ...], fake: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return _mean([F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake)])


def g_hinge(fake: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return _mean([-f.mean() for f in fake])


def feature_matching(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
    return _mean([F.l1_loss(f, r.detach()) for r, f in zip(real_feats, fake_feats)])
