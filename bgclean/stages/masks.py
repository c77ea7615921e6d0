"""From soft person maps to hole masks: threshold, drop specks, fill holes, dilate."""

from __future__ import annotations

import numpy as np
import torch

from bgclean.ops import check_masks, dilate_masks
from bgclean.pipeline.config import MaskConfig


def dilation_radius(cfg: MaskConfig, height: int, width: int) -> int:
    """Dilation radius in px: ``dilate_px`` if set, else ``dilate`` x the shorter frame side."""
    if cfg.dilate_px is not None:
        return int(cfg.dilate_px)
    return int(round(cfg.dilate * min(height, width)))


def hysteresis(soft: np.ndarray, low: float, high: float) -> np.ndarray:
    """(H,W) probabilities → bool: regions above ``low`` that contain a pixel above ``high``."""
    import cv2

    weak = (soft > low).astype(np.uint8)
    n, labels = cv2.connectedComponents(weak, connectivity=8)
    if n <= 1:
        return soft > high
    keep = np.zeros(n, bool)
    keep[np.unique(labels[soft > high])] = True
    keep[0] = False
    return keep[labels]


def clean_binary_mask(mask: np.ndarray, min_area_px: int, fill_holes: bool) -> np.ndarray:
    """(H,W) bool → (H,W) bool with components under ``min_area_px`` removed and enclosed holes
    filled."""
    import cv2

    m = mask.astype(np.uint8)
    if min_area_px > 0:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        keep = np.zeros(n, bool)
        keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area_px
        m = keep[labels].astype(np.uint8)
    if fill_holes and m.any():
        # background reachable from the border stays background; everything else is inside a person
        h, w = m.shape
        padded = np.pad(m, 1)
        flood = padded.copy()
        cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
        holes = flood[1:-1, 1:-1] == 0
        m = m | holes
    return m.astype(bool)


class MaskStage:
    """Soft maps ``(B,1,H,W)`` in [0,1] → hole masks ``(B,1,H,W)`` float in {0,1}.

    Segmented maps: hysteresis threshold, specks dropped, holes filled, union with the previous
    ``temporal`` frames (state carried across windows; ``reset()`` between videos), dilation.
    ``external=True`` (the user's masks) only dilates. ``keep_out`` ``(B,1,H,W)`` in [0,1]: where it
    is above 0.5 (an animal beside a person), neither the dilation, the previous frames' masks nor
    the hysteresis reach; only the frame's own sure person pixels (above ``threshold``) are masked
    there. A dog pressed against her legs is weak in her map (0.25-0.5) but joined to her: the
    hysteresis took it whole (dogs_jump frames 22-29, the small dog sitting at her feet).
    """

    def __init__(self, cfg: MaskConfig):
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        self._history: list[np.ndarray] = []

    @torch.inference_mode()
    def __call__(self, soft: torch.Tensor, external: bool = False, keep_out: torch.Tensor | None = None) -> torch.Tensor:
        check_masks(soft)
        h, w = soft.shape[2:]
        own: list[np.ndarray] = []  # each frame's own person pixels, before the temporal union
        if external:
            binary = (soft > 0.5).float()
        else:
            min_px = int(self.cfg.min_area * h * w)
            out = []
            for s in soft[:, 0].float().cpu().numpy():
                m = clean_binary_mask(hysteresis(s, self.cfg.threshold_low, self.cfg.threshold), min_px,
                                      self.cfg.fill_holes)
                merged = m.copy()
                for past in self._history:
                    merged |= past
                if self.cfg.temporal > 0:
                    self._history = (self._history + [m])[-self.cfg.temporal :]
                out.append(merged)
                own.append(m & (s > self.cfg.threshold))
            binary = torch.from_numpy(np.stack(out)[:, None]).to(soft.device, torch.float32)
        radius = dilation_radius(self.cfg, h, w)
        grown = torch.empty_like(binary)
        for i in range(binary.shape[0]):  # a frame at a time: the pools' temporaries stay one frame's size
            grown[i : i + 1] = dilate_masks(binary[i : i + 1], radius)
        if keep_out is None or not own:
            return grown
        check_masks(keep_out)
        own_t = torch.from_numpy(np.stack(own)[:, None]).to(soft.device, torch.float32)
        return torch.where(keep_out.to(soft.device) > 0.5, own_t, grown)
