"""The hybrid fill: a base fill's structure with texture copied from around the hole, and lines kept
where the structure fill continues them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bgclean.stages.inpaint.classical import (
    _image_and_hole,
    _patchmatch,
    _telea,
    _tensor_of,
)
from bgclean.stages.inpaint.config import InpaintConfig
from bgclean.stages.inpaint.learned import LearnedFill
from bgclean.stages.inpaint.registry import register_backend
from bgclean.stages.inpaint.texture import guided_detail


@dataclass
class HybridFill:
    """A hybrid fill and the base fill under it (the network ``--finetune-steps`` adapts)."""

    fill: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    base: Callable[..., torch.Tensor]

    def __call__(self, frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return self.fill(frames, masks)


@register_backend("hybrid")
def hybrid_backend(cfg: InpaintConfig, device=None, base=None) -> HybridFill:
    """Structure from a smooth fill, texture from elsewhere: the low frequencies of
    ``cfg.hybrid_base`` (telea, or the learned network: faithful colours and shapes, but flat) plus
    high frequencies (split by a Gaussian of ``cfg.hybrid_sigma`` px) from ``cfg.hybrid_detail``:
    ``guided`` (``guided_detail``: blocks copied from around the hole where the base's colours and
    the surroundings' texture strength say they belong; fast) or ``patchmatch`` (real texture, but
    it can copy the wrong structure; 10x slower). With the learned base on the structure fill and
    ``cfg.hybrid_line_share`` > 0 (guided), that fill is made once over the whole image, the
    network corrects it, and where its lines carry weight their edges are kept (``line_detail``)."""
    from bgclean.ops import transfer_detail

    if base is None:
        base = LearnedFill(cfg, torch.device(device or "cpu")) if cfg.hybrid_base == "learned" else _telea(cfg)
    if isinstance(base, LearnedFill):
        # only the base's low frequencies are kept, so the network needs less than its full side
        # (bench/RESULTS.md, "Still-image fill")
        base = base.at_side(cfg.hybrid_net_side)
    # where the structure fill continues lines across the hole (a bench's slats), their edges are
    # kept: copied blocks of texture would cross them with streaks
    lines = (cfg.hybrid_line_share > 0 and isinstance(base, LearnedFill) and base.residual
             and cfg.residual_fill == "structure")
    if cfg.hybrid_detail == "guided":
        def fill(frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
            if lines:
                structure, weight = _structure_and_weight(frames, masks, cfg.radius)
                smooth = base(frames, masks, classical=structure)  # one structure fill for both
            else:
                smooth = base(frames, masks)
            out = torch.stack([guided_detail(f, m[0] > 0, b, cfg.hybrid_sigma)
                               for f, m, b in zip(frames, masks, smooth)])
            if lines:
                out = line_detail(out, structure, weight, masks, cfg.hybrid_sigma, cfg.hybrid_line_share)
            return out
    else:
        patchmatch = _patchmatch(cfg)

        def fill(frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
            return transfer_detail(patchmatch(frames, masks), base(frames, masks), cfg.hybrid_sigma)

    return HybridFill(fill, base)


def _structure_and_weight(frames: torch.Tensor, masks: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The structure fill of each frame (B,3,H,W) and the weight its lines had over Telea (B,1,H,W)."""
    from bgclean import classical

    fills, weights = [], []
    for f, m in zip(frames, masks):
        img, hole = _image_and_hole(f, m)
        if hole.any():
            img, w = classical.structure_fill_and_weight(img, hole, classical.fill(img, hole, "telea", radius))
        else:
            w = np.zeros(hole.shape, np.float32)
        fills.append(_tensor_of(img))
        weights.append(torch.from_numpy(w)[None])
    return torch.stack(fills).to(frames.device), torch.stack(weights).to(frames.device)


_LINE_LOW = 0.5  # where lines carry weight w, the low frequencies go this x w of the way to theirs


def line_detail(textured: torch.Tensor, structure: torch.Tensor, weight: torch.Tensor, masks: torch.Tensor,
                sigma: float, share: float) -> torch.Tensor:
    """Inside the hole, where the structure fill's lines carry weight w (B,1,H,W): the lines' high
    frequencies (above a Gaussian of ``sigma`` px) added at w, ``share`` x w of the copied
    texture's taken away (not all of it: the lines' fill is smooth along them), and the low
    frequencies moved ``_LINE_LOW`` x w of the way to the lines' (the network darkens a long line's
    middle). All (B,3,H,W) in [0,1]."""
    from bgclean.ops import gaussian_blur

    low = lambda x: gaussian_blur(x, sigma)  # noqa: E731
    out = textured + weight * (structure - low(structure) - share * (textured - low(textured))
                               + _LINE_LOW * (low(structure) - low(textured)))
    return torch.where(masks > 0, out.clamp_(0, 1), textured)
