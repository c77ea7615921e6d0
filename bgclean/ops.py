"""Pure tensor operations shared by the stages (each tested on its own).

Frames: float ``(B,3,H,W)`` RGB in [0,1]. Masks: float ``(B,1,H,W)`` in {0,1} (or [0,1] for soft
maps), 1 = person / hole to fill.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bgclean.errors import ShapeError


def check_frames(x: torch.Tensor, name: str = "frames") -> None:
    """Raise ShapeError unless ``x`` is a float (B,3,H,W) tensor."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        dtype = getattr(x, "dtype", None)
        raise ShapeError(f"{name}: expected a float tensor of shape (B,3,H,W), got {got} {dtype or ''}".strip())


def check_masks(m: torch.Tensor, like: torch.Tensor | None = None, name: str = "masks") -> None:
    """Raise ShapeError unless ``m`` is a (B,1,H,W) tensor matching ``like``'s B, H, W."""
    if not isinstance(m, torch.Tensor) or m.ndim != 4 or m.shape[1] != 1:
        got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
        raise ShapeError(f"{name}: expected shape (B,1,H,W), got {got}")
    if like is not None and (m.shape[0], *m.shape[2:]) != (like.shape[0], *like.shape[2:]):
        raise ShapeError(
            f"{name}: expected shape ({like.shape[0]},1,{like.shape[2]},{like.shape[3]}) to match the "
            f"frames, got {tuple(m.shape)}"
        )


def _pool_max(m: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    return F.max_pool2d(m, (kh, kw), stride=1, padding=(kh // 2, kw // 2))


def dilate_masks(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilate (B,1,H,W) masks by ``radius`` px with an octagonal (near-disc) structuring element:
    alternating square and cross max-pools, so corners do not grow square."""
    check_masks(masks)
    if radius <= 0:
        return masks
    out = masks
    remaining = radius
    use_square = True
    while remaining > 0:
        r = min(remaining, 1 if not use_square else max(1, radius // 4))
        k = 2 * r + 1
        if use_square:
            out = _pool_max(out, k, k)
        else:
            out = torch.maximum(_pool_max(out, 1, k), _pool_max(out, k, 1))
        remaining -= r
        use_square = not use_square
    return out


def erode_masks(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Erode (B,1,H,W) masks by ``radius`` px (the dual of ``dilate_masks``)."""
    return 1.0 - dilate_masks(1.0 - masks, radius)


def feather_alpha(masks: torch.Tensor, width: int) -> torch.Tensor:
    """Blend weights for pasting a fill: 1 deep inside the mask, ramping down over ``width`` px to
    ``1/width`` at its edge, and exactly 0 outside it. (B,1,H,W) in [0,1]."""
    check_masks(masks)
    if width <= 1:
        return masks.clone()
    acc = masks.clone()
    cur = masks
    for _ in range(width - 1):
        cur = -_pool_max(-cur, 3, 3)  # erode by one pixel
        acc = acc + cur
    return acc / width


def composite(frames: torch.Tensor, fill: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``frames`` where ``alpha`` is 0, ``fill`` where it is 1, blended between. Where alpha == 0
    the result is ``frames`` exactly (no arithmetic touches those pixels)."""
    check_frames(frames)
    check_frames(fill, "fill")
    check_masks(alpha, frames, "alpha")
    blended = frames + (fill - frames) * alpha
    return torch.where(alpha > 0, blended, frames)


def resize(x: torch.Tensor, size: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of (B,C,H,W) to ``size`` = (H,W); antialiased when shrinking."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[2] or size[1] < x.shape[3]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias and shrink)
