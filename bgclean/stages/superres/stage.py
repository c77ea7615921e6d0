"""Real-ESRGAN super-resolution: restore fills made below native resolution (fill mode), and
upscale whole frames (``--upscale``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bgclean.errors import InputError
from bgclean.ops import (
    check_frames,
    check_masks,
    mask_boxes,
    resize,
    resize_bicubic,
    tiled_upscale,
    transfer_detail,
)
from bgclean.stages.superres.config import SuperResConfig


def sr_model_names() -> list[str]:
    from bgclean.weights.registry import REGISTRY

    return [n for n in REGISTRY.names() if n.startswith("realesrgan.") and not n.endswith(".ncnn")] + ["none"]


class SuperResStage:
    """Frames ``(B,3,h,w)`` float RGB in [0,1] → ``(B,3,H,W)`` at any larger size: Real-ESRGAN x4 in
    tiles, then an antialiased resize to the target. With ``model: none`` it is plain bicubic."""

    def __init__(self, cfg: SuperResConfig, device: torch.device | str = "cpu", download_progress=None):
        self.cfg = cfg
        self.device = torch.device(device)
        self.model: Any = None  # the network; None for plain bicubic (model: none)
        if cfg.model == "none":
            return
        from bgclean.weights.store import load_model

        if cfg.model not in sr_model_names():
            names = ", ".join(sr_model_names())
            raise InputError(f"unknown super-resolution model {cfg.model!r}; choose one of: {names}")
        self.model, self.dtype = load_model(cfg.model, self.device, cfg.half, download_progress)
        self.scale = self.model.scale

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        return self.model(x).float()

    @torch.inference_mode()
    def resize(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Upscale ``x`` (B,3,h,w) to ``size`` = (H,W)."""
        check_frames(x)
        if self.model is None:
            return resize_bicubic(x, size)
        x = x.to(self.device)
        y = tiled_upscale(self._net, x, self.scale, self.cfg.tile, self.cfg.tile_pad, self.cfg.pre_pad,
                          self.cfg.batch_size).clamp_(0, 1)
        return resize(y, size) if tuple(y.shape[2:]) != tuple(size) else y

    @torch.inference_mode()
    def restore_fill(self, fill: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
        """Fill mode. ``fill`` (B,3,h,w) was made below the native size of ``holes`` (B,1,H,W);
        returns a native-size fill where every hole region (with ``margin`` px of context) is
        super-resolved and the rest is bicubic (it is never pasted: it lies outside the holes).

        With ``keep_colors`` the super-resolved detail sits on the bicubic restore's low
        frequencies, so Real-ESRGAN's slight tone shifts cannot draw a seam at the mask edge."""
        check_frames(fill, "fill")
        check_masks(holes)
        big, small = holes.shape[2:], fill.shape[2:]
        out = resize_bicubic(fill, tuple(big))
        if self.model is None:
            return out
        ry, rx = big[0] / small[0], big[1] / small[1]
        low_holes = F.adaptive_max_pool2d(holes.float(), tuple(small)) if big != small else holes
        for i in range(fill.shape[0]):
            for y0, y1, x0, x1 in mask_boxes(low_holes[i, 0], self.cfg.margin):
                Y0, Y1 = round(y0 * ry), min(big[0], round(y1 * ry))
                X0, X1 = round(x0 * rx), min(big[1], round(x1 * rx))
                crop = fill[i : i + 1, :, y0:y1, x0:x1]
                sharp = self.resize(crop, (Y1 - Y0, X1 - X0)).to(out.device)
                if self.cfg.keep_colors:
                    sharp = transfer_detail(sharp, out[i : i + 1, :, Y0:Y1, X0:X1], sigma=max(1.0, ry / 2))
                out[i : i + 1, :, Y0:Y1, X0:X1] = sharp
        return out
