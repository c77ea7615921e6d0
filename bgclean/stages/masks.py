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
    ``external=True`` (the user's masks) only dilates. ``keep_out`` ``(B,1,H,W)``, bool (or in
    [0,1], true above 0.5): where it is true (an animal beside a person), neither the dilation,
    the previous frames' masks nor the hysteresis reach; only the frame's own sure person pixels
    (above ``threshold``) are masked there. A dog pressed against her legs is weak in her map
    (0.25-0.5) but joined to her: the hysteresis took it whole (dogs_jump frames 22-29, the small
    dog sitting at her feet).
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
        if keep_out is not None:
            check_masks(keep_out, soft, "keep_out")
            keep_out = keep_out.to(soft.device)
            if keep_out.dtype != torch.bool:
                keep_out = keep_out > 0.5
        radius = dilation_radius(self.cfg, h, w)
        min_px = int(self.cfg.min_area * h * w)
        grown = torch.empty(soft.shape, dtype=torch.float32, device=soft.device)
        # a frame at a time: every temporary (the binary mask, the pools', her own pixels) stays one
        # frame's size; window-sized copies of each made this stage's peak 150 MB above its input
        for i in range(soft.shape[0]):
            if external:
                grown[i : i + 1] = dilate_masks((soft[i : i + 1] > 0.5).float(), radius)
                continue
            s = soft[i, 0].float().cpu().numpy()
            m = clean_binary_mask(hysteresis(s, self.cfg.threshold_low, self.cfg.threshold), min_px,
                                  self.cfg.fill_holes)
            merged = m.copy()
            for past in self._history:
                merged |= past
            if self.cfg.temporal > 0:
                self._history = (self._history + [m])[-self.cfg.temporal :]
            g = dilate_masks(torch.from_numpy(merged)[None, None].to(soft.device, torch.float32), radius)
            if keep_out is not None:  # each frame's own person pixels, before the temporal union
                own = torch.from_numpy(m & (s > self.cfg.threshold))[None, None].to(soft.device, torch.float32)
                g = torch.where(keep_out[i : i + 1], own, g)
            grown[i : i + 1] = g
        return grown
