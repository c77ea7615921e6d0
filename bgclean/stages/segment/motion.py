"""Corner motion between frames: the camera's motion, and whether a box moves with its surroundings
(scenery) or on its own."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def corner_motion(prev: np.ndarray, cur: np.ndarray, side: int = 240, corners: int = 1000):
    """Corners of ``prev`` (H,W uint8 grey) tracked into ``cur`` by pyramidal Lucas-Kanade at
    ``side`` px on the shorter side: (p0, p1), float32 (N,2) x,y in full-frame px, only the corners
    whose backward track returns within 0.5 px of where they started."""
    (prev, s), (cur, _) = small_grey(prev, side), small_grey(cur, side)
    return track_corners(prev, cur, s, corners)


def small_grey(grey: np.ndarray, side: int = 240) -> tuple[np.ndarray, float]:
    """``grey`` (H,W uint8) at ``side`` px on its shorter side (never enlarged), and that scale."""
    import cv2

    h, w = grey.shape
    s = min(1.0, side / min(h, w))
    if s == 1:
        return grey, 1.0
    return cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA), s


def track_corners(prev: np.ndarray, cur: np.ndarray, scale: float,
                  corners: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """``corner_motion`` on greys already at ``scale`` of the frame: the ``corners`` strongest
    corners of ``prev`` (Shi-Tomasi) tracked into ``cur``; (p0, p1) in full-frame px."""
    import cv2

    p0 = cv2.goodFeaturesToTrack(prev, corners, 0.002, 4, blockSize=5)
    return _lucas_kanade(prev, cur, p0, scale)


def _lucas_kanade(prev: np.ndarray, cur: np.ndarray, p0: np.ndarray | None, scale: float):
    """Points ``p0`` (N,1,2) of ``prev`` tracked into ``cur`` (pyramidal Lucas-Kanade), kept where the
    backward track returns within 0.5 px: (p0, p1) (M,2) divided by ``scale``."""
    import cv2

    if p0 is None or not len(p0):
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    lk = dict(winSize=(15, 15), maxLevel=3)
    p1, ok, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **lk)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **lk)
    good = ok[:, 0].astype(bool) & ok_back[:, 0].astype(bool) & (np.linalg.norm(back - p0, axis=2)[:, 0] < 0.5)
    return p0[good, 0] / scale, p1[good, 0] / scale


def _own_corners(greys, patch: np.ndarray, grown, corners: int = 100,
                 quality: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Corners inside a map ``patch`` (h,w, above 0.5) on its ``grown`` box (gy0, gy1, gx0, gx1),
    found in the current frame among the map's own best (``quality`` of its strongest, 2 px apart)
    and tracked back to the previous one: (p0 previous, p1 current), full-frame px. ``greys``:
    the previous and current frames' ``small_grey``."""
    import cv2

    (prev, s), (cur, _) = greys
    y0, y1, x0, x1 = (int(round(v * s)) for v in grown)
    y1, x1 = min(y1, cur.shape[0]), min(x1, cur.shape[1])
    if y1 - y0 < 4 or x1 - x0 < 4:
        return _lucas_kanade(prev, cur, None, s)
    crop = np.ascontiguousarray(cur[y0:y1, x0:x1])
    mask = cv2.resize((patch > 0.5).astype(np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    eig = cv2.cornerMinEigenVal(crop, 5)
    best = float(eig[mask > 0].max()) if mask.any() else 0.0
    if best <= 0:
        return _lucas_kanade(prev, cur, None, s)
    # goodFeaturesToTrack's quality is relative to the strongest corner of the whole crop
    found = cv2.goodFeaturesToTrack(crop, corners, quality * best / float(eig.max()), 2, mask=mask, blockSize=5)
    if found is not None:
        found += np.array([x0, y0], np.float32)
    p1, p0 = _lucas_kanade(cur, prev, found, s)
    return p0, p1


def _in_boxes(pts: np.ndarray, boxes) -> np.ndarray:
    """(N,) bool: which of the points ``pts`` (N,2) x,y lie in any of ``boxes`` (gy0, gy1, gx0, gx1)."""
    out = np.zeros(len(pts), bool)
    for gy0, gy1, gx0, gx1 in boxes:
        out |= (pts[:, 0] >= gx0) & (pts[:, 0] < gx1) & (pts[:, 1] >= gy0) & (pts[:, 1] < gy1)
    return out


def _off_scene(p0: np.ndarray, p1: np.ndarray, fit: np.ndarray, unit: float) -> np.ndarray:
    """(N,) how far, in ``unit`` px, each corner ``p0`` -> ``p1`` ended from where the scene's
    homography ``fit`` (3,3) takes it."""
    q = np.concatenate([p0, np.ones((len(p0), 1), np.float32)], 1) @ fit.T
    return np.linalg.norm(p1 - q[:, :2] / q[:, 2:3], axis=1) / unit


def camera_motion(p0: np.ndarray, p1: np.ndarray, boxes: list, unit: float, least: int = 20):
    """The scene's motion from one frame to the next: a homography (3,3) fitted (MAGSAC) to the
    tracked corners ``p0`` -> ``p1`` (``corner_motion``) outside the people's grown ``boxes``
    (gy0, gy1, gx0, gx1), or to all of them where under ``least`` lie outside; and the median
    motion of those corners in ``unit`` px (px at 240 px on the shorter side). None where too few
    corners fit. Under a panning camera a wall, its painted figures, grass and trees all fit it
    within about 1 px, while a rider's corners are 2 px off or more."""
    import cv2

    free = ~_in_boxes(p1, boxes)
    if free.sum() < least:
        free[:] = True
    if free.sum() < least:
        return None
    fit, _ = cv2.findHomography(p0[free], p1[free], cv2.USAC_MAGSAC, unit)
    if fit is None:
        return None
    return fit, float(np.median(np.linalg.norm(p1[free] - p0[free], axis=1))) / unit


def surroundings_motion(p0: np.ndarray, p1: np.ndarray, patch: np.ndarray, grown, camera, unit: float,
                        people: Sequence = (), least: int = 5):
    """How a person's pixels moved against the scene, from one frame to the next. ``p0``, ``p1``:
    tracked corners (``corner_motion``); ``patch`` (h,w) her map in this frame on her ``grown``
    box (gy0, gy1, gx0, gx1); ``camera``: ``camera_motion``'s (homography, median motion);
    ``unit``: px per px at 240 px. Her corners are those inside her map (above 0.5) and outside
    the grown boxes of ``people`` known to move and their belongings (a painted figure's crop also
    holds the rider and his bike passing in front of it, whose corners are not its own). Returns
    (share of her corners within 1 unit of where the scene's homography takes them, share 2 units
    or more off it, the scene's median motion in units), or None where she has under ``least``."""
    gy0, gy1, gx0, gx1 = grown
    ix = np.clip((p1[:, 0] - gx0).astype(int), 0, patch.shape[1] - 1)
    iy = np.clip((p1[:, 1] - gy0).astype(int), 0, patch.shape[0] - 1)
    own = _in_boxes(p1, [grown]) & (patch[iy, ix] > 0.5) & ~_in_boxes(p1, people)
    if own.sum() < least:
        return None
    fit, moved = camera
    err = _off_scene(p0[own], p1[own], fit, unit)
    return float((err <= 1).mean()), float((err >= 2).mean()), moved
