"""bgclean's pipeline on a batch of unrelated stills, for the hooks: source frames of different people
(or of one person from different moments), so nothing is propagated between them and no mask or
person box carries over from one item or call to the next.

Outputs are ordinary tensors, never inference-mode ones: the systems that call a background network
composite its output into a loss and call ``backward()`` (impersonator's post-tuning, iPERCore's
personalisation), which inference tensors refuse.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from bgclean.ops import max_filter
from bgclean.pipeline.config import PipelineConfig, load_config
from bgclean.pipeline.runner import Pipeline


def check_kernel(ks: int | None, what: str) -> None:
    if ks is not None and (ks < 1 or ks % 2 == 0):
        raise ValueError(f"{what} must be a positive odd kernel size, got {ks}")


class StillCleaner:
    """``cleaner(img, holes)``: ``img`` (B,3,H,W) float RGB in [0,1], ``holes`` (B,1,H,W) bool (True =
    fill) or None to find the people automatically. Returns ``(fill, holes)``: bgclean's background
    (B,3,H,W) float32 in [0,1], meaningful inside the holes, and those holes (B,1,H,W) bool; on
    ``img``'s device, ordinary tensors that require no gradient. The caller composites them with
    its own copy of the image (in its own value range, so outside the holes its pixels stay bit
    for bit). With given holes the hole is exactly them: the systems that call the hooks grow
    their masks themselves, so nothing is added.

    ``config``: a ``PipelineConfig`` (default: the default configuration). The pipeline is built on
    first use, and again when it is asked to run on another device.
    """

    def __init__(self, config: PipelineConfig | None = None):
        cfg = config or load_config()
        # unrelated stills: nothing to propagate from, and no mask or person box may carry over
        self.config = cfg.with_overrides({"propagate.enabled": False, "masks.temporal": 0, "segment.carry": 0},
                                         "the hook")
        self._pipelines: dict[tuple[torch.device, bool], Pipeline] = {}

    def pipeline(self, device: torch.device, given_holes: bool) -> Pipeline:
        """The pipeline on ``device``, built on first use: for given holes the mask stage adds no
        dilation; for automatic masks it grows them as the command line does."""
        key = (device, given_holes)
        if key not in self._pipelines:
            for old in [k for k in self._pipelines if k[0] != device]:  # moved: free the old device's
                del self._pipelines[old]
            overrides: dict[str, object] = {"runtime.device": str(device)}
            if given_holes:
                overrides["masks.dilate_px"] = 0
            pipe = Pipeline(self.config.with_overrides(overrides, "the hook"))
            pipe.stills = True
            self._pipelines[key] = pipe
        return self._pipelines[key]

    def __call__(self, img: torch.Tensor, holes: torch.Tensor | None = None,
                 device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``device``: where bgclean runs (default: ``img``'s); the results come back to ``img``'s."""
        pipe = self.pipeline(device or img.device, holes is not None)
        with torch.inference_mode():
            pipe.reset()
            x = img.detach().float().clamp(0, 1)
            given = None if holes is None else holes.detach().to(x.device, torch.float32)
            # given holes are final (dilation 0), so the paste's feather stays one pixel wide
            clean, found = pipe.process(x, given, None if given is None else 0)
        # clone() outside inference mode: ordinary tensors a caller can use in a loss
        return clean.clone().to(img.device), found.clone().to(img.device) > 0


class BackgroundModule(nn.Module):
    """What the hooks' modules share: a ``torch.nn.Module`` with no parameters (bgclean's networks
    are frozen and never in an optimiser, and ``state_dict()`` stays empty, so the module can sit
    inside a network whose checkpoint is loaded around it) that runs ``StillCleaner`` where the
    module lives: ``device`` at first (default the CPU), then wherever ``.to()``, ``.cuda()`` or
    ``.cpu()`` move it, as for any module. ``bg_ks``: grow given holes by a further ``bg_ks`` x
    ``bg_ks`` square; default none."""

    anchor: torch.Tensor

    def __init__(self, config: PipelineConfig | None = None, device: str | torch.device | None = None,
                 bg_ks: int | None = None):
        super().__init__()
        check_kernel(bg_ks, "bg_ks")
        self.bg_ks = bg_ks
        self.cleaner = StillCleaner(config)
        # where the module lives: moved by .to()/.cuda() like a parameter, not saved in state_dict()
        self.register_buffer("anchor", torch.empty(0, device=device), persistent=False)

    def background(self, img: torch.Tensor, holes: torch.Tensor | None) -> torch.Tensor:
        """``img`` (B,3,H,W) in [-1,1] with its ``holes`` (B,1,H,W) bool, or None to find the
        people: bgclean's fill inside the holes, ``img`` itself outside them (bit for bit, and
        differentiable there if it is), in ``img``'s dtype and device."""
        if holes is not None and self.bg_ks is not None:
            # a ks x ks square, as impersonator's and iPERCore's morph(..., mode="dilate")
            holes = max_filter(holes.float(), self.bg_ks, self.bg_ks) > 0
        fill, found = self.cleaner((img + 1) / 2, holes, self.anchor.device)
        return torch.where(found, (fill * 2 - 1).to(img.dtype), img)
