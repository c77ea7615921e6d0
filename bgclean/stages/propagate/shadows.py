"""Where a hole grows beyond the person: her shadow, and (the other way) the hole's pixels that did not
change and keep the frame's own."""

from __future__ import annotations

import numpy as np

from bgclean.ops import hysteresis, octagon


def shadow_candidates(img: np.ndarray, hole: np.ndarray, width: int = 12, darker: float = 0.85,
                      chroma: float = 0.1) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pixels that may lie in a cast shadow of a person in ``hole``: on her ground (below 80% of
    her height, within twice her height sideways), darker than their surroundings (a grey closing
    of radius ``width``) by a factor < ``darker`` at the same chromaticity (within ``chroma``).
    Thin lines are kept (a low sun casts shadows one or two pixels wide). Each component of the
    hole at least half as tall as the tallest is a person with her own ground; smaller ones (a
    racket or a ball apart from her) cast nothing worth a test, and their "ground" would be
    whatever lies below them in the air. Returns (candidates (H,W) bool, one (H,W) bool ground per
    person)."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    tallest = stats[1:, 3].max() if n > 1 else 0
    grounds = []
    for k in range(1, n):
        x, y, w, h, _ = stats[k]
        if h < 0.5 * tallest:
            continue
        ground = np.zeros(hole.shape, bool)
        ground[int(y + 0.8 * h) :, max(0, x - 2 * h) : x + w + 2 * h] = True
        ground &= ~hole
        if ground.any():
            grounds.append(ground)
    cand = np.zeros(hole.shape, bool)
    if not grounds:
        return cand, grounds
    # the test only on the grounds' bounding box, with the closing's reach around it
    ys, xs = np.nonzero(np.logical_or.reduce(grounds))
    y0, y1 = max(0, ys.min() - width), min(hole.shape[0], ys.max() + width + 1)
    x0, x1 = max(0, xs.min() - width), min(hole.shape[1], xs.max() + width + 1)
    f = img[y0:y1, x0:x1].astype(np.float32)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1,) * 2)
    # the closing on 8-bit values: 4x faster than on floats, and exact to the level
    around = cv2.morphologyEx((f * 255).round().astype(np.uint8), cv2.MORPH_CLOSE, disk).astype(np.float32) / 255
    lum, lum_bg = f.sum(axis=2), around.sum(axis=2)
    ratio = lum / np.maximum(lum_bg, 1e-3)
    rgb = f / np.maximum(lum, 1e-3)[..., None]
    rgb_bg = around / np.maximum(lum_bg, 1e-3)[..., None]
    cand[y0:y1, x0:x1] = ((ratio < darker) & (ratio > 0.2) & (np.abs(rgb - rgb_bg).max(axis=2) < chroma)
                          & (lum_bg > 0.15))
    return cand, grounds


def changed_pixels(img: np.ndarray, fill: np.ndarray, hole: np.ndarray, sure: np.ndarray, low: float,
                   grow: int, tolerance: int = 1) -> np.ndarray:
    """The part of ``hole`` (H,W bool) that the fill must replace: where the frame ``img`` differs
    from its filled background ``fill`` ((H,W,3) float in [0,1], ``img`` outside the hole) or
    ``sure`` says so (what no frame saw, a shadow), grown by ``grow`` px (the masks' own dilation,
    an octagon), and what that encloses. Differs: a channel outside the fill's range over
    ``tolerance`` px by more than ``low``, in a region of such pixels that holds one above 2.5 x
    ``low`` (hysteresis: specks of noise and of misaligned texture go). The rest of the hole is
    background that other frames saw as it is in this one: replacing it changes nothing, so the
    video keeps its own pixels there (a tree trunk or a painted wall inside a rider's mask)."""
    import cv2

    ys, xs = np.nonzero(hole)
    if len(ys) == 0:
        return hole.copy()
    h, w = hole.shape
    pad = tolerance + grow + 1
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, h)
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, w)
    a, b, m = img[y0:y1, x0:x1], fill[y0:y1, x0:x1], hole[y0:y1, x0:x1]
    if tolerance > 0:
        k = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
        diff = np.maximum(np.maximum(a - cv2.dilate(b, k), cv2.erode(b, k) - a), 0).max(axis=2)
    else:
        diff = np.abs(a - b).max(axis=2)
    diff[~m] = 0
    changed = hysteresis(diff, low, 2.5 * low) | sure[y0:y1, x0:x1]
    if grow > 0:
        changed = cv2.dilate(changed.astype(np.uint8), octagon(grow)) > 0
    kept = changed & m
    # what the kept part encloses stays too: a person's middle as dark as the wall behind her is
    # still her; only background that reaches the hole's edge (or the frame's) is given back
    n, labels = cv2.connectedComponents((~kept).astype(np.uint8), connectivity=4)
    if n > 2:
        open_ = np.zeros(n, bool)
        open_[np.unique(labels[~m])] = True
        for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
            open_[edge] = True
        open_[0] = True  # label 0: the kept pixels themselves
        kept |= ~open_[labels]
    out = np.zeros_like(hole)
    out[y0:y1, x0:x1] = kept
    return out
