"""Filling the holes, and pasting the fill back inside the mask only.

Backends are registered by name in ``BACKENDS``; each maps frames and hole masks to a full-frame fill
(values outside the holes are ignored). The stage composites with a feathered edge that lies inside
the mask, so outside the mask the output is the input exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import logging

import numpy as np
import torch

from bgclean.errors import InputError
import torch.nn.functional as F

from bgclean.ops import check_frames, check_masks, composite, feather_alpha, resize, resize_bicubic
from bgclean.pipeline.config import InpaintConfig

log = logging.getLogger(__name__)

#: name -> factory(cfg) -> fill(frames, masks) -> fill
BACKENDS: dict[str, Callable[[InpaintConfig], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {}


def register_backend(name: str):
    def deco(factory):
        if name in BACKENDS:
            raise ValueError(f"inpaint backend {name!r} is already registered")
        BACKENDS[name] = factory
        return factory

    return deco


def _per_image(fill_image: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """Batch fill from an image function: (H,W,3) uint8 RGB and (H,W) bool hole → (H,W,3) uint8.
    Frames without a hole are returned as they are."""

    def fill(frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        out = []
        for f, m in zip(frames, masks):
            img = (f.permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
            hole = m[0].cpu().numpy() > 0
            filled = fill_image(np.ascontiguousarray(img), hole) if hole.any() else img
            out.append(torch.from_numpy(filled).permute(2, 0, 1).float() / 255.0)
        return torch.stack(out).to(frames.device)

    return fill


def _opencv_fill(method_flag: int, radius: int):
    import cv2

    return _per_image(lambda img, hole: cv2.inpaint(img, hole.astype(np.uint8), radius, method_flag))


@register_backend("telea")
def _telea(cfg: InpaintConfig):
    import cv2

    return _opencv_fill(cv2.INPAINT_TELEA, cfg.radius)


@register_backend("navier-stokes")
def _navier_stokes(cfg: InpaintConfig):
    import cv2

    return _opencv_fill(cv2.INPAINT_NS, cfg.radius)


@register_backend("patchmatch")
def _patchmatch(cfg: InpaintConfig):
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
            my, mx = max(8, (y1 - y0) // 2), max(8, (x1 - x0) // 2)
            Y0, Y1, X0, X1 = max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx)
            patch_match.set_random_seed(0)  # the same input gives the same fill
            crop = patch_match.inpaint(np.ascontiguousarray(res[Y0:Y1, X0:X1]),
                                       np.ascontiguousarray(hole_u8[Y0:Y1, X0:X1]), patch_size=cfg.patch_size)
            inside = hole[Y0:Y1, X0:X1]
            res[Y0:Y1, X0:X1][inside] = crop[inside]
        return res

    return _per_image(fill_image)


@register_backend("hybrid")
def _hybrid(cfg: InpaintConfig):
    """Structure from Telea, texture from PatchMatch: Telea's low frequencies (faithful colours and
    shapes, but flat) plus PatchMatch's high frequencies (real texture, but it can copy the wrong
    structure), split by a Gaussian of ``cfg.hybrid_sigma`` px."""
    from bgclean.ops import transfer_detail

    telea, patchmatch = _telea(cfg), _patchmatch(cfg)

    def fill(frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return transfer_detail(patchmatch(frames, masks), telea(frames, masks), cfg.hybrid_sigma)

    return fill


class InpaintStage:
    """``frames (B,3,H,W)`` in [0,1] and ``masks (B,1,H,W)`` in {0,1} → cleaned frames (B,3,H,W).

    Outside the masks the output equals the input bit for bit.
    """

    def __init__(self, cfg: InpaintConfig, device: torch.device | str = "cpu"):
        if cfg.backend != "auto" and cfg.backend not in BACKENDS:
            raise InputError(
                f"unknown inpainter {cfg.backend!r}; choose one of: auto, {', '.join(sorted(BACKENDS))}"
            )
        self.cfg = cfg
        self.device = torch.device(device)
        if cfg.backend == "auto":
            # PatchMatch looks far better on stills (bench/RESULTS.md) but re-picks its patches
            # every frame; Telea is smooth but steady. Stills and still cameras invent once.
            self.fill_fn = BACKENDS["telea"](cfg)
            try:
                self.still_fn = BACKENDS["patchmatch"](cfg)
            except InputError:
                log.warning("pypatchmatch is not installed; still images are filled with telea")
                self.still_fn = self.fill_fn
        else:
            self.fill_fn = self.still_fn = BACKENDS[cfg.backend](cfg)

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The size fills are computed at: native, or scaled so the long side is ``max_side``."""
        side = self.cfg.max_side
        if side <= 0 or max(height, width) <= side:
            return height, width
        s = side / max(height, width)
        return max(1, round(height * s)), max(1, round(width * s))

    @torch.inference_mode()
    def fill(self, frames: torch.Tensor, masks: torch.Tensor, still: bool = True) -> torch.Tensor:
        """The backend's fill at the working size (see ``working_size``): (B,3,h,w) in [0,1].
        Values outside the (downscaled) holes are not meaningful. ``still=False`` (a moving video,
        filled frame by frame) picks the steadier method when the backend is ``auto``."""
        check_frames(frames)
        check_masks(masks, frames)
        size = self.working_size(*frames.shape[2:])
        if size != tuple(frames.shape[2:]):
            frames = resize(frames, size)
            masks = F.adaptive_max_pool2d(masks.float(), size)  # a hole never shrinks when scaled down
        return (self.still_fn if still else self.fill_fn)(frames, (masks > 0).float())

    @torch.inference_mode()
    def paste(self, frames: torch.Tensor, fill: torch.Tensor, masks: torch.Tensor,
              feather: int | None = None) -> torch.Tensor:
        """Composite a native-size ``fill`` into ``frames`` inside ``masks`` with a feathered edge
        (``feather`` px, default ``cfg.feather``) that lies inside the mask: outside it the result
        is ``frames`` exactly. Keep the feather within the mask's dilation, or the person's own
        pixels blend into the edge."""
        width = self.cfg.feather if feather is None else feather
        return composite(frames, fill, feather_alpha((masks > 0).float(), width))

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Fill and paste back. A below-native fill is restored with bicubic here; the runner
        restores it with super-resolution instead (fill → restore → paste)."""
        check_frames(frames)
        check_masks(masks, frames)
        if not (masks > 0).any():
            return frames
        fill = self.fill(frames, masks)
        if fill.shape != frames.shape:
            fill = resize_bicubic(fill, frames.shape[2:])
        return self.paste(frames, fill, masks)
