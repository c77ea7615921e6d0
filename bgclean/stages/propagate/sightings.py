"""One value per hole pixel from the frames that saw it: robust statistics over sightings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bgclean.stages.propagate.alignment import _gray, exposure_ring


def nan_statistic(stack: np.ndarray, count: np.ndarray, quantile: float = 0.5, trim: float = 0.0) -> np.ndarray:
    """Per pixel, the ``quantile`` of its sightings: ``stack`` (S,P,C) with NaN where a frame did
    not see the pixel, ``count`` (P,) the sightings each has. The median (0.5) is the lower middle
    value (an observed pixel, never an average of two), other quantiles interpolate linearly; 0
    where nothing saw the pixel. One sort along the sources: 0.7 ms for 12 sightings of 3,000 px
    where torch's nanquantile took 10 ms, and torch's threads slowed it far more whenever another
    process held a core (batch jobs running side by side).

    ``trim`` > 0 (with ``quantile`` 0.5): the trimmed mean instead, the mean of what is left when
    ceil(``trim`` x n) sightings are dropped at each end (never the middle one or two): 3 sightings
    give their median, 4 the mean of the middle 2, 5 of the middle 3. Robust to an outlier as the
    median is, and less noisy: a better and steadier fill with a moving camera (bench/RESULTS.md,
    "Video fill with known truth")."""
    ordered = np.sort(stack, axis=0)  # NaN sorts last
    last = np.maximum(count - 1, 0)
    if quantile == 0.5 and trim > 0:
        cut = np.minimum(last // 2, np.ceil(count * trim).astype(int))
        rank = np.arange(stack.shape[0])[:, None]
        kept = (rank >= cut) & (rank < count - cut)  # (S,P): NaNs lie beyond count, never kept
        np.copyto(ordered, 0, where=~kept[..., None])  # in place: no second (S,P,C) buffer
        total = ordered.sum(axis=0)
        out = total / np.maximum(count - 2 * cut, 1)[:, None].astype(stack.dtype)
    elif quantile == 0.5:
        out = np.take_along_axis(ordered, (last // 2)[None, :, None], axis=0)[0]
    else:
        pos = quantile * last
        lo = np.floor(pos).astype(int)
        frac = (pos - lo).astype(stack.dtype)[:, None]
        below = np.take_along_axis(ordered, lo[None, :, None], axis=0)[0]
        above = np.take_along_axis(ordered, np.minimum(lo + 1, last)[None, :, None], axis=0)[0]
        out = below + (above - below) * frac
    out[count == 0] = 0
    return out


def _joined(region: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """(H,W) bool: the pixels of the 8-connected components of ``region | seed`` that hold a
    ``seed`` pixel (what of ``region`` connects to the hole, with the hole)."""
    import cv2

    _, labels = cv2.connectedComponents((region | seed).astype(np.uint8), connectivity=8)
    touching = np.unique(labels[seed])
    return np.isin(labels, touching[touching > 0])


def ring_error(source: np.ndarray, m: np.ndarray, ring: tuple[np.ndarray, np.ndarray],
                target_values: np.ndarray) -> float:
    """Mean |luminance difference| (8-bit levels) between the target's pixels ``ring`` (ys, xs in
    the target frame; their grey ``target_values``) and the source (H,W,3 float) sampled where
    homography ``m`` (source -> target) puts them; inf when the source sees too few of them."""
    import cv2

    step = max(1, -(-len(ring[0]) // 30000))  # a remap map is at most 32767 wide
    ring, target_values = (ring[0][::step], ring[1][::step]), target_values[::step]
    pts = np.stack([ring[1], ring[0]], -1).astype(np.float32).reshape(-1, 1, 2)
    src = cv2.perspectiveTransform(pts, np.linalg.inv(m)).reshape(-1, 2)
    h, w = source.shape[:2]
    inside = (src[:, 0] >= 0) & (src[:, 0] <= w - 1) & (src[:, 1] >= 0) & (src[:, 1] <= h - 1)
    if inside.sum() < 50:
        return float("inf")
    # bilinear samples at the points, by one remap over a 1 x N map
    rgb = cv2.remap(source, np.ascontiguousarray(src[inside, 0])[None], np.ascontiguousarray(src[inside, 1])[None],
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
    lum = 255 * (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])
    return float(np.abs(lum - target_values[inside]).mean())


def source_order(count: int, t_index: int, nearest: int, max_sources: int) -> list[int]:
    """The sources for frame ``t_index``, nearest in time first (the least camera drift and
    lighting change); with ``max_sources`` > 0 at most that many: the ``nearest`` closest, then
    the rest spread evenly over the buffer (frames where the person stood elsewhere)."""
    order = sorted((k for k in range(count) if k != t_index), key=lambda k: abs(k - t_index))
    if max_sources and len(order) > max_sources:
        near = min(max(nearest, 1), max_sources)
        rest = order[near:]
        if max_sources > near:
            order = order[:near] + rest[:: -(-len(rest) // (max_sources - near))]
        else:
            order = order[:near]
    return order


@dataclass(frozen=True)
class SightingCrop:
    """The part of a frame the sightings are gathered in: its corner, size (w, h), the homography
    from frame to crop coordinates, and the flow's smoothing there."""

    y0: int
    x0: int
    size: tuple[int, int]
    from_frame: np.ndarray
    sigma: float


@dataclass(frozen=True)
class Reference:
    """The frame being filled, in the crop: what sources are aligned to."""

    image: np.ndarray  # (h,w,3) float
    visible: np.ndarray  # (h,w) bool: its background
    gray: np.ndarray
    ring_in_window: tuple[np.ndarray, np.ndarray]  # a sample of the background ring around the holes
    ring: tuple[np.ndarray, np.ndarray]  # the same in frame coordinates
    ring_values: np.ndarray  # its grey there

    @classmethod
    def around(cls, target, y0: int, y1: int, x0: int, x1: int) -> Reference:
        image, visible = target[0][y0:y1, x0:x1], target[1][y0:y1, x0:x1]
        gray = _gray(image)
        ring_y, ring_x = np.nonzero(exposure_ring(visible))
        step = max(1, len(ring_y) // 2000)  # a sample is enough to compare two alignments
        ring_y, ring_x = ring_y[::step], ring_x[::step]
        return cls(image, visible, gray, (ring_y, ring_x), (ring_y + y0, ring_x + x0), gray[ring_y, ring_x])
