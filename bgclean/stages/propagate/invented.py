"""A still camera's invented background, remembered per pixel: what no frame saw is invented once
and every later frame gets the same values there (no flicker in the fill)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


class InventedPixels:
    """The invented values of one video's frames (H,W,3) and where they are known (H,W)."""

    def __init__(self) -> None:
        self.values: np.ndarray | None = None
        self.known: np.ndarray | None = None

    def reset(self) -> None:
        self.values = self.known = None

    def fill(self, frame: torch.Tensor, remaining: torch.Tensor,
             invent: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """One frame (1,3,H,W) with its ``remaining`` holes (1,1,H,W) filled: remembered values
        where known, ``invent(frame, holes)`` for the rest (then remembered)."""
        h, w = remaining.shape[2:]
        if self.values is not None and self.known is not None and self.values.shape[:2] == (h, w):
            known = torch.from_numpy(self.known)[None, None].to(remaining.device) & (remaining > 0)
            values = torch.from_numpy(self.values).permute(2, 0, 1)[None].to(remaining.device)
            frame = torch.where(known, values.to(frame.dtype), frame)
            remaining = remaining * (~known)
        if (remaining > 0).any():
            frame = torch.where(remaining > 0, invent(frame, remaining), frame)
            self._remember(frame, remaining)
        return frame

    def _remember(self, fill: torch.Tensor, remaining: torch.Tensor) -> None:
        h, w = remaining.shape[2:]
        if self.values is None or self.known is None or self.values.shape[:2] != (h, w):
            self.values = np.zeros((h, w, 3), np.float32)
            self.known = np.zeros((h, w), bool)
        sel = remaining[0, 0].cpu().numpy() > 0
        self.values[sel] = fill[0].permute(1, 2, 0).cpu().numpy()[sel]
        self.known |= sel
