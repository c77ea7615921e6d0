"""From soft person maps to hole masks: threshold, drop specks, fill holes, dilate."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bgclean.ops import check_masks, dilate_masks, frame_unit, kept_regions
from bgclean.stages.masks.config import MaskConfig


def dilation_radius(cfg: MaskConfig, height: int, width: int) -> int:
    """Dilation radius in px: ``dilate_px`` if set, else ``dilate`` x the shorter frame side."""
    if cfg.dilate_px is not None:
        return int(cfg.dilate_px)
    return int(round(cfg.dilate * min(height, width)))


def _enclosed(m: np.ndarray) -> np.ndarray:
    """(H,W) bool → the background pixels the image border cannot reach (holes inside a person)."""
    import cv2

    flood = np.pad(m.astype(np.uint8), 1)
    cv2.floodFill(flood, np.zeros((flood.shape[0] + 2, flood.shape[1] + 2), np.uint8), (0, 0), 1)
    return flood[1:-1, 1:-1] == 0


def person_mask(soft: torch.Tensor, low: float, high: float, min_area_px: int, fill_holes: bool,
                factor: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(H,W) probabilities (any device) → (H,W) bool on that device: ``hysteresis`` (regions above
    ``low`` holding a pixel above ``high``), regions under ``min_area_px`` dropped, enclosed holes
    (with ``fill_holes``) filled; and the sure pixels (above ``high``). With ``factor`` > 1 the
    regions are found on the maps max-pooled by ``factor`` (what OpenCV is given shrinks by
    ``factor``², so a 720p frame costs what a 240p one does on the CPU), and each full-size pixel
    above ``low`` is kept where its cell's region is; a gap narrower than a cell is not filled as
    a hole (the mask stage's dilation, 0.02 of the shorter side by default, closes it)."""
    h, w = soft.shape
    weak, strong = soft > low, soft > high
    if factor > 1:
        cells = F.max_pool2d(torch.stack([weak, strong])[None].float(), factor, ceil_mode=True)[0] > 0
        weak_c, strong_c = cells[0].cpu().numpy(), cells[1].cpu().numpy()
    else:
        weak_c, strong_c = weak.cpu().numpy(), strong.cpu().numpy()
    m = kept_regions(weak_c, strong_c, min_area_px, factor * factor)
    holes = _enclosed(m) if fill_holes and m.any() else None
    if factor == 1:
        out = torch.from_numpy(m if holes is None else m | holes).to(soft.device)
        return out, strong

    def full(cell: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(cell).to(soft.device)
        return x.repeat_interleave(factor, 0).repeat_interleave(factor, 1)[:h, :w]

    out = weak & full(m)
    return (out if holes is None else out | full(holes)), strong


class MaskStage:
    """Soft maps ``(B,1,H,W)`` in [0,1] → hole masks ``(B,1,H,W)`` float in {0,1}.

    Segmented maps: hysteresis threshold, specks dropped, holes filled, union with the previous
    ``temporal`` frames (state carried across windows; ``reset()`` between videos), dilation.
    ``external=True`` (the user's masks) only dilates. ``keep_out`` ``(B,1,H,W)``, bool (or in
    [0,1], true above 0.5): where it is true (an animal beside a person), neither the dilation,
    the previous frames' masks nor the hysteresis reach; only the frame's own sure person pixels
    (above ``threshold``) are masked there. A dog pressed against her legs is weak in her map
    (0.25-0.5) but joined to her: the hysteresis would take it whole.
    """

    def __init__(self, cfg: MaskConfig):
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        self._history: list[torch.Tensor] = []  # each frame's (H,W) bool person mask, on the maps' device

    @torch.inference_mode()
    def __call__(self, soft: torch.Tensor, external: bool = False,
                 keep_out: torch.Tensor | None = None) -> torch.Tensor:
        check_masks(soft)
        h, w = soft.shape[2:]
        if keep_out is not None:
            check_masks(keep_out, soft, "keep_out")
            keep_out = keep_out.to(soft.device)
            if keep_out.dtype != torch.bool:
                keep_out = keep_out > 0.5
        radius = dilation_radius(self.cfg, h, w)
        min_px = int(self.cfg.min_area * h * w)
        # regions are found at the 240 px scale (whole cells of factor x factor px): at 1280x720 the
        # OpenCV work per frame was 12 ms on the CPU, which a GPU run pays for every frame
        factor = max(1, int(frame_unit(h, w)))
        grown = torch.empty(soft.shape, dtype=torch.float32, device=soft.device)
        # a frame at a time: every temporary (the binary mask, the pools', her own pixels) stays one
        # frame's size; window-sized copies of each set this stage's memory peak
        for i in range(soft.shape[0]):
            if external:
                grown[i : i + 1] = dilate_masks((soft[i : i + 1] > 0.5).float(), radius)
                continue
            m, sure = person_mask(soft[i, 0].float(), self.cfg.threshold_low, self.cfg.threshold, min_px,
                                  self.cfg.fill_holes, factor)
            merged = m.clone()
            for past in self._history:
                merged |= past
            if self.cfg.temporal > 0:
                self._history = (self._history + [m])[-self.cfg.temporal :]
            g = dilate_masks(merged[None, None].float(), radius)
            if keep_out is not None:  # each frame's own person pixels, before the temporal union
                g = torch.where(keep_out[i : i + 1], (m & sure)[None, None].float(), g)
            grown[i : i + 1] = g
        return grown
