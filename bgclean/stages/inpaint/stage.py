"""The inpainting stage: a fill for what no frame saw, pasted inside the mask only."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from bgclean.errors import InputError, ShapeError
from bgclean.ops import (
    check_frames,
    check_masks,
    composite,
    feather_alpha,
    resize_bicubic,
    resize_known,
)
from bgclean.stages.inpaint import classical  # noqa: F401  (registers the classical backends)
from bgclean.stages.inpaint.config import InpaintConfig
from bgclean.stages.inpaint.finetune import finetune
from bgclean.stages.inpaint.hybrid import HybridFill, hybrid_backend
from bgclean.stages.inpaint.learned import LearnedFill
from bgclean.stages.inpaint.registry import BACKENDS

log = logging.getLogger(__name__)


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
        self._shipped: dict[int, dict[str, torch.Tensor]] = {}  # id(network) -> its weights before adapt()
        if cfg.backend == "auto":
            # Moving video: the learned network, steady (no texture re-picked every frame) and better
            # than Telea on every fidelity number. Stills and still cameras, where the fill is
            # invented once: its structure plus texture (hybrid_detail, default guided), a fill
            # both faithful and sharp in bench/RESULTS.md.
            learned = BACKENDS["learned"](cfg, self.device)
            self.fill_fn = learned
            try:
                self.still_fn = hybrid_backend(cfg, self.device, base=learned)
            except InputError:
                log.warning("pypatchmatch is not installed; still images get the learned fill alone")
                self.still_fn = learned
        else:
            self.fill_fn = self.still_fn = BACKENDS[cfg.backend](cfg, self.device)

    def learned_fills(self) -> list[LearnedFill]:
        fns = [f.base if isinstance(f, HybridFill) else f for f in (self.fill_fn, self.still_fn)]
        return list({id(f.net): f for f in fns if isinstance(f, LearnedFill)}.values())  # one per network

    def adapt(self, frames: torch.Tensor, masks: torch.Tensor) -> None:
        """``--finetune-steps``: fine-tune the learned network on this video's own background
        (``frames`` (B,3,H,W) and their hole ``masks``), once per video; ``reset()`` restores the
        shipped weights for the next one. Does nothing for classical backends."""
        for fill in self.learned_fills():
            if id(fill.net) in self._shipped:
                continue  # already adapted to this video
            self._shipped[id(fill.net)] = {k: v.clone() for k, v in fill.net.state_dict().items()}
            losses = finetune(fill, frames, masks, self.cfg.finetune_steps)
            if losses:
                log.info("fine-tuned the inpainter for %d steps: loss %.4f -> %.4f", len(losses),
                         float(np.mean(losses[:10])), float(np.mean(losses[-10:])))

    def reset(self) -> None:
        for fill in self.learned_fills():
            shipped = self._shipped.pop(id(fill.net), None)
            if shipped is not None:
                fill.net.load_state_dict(shipped)

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
            frames = resize_known(frames, masks, size)  # the hole's own pixels stay out of its ring
            masks = F.adaptive_max_pool2d(masks.float(), size)  # a hole never shrinks when scaled down
        return (self.still_fn if still else self.fill_fn)(frames, (masks > 0).float())

    @torch.inference_mode()
    def paste(self, frames: torch.Tensor, fill: torch.Tensor, masks: torch.Tensor,
              feather: int | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
        """Composite a native-size ``fill`` into ``frames`` inside ``masks`` with a feathered edge
        (``feather`` px, default ``cfg.feather``) that lies inside the mask: outside it the result
        is ``frames`` exactly. Keep the feather within the mask's dilation, or the person's own
        pixels blend into the edge. ``out``: the tensor to write the result into (``fill`` itself
        may be given when the caller no longer needs it: each frame is read before it is
        written); default a new one."""
        width = self.cfg.feather if feather is None else feather
        check_frames(frames)
        check_frames(fill, "fill")
        check_masks(masks, frames)
        # one frame at a time: the feather's erosions and the blend of a whole window at once were
        # the pipeline's largest transient
        if out is None:
            out = torch.empty_like(frames)
        elif out.shape != frames.shape:
            raise ShapeError(f"out: expected the frames' shape {tuple(frames.shape)}, got {tuple(out.shape)}")
        for i in range(frames.shape[0]):
            alpha = feather_alpha((masks[i : i + 1] > 0).float(), width)
            out[i : i + 1] = composite(frames[i : i + 1], fill[i : i + 1], alpha)
        return out

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
