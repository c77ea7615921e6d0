"""The classical fills as backends (telea, navier-stokes, structure, patchmatch), one image at a time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bgclean.errors import InputError
from bgclean.stages.inpaint.config import InpaintConfig
from bgclean.stages.inpaint.registry import register_backend


def context_box(box: tuple[int, int, int, int], share: float, least: int, h: int, w: int) -> tuple[int, int, int, int]:
    """A hole's box (y0, y1, x0, x1) grown on each side by ``share`` of its size (at least
    ``least`` px), clipped to an (h, w) frame: the crop a fill works in, the hole with its context."""
    y0, y1, x0, x1 = box
    my, mx = max(least, int((y1 - y0) * share)), max(least, int((x1 - x0) * share))
    return max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx)


def _per_image(fill_image: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """Batch fill from an image function: (H,W,3) uint8 RGB and (H,W) bool hole → (H,W,3) uint8.
    Frames without a hole are returned as they are."""

    def fill(frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        out = []
        for f, m in zip(frames, masks):
            img, hole = _image_and_hole(f, m)
            out.append(_tensor_of(fill_image(img, hole) if hole.any() else img))
        return torch.stack(out).to(frames.device)

    return fill


def _image_and_hole(frame: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(3,H,W) in [0,1] and (1,H,W) → (H,W,3) uint8 RGB, contiguous, and (H,W) bool."""
    img = (frame.permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
    return np.ascontiguousarray(img), mask[0].cpu().numpy() > 0


def _tensor_of(img: np.ndarray) -> torch.Tensor:
    """(H,W,3) uint8 → (3,H,W) float in [0,1], on the CPU."""
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255.0


def classical_backend(method: str, radius: int):
    from bgclean import classical

    return _per_image(lambda img, hole: classical.fill(img, hole, method, radius))


@register_backend("telea")
def _telea(cfg: InpaintConfig, device=None):
    return classical_backend("telea", cfg.radius)


@register_backend("navier-stokes")
def _navier_stokes(cfg: InpaintConfig, device=None):
    return classical_backend("navier-stokes", cfg.radius)


@register_backend("structure")
def _structure(cfg: InpaintConfig, device=None):
    """Telea, with lines that cross the hole (a horizon, a shore) continued across it
    (``bgclean.classical.structure_fill``)."""
    return classical_backend("structure", cfg.radius)


@register_backend("patchmatch")
def _patchmatch(cfg: InpaintConfig, device=None):
    """PatchMatch exemplar fill (pypatchmatch): copies real texture from around each hole. Each
    hole is filled from a crop of twice its size, so patches come from its own surroundings."""
    try:
        from patchmatch import patch_match
    except ImportError:
        raise InputError("--inpainter patchmatch needs the pypatchmatch package: pip install pypatchmatch") from None
    from bgclean.ops import mask_boxes

    def fill_image(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
        res = img.copy()
        hole_u8 = hole.astype(np.uint8) * 255
        h, w = hole.shape
        for y0, y1, x0, x1 in mask_boxes(torch.from_numpy(hole), 0):
            Y0, Y1, X0, X1 = context_box((y0, y1, x0, x1), 0.5, 8, h, w)
            patch_match.set_random_seed(0)  # the same input gives the same fill
            crop = patch_match.inpaint(np.ascontiguousarray(res[Y0:Y1, X0:X1]),
                                       np.ascontiguousarray(hole_u8[Y0:Y1, X0:X1]), patch_size=cfg.patch_size)
            inside = hole[Y0:Y1, X0:X1]
            res[Y0:Y1, X0:X1][inside] = crop[inside]
        return res

    return _per_image(fill_image)
