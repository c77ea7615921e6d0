"""Filling the holes, and pasting the fill back inside the mask only.

Backends are registered by name in ``BACKENDS``; each maps frames and hole masks to a full-frame fill
(values outside the holes are ignored). The stage composites with a feathered edge that lies inside
the mask, so outside the mask the output is the input exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bgclean.errors import InputError
from bgclean.ops import check_frames, check_masks, composite, feather_alpha
from bgclean.pipeline.config import InpaintConfig

#: name -> factory(cfg) -> fill(frames, masks) -> fill
BACKENDS: dict[str, Callable[[InpaintConfig], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {}


def register_backend(name: str):
    def deco(factory):
        if name in BACKENDS:
            raise ValueError(f"inpaint backend {name!r} is already registered")
        BACKENDS[name] = factory
        return factory

    return deco


def _opencv_fill(method_flag: int, radius: int):
    import cv2

    def fill(frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        out = []
        for f, m in zip(frames, masks):
            img = (f.permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
            hole = (m[0].cpu().numpy() > 0).astype(np.uint8)
            filled = cv2.inpaint(np.ascontiguousarray(img), hole, radius, method_flag) if hole.any() else img
            out.append(torch.from_numpy(filled).permute(2, 0, 1).float() / 255.0)
        return torch.stack(out).to(frames.device)

    return fill


@register_backend("telea")
def _telea(cfg: InpaintConfig):
    import cv2

    return _opencv_fill(cv2.INPAINT_TELEA, cfg.radius)


@register_backend("navier-stokes")
def _navier_stokes(cfg: InpaintConfig):
    import cv2

    return _opencv_fill(cv2.INPAINT_NS, cfg.radius)


class InpaintStage:
    """``frames (B,3,H,W)`` in [0,1] and ``masks (B,1,H,W)`` in {0,1} → cleaned frames (B,3,H,W).

    Outside the masks the output equals the input bit for bit.
    """

    def __init__(self, cfg: InpaintConfig, device: torch.device | str = "cpu"):
        if cfg.backend not in BACKENDS:
            raise InputError(f"unknown inpainter {cfg.backend!r}; choose one of: {', '.join(sorted(BACKENDS))}")
        self.cfg = cfg
        self.device = torch.device(device)
        self.fill = BACKENDS[cfg.backend](cfg)

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        check_frames(frames)
        check_masks(masks, frames)
        holes = masks > 0
        if not holes.any():
            return frames
        fill = self.fill(frames, masks)
        return composite(frames, fill, feather_alpha(holes.float(), self.cfg.feather))
