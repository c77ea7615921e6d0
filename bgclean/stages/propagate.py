"""Temporal propagation: fill holes with real background seen in other frames.

Camera motion between consecutive frames is a homography estimated from background features only
(ORB + RANSAC; person masks excluded). Motions that move no corner by more than ``static_px`` are
snapped to the identity, so a static camera copies pixels exactly, without resampling. For each frame
of a window, the frames of the window and of a history ring buffer are warped into it; inside the
hole, each pixel takes the median of the candidates that saw it (a robust temporal statistic: with a
static camera it is a clean plate that follows slow lighting changes). What no frame saw stays a hole
for the inpainter.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from bgclean.ops import check_frames, check_masks
from bgclean.pipeline.config import PropagateConfig


def corner_shift(h: np.ndarray, width: int, height: int) -> float:
    """Largest displacement (px) of the image corners under homography ``h``."""
    import cv2

    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], np.float32).reshape(-1, 1, 2)
    return float(np.abs(cv2.perspectiveTransform(corners, h) - corners).max())


def estimate_homography(src_gray: np.ndarray, dst_gray: np.ndarray, src_valid: np.ndarray, dst_valid: np.ndarray,
                        max_features: int = 1500) -> np.ndarray | None:
    """Homography mapping ``src`` pixel coordinates to ``dst``, from ORB features found only where
    ``*_valid`` (background) is true; None when too few consistent matches."""
    import cv2

    orb = cv2.ORB_create(max_features)
    kp1, d1 = orb.detectAndCompute(src_gray, src_valid.astype(np.uint8) * 255)
    kp2, d2 = orb.detectAndCompute(dst_gray, dst_valid.astype(np.uint8) * 255)
    if d1 is None or d2 is None or len(kp1) < 12 or len(kp2) < 12:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(d1, d2)
    if len(matches) < 12:
        return None
    p1 = np.float32([kp1[m.queryIdx].pt for m in matches])
    p2 = np.float32([kp2[m.trainIdx].pt for m in matches])
    h, inliers = cv2.findHomography(p1, p2, cv2.RANSAC, 2.0)
    if h is None or inliers is None or inliers.sum() < 10:
        return None
    return h


class PropagateStage:
    """``frames (B,3,H,W)`` in [0,1] and hole ``masks (B,1,H,W)`` → (frames with every hole pixel
    that another frame saw replaced by that real background, the holes that remain (B,1,H,W)).

    Stateful across windows of one video (history buffer, camera path); ``reset()`` between videos.
    """

    def __init__(self, cfg: PropagateConfig):
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        # each entry: (frame (H,W,3) float32, visible (H,W) bool, pose 3x3: this frame -> reference)
        self.history: deque = deque(maxlen=max(0, self.cfg.history))
        self._last_gray: np.ndarray | None = None
        self._last_valid: np.ndarray | None = None
        self._last_pose = np.eye(3)
        self.static = True  # every motion so far snapped to the identity

    def _pose(self, gray: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Pose (frame → reference) of a new frame, chained from the previous frame's."""
        if self._last_gray is None:
            pose = np.eye(3)
        else:
            h = estimate_homography(gray, self._last_gray, valid, self._last_valid, self.cfg.max_features)
            if h is None or corner_shift(h, gray.shape[1], gray.shape[0]) <= self.cfg.static_px:
                h = np.eye(3)  # static (or unknown: assume still rather than guess)
            else:
                self.static = False
            pose = self._last_pose @ h
        self._last_gray, self._last_valid, self._last_pose = gray, valid, pose
        return pose

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import cv2

        check_frames(frames)
        check_masks(masks, frames)
        h, w = frames.shape[2:]
        imgs = frames.permute(0, 2, 3, 1).float().cpu().numpy()
        holes = masks[:, 0].cpu().numpy() > 0
        window = []
        for img, hole in zip(imgs, holes):
            gray = cv2.cvtColor((img * 255).round().astype(np.uint8), cv2.COLOR_RGB2GRAY)
            window.append((img, ~hole, self._pose(gray, ~hole)))
        sources = list(self.history) + window
        base = len(self.history)
        out = imgs.copy()
        remaining = holes.copy()
        for t, (img, visible, pose_t) in enumerate(window):
            hole = ~visible
            if not hole.any():
                continue
            ys, xs = np.nonzero(hole)
            cands = []
            inv_t = np.linalg.inv(pose_t)
            # nearest in time first: the least camera drift and lighting change
            order = sorted(range(len(sources)), key=lambda k: abs(k - (base + t)))
            for k in order:
                s_img, s_vis, pose_s = sources[k]
                if k == base + t:
                    continue
                m = inv_t @ pose_s  # source frame -> this frame
                if np.allclose(m, np.eye(3), atol=1e-9):
                    warped, vis = s_img, s_vis
                else:
                    warped = cv2.warpPerspective(s_img.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR,
                                                 borderMode=cv2.BORDER_CONSTANT)
                    vis = cv2.warpPerspective(s_vis.astype(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST,
                                              borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
                    vis = cv2.erode(vis.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # no edge blends
                c = warped[ys, xs].astype(np.float32)
                c[~vis[ys, xs]] = np.nan
                cands.append(c)
            if not cands:
                continue
            stack = torch.from_numpy(np.stack(cands))  # (N, P, 3), nearest first
            seen = ~torch.isnan(stack[:, :, 0])
            if self.cfg.nearest > 0:  # keep each pixel's `nearest` closest sightings
                rank = seen.cumsum(0)
                stack[(rank > self.cfg.nearest) & seen] = float("nan")
            count = seen.sum(0)
            med = torch.nanmedian(stack, dim=0).values.numpy()
            ok = (count >= 1).numpy()
            out[t, ys[ok], xs[ok]] = med[ok]
            remaining[t, ys[ok], xs[ok]] = False
        for img, visible, pose in window:
            # float16 holds every 8-bit level exactly and halves the buffer's memory
            self.history.append((img.astype(np.float16), visible, pose))
        filled = torch.from_numpy(out).permute(0, 3, 1, 2).to(frames.device, frames.dtype)
        return filled, torch.from_numpy(remaining[:, None]).to(masks.device, torch.float32)
