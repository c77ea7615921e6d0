"""A drop-in for impersonator / iPERCore's background network: ``bg = bgnet(img, masks=body_mask)``.

It runs bgclean's own pipeline (the same stages as the command line) on a batch of images. The batch
items are treated as unrelated stills (source frames of different people), so no temporal state is
carried between items or calls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bgclean.errors import ShapeError
from bgclean.pipeline.config import PipelineConfig, load_config


class BGNet:
    """``bg = bgnet(img, masks=body_mask, only_x=True)``.

    ``img``: (B,3,H,W) float in [-1,1]. ``masks``: (B,1,H,W), 1 = body, or None to segment the
    people automatically. Returns the background (B,3,H,W) in [-1,1], same dtype and device as
    ``img``; outside the (dilated) hole it equals ``img`` exactly. With ``only_x=False`` returns
    ``(bg, hole)`` where hole is (B,1,H,W) in {0,1}.

    ``bg_ks``: like impersonator's option, dilate the given body mask with a ``bg_ks`` x ``bg_ks``
    square kernel (and nothing else); None uses bgclean's own mask dilation.
    """

    def __init__(self, config: PipelineConfig | None = None, device: str | torch.device | None = None,
                 bg_ks: int | None = None):
        from bgclean.pipeline.runner import Pipeline

        cfg = config or load_config()
        # unrelated stills: nothing to propagate from, and no mask or person box may carry over
        overrides: dict[str, object] = {"propagate.enabled": False, "masks.temporal": 0, "segment.carry": 0}
        if device is not None:
            overrides["runtime.device"] = str(device)
        if bg_ks is not None:
            if bg_ks < 1 or bg_ks % 2 == 0:
                raise ValueError(f"bg_ks must be a positive odd kernel size, got {bg_ks}")
            overrides["masks.dilate_px"] = 0
        self.bg_ks = bg_ks
        self.pipeline = Pipeline(cfg.with_overrides(overrides, "BGNet"))
        self.pipeline.stills = True

    @torch.inference_mode()
    def __call__(self, img: torch.Tensor, masks: torch.Tensor | None = None, only_x: bool = True):
        if not isinstance(img, torch.Tensor) or img.ndim != 4 or img.shape[1] != 3 or not img.is_floating_point():
            raise ShapeError(f"img: expected a float tensor (B,3,H,W) in [-1,1], got {getattr(img, 'shape', img)}")
        if masks is not None and (masks.ndim != 4 or masks.shape[1] != 1 or masks.shape[0] != img.shape[0]
                                  or masks.shape[2:] != img.shape[2:]):
            n, _, h, w = img.shape
            raise ShapeError(f"masks: expected ({n},1,{h},{w}), got {tuple(masks.shape)}")
        self.pipeline.reset()
        x = ((img.float() + 1) / 2).clamp(0, 1)
        ext = None
        if masks is not None:
            ext = (masks > 0.5).float()
            if self.bg_ks is not None:
                ext = F.max_pool2d(ext, self.bg_ks, stride=1, padding=self.bg_ks // 2)
        dilation = self.bg_ks // 2 if (ext is not None and self.bg_ks is not None) else None
        cleaned, holes = self.pipeline.process(x, None if ext is None else ext.to(self.pipeline.device), dilation)
        holes = holes.to(img.device) > 0
        bg = (cleaned.to(img.device) * 2 - 1).to(img.dtype)
        bg = torch.where(holes, bg, img)  # outside the hole: the input, bit for bit
        return bg if only_x else (bg, holes.to(img.dtype))
