"""Person-shaped holes, shared by training and by fine-tuning on a video: real silhouettes, scaled,
placed and dilated, several per image; plus the user's recipe (tall rectangles centred by normal
sampling, with a few scribbles).

Masks are (H,W) bool numpy arrays, True = hole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def silhouettes_from_masks(folder: Path, ids: tuple[int, ...] | None = None, every: int = 4) -> list[np.ndarray]:
    """Connected person silhouettes from a folder of ground-truth mask PNGs (palette or binary):
    pixels whose value is in ``ids`` (any nonzero value when None), every ``every``-th frame, each
    cropped to its bounding box. Tiny blobs (< 200 px) are skipped."""
    import cv2
    from PIL import Image

    out = []
    for path in sorted(Path(folder).glob("*.png"))[::every]:
        a = np.array(Image.open(path))
        if a.ndim == 3:
            a = a[..., 0]
        m = np.isin(a, ids) if ids else a > 0
        n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
        for k in range(1, n):
            x, y, w, h, area = stats[k]
            if area >= 200:
                out.append(labels[y : y + h, x : x + w] == k)
    return out


def place_silhouette(sil: np.ndarray, side: int, frac: float, rng: np.random.Generator,
                     dilate: int = 0) -> np.ndarray:
    """``sil`` scaled so its area is about ``frac`` of a ``side``x``side`` image, randomly flipped,
    placed at a random position (it may overhang the border, as people at a frame edge do), dilated
    by ``dilate`` px."""
    import cv2

    s = np.sqrt(frac * side * side / max(int(sil.sum()), 1)) * rng.uniform(0.85, 1.15)
    h, w = max(3, int(sil.shape[0] * s)), max(3, int(sil.shape[1] * s))
    if max(h, w) > 1.4 * side:  # keep it inside a sane size
        r = 1.4 * side / max(h, w)
        h, w = max(3, int(h * r)), max(3, int(w * r))
    m = cv2.resize(sil.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    if rng.random() < 0.5:
        m = m[:, ::-1]
    out = np.zeros((side + 2 * h, side + 2 * w), np.uint8)
    y = rng.integers(h - h // 3, side + h // 3 + 1)
    x = rng.integers(w - w // 3, side + w // 3 + 1)
    out[y : y + h, x : x + w] = m
    out = out[h : h + side, w : w + side]
    if dilate > 0:
        out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1)))
    return out > 0


def tall_rectangles(side: int, rng: np.random.Generator, count: int = 2, scribbles: int = 2) -> np.ndarray:
    """The user's recipe: ``count`` tall rectangles (height 1.5-3x width) whose centres are drawn from
    a normal distribution around the image centre, and a few random scribbles."""
    import cv2

    m = np.zeros((side, side), np.uint8)
    for _ in range(count):
        w = int(side * rng.uniform(0.08, 0.25))
        h = int(min(side * 0.95, w * rng.uniform(1.5, 3.0)))
        cx, cy = (np.clip(rng.normal(0.5, 0.18, 2), 0.05, 0.95) * side).astype(int)
        m[max(0, cy - h // 2) : cy + h // 2, max(0, cx - w // 2) : cx + w // 2] = 1
    for _ in range(scribbles):
        pts = rng.integers(0, side, (int(rng.integers(2, 6)), 2))
        cv2.polylines(m, [pts.reshape(-1, 1, 2).astype(np.int32)], False, 1, int(rng.integers(3, max(4, side // 20))))
    return m > 0


class HoleSampler:
    """Random training holes: with probability ``rect_prob`` the user's rectangles + scribbles,
    otherwise 1-``max_holes`` real silhouettes; the total hole area is kept between ``area[0]`` and
    ``area[1]`` of the image (redrawn otherwise)."""

    def __init__(self, silhouettes: list[np.ndarray], rect_prob: float = 0.25, max_holes: int = 3,
                 area: tuple[float, float] = (0.03, 0.4), max_dilate: int = 6):
        if not silhouettes and rect_prob < 1:
            raise ValueError("no silhouettes: give mask folders or set rect_prob to 1")
        self.sils, self.rect_prob, self.max_holes = silhouettes, rect_prob, max_holes
        self.area, self.max_dilate = area, max_dilate

    def __call__(self, side: int, rng: np.random.Generator) -> np.ndarray:
        for _ in range(20):
            if rng.random() < self.rect_prob:
                m = tall_rectangles(side, rng, int(rng.integers(1, 3)), int(rng.integers(0, 3)))
            else:
                m = np.zeros((side, side), bool)
                n = int(rng.integers(1, self.max_holes + 1))
                for _ in range(n):
                    frac = rng.uniform(self.area[0], self.area[1]) / n
                    sil = self.sils[int(rng.integers(len(self.sils)))]
                    m |= place_silhouette(sil, side, frac, rng, int(rng.integers(0, self.max_dilate + 1)))
            if self.area[0] * 0.5 <= m.mean() <= self.area[1] * 1.25:
                return m
        return m
