"""Classical (not learned) fills of one image: what the ``telea``, ``navier-stokes`` and
``structure`` backends do, and the fill a residual network corrects (in inference and training).

Images: ``(H,W,3)`` uint8 RGB; holes: ``(H,W)`` bool, True = fill. Outside the hole the result is
the input. cv2 is imported lazily (no import-time cost for ``bgclean --help``).
"""

from __future__ import annotations

import numpy as np

METHODS = ("telea", "navier-stokes", "structure")

# structure fill, chosen on the held-out photos of bench/inpaint.py (bench/RESULTS.md, session 17)
_COHERENCE_LOW, _COHERENCE_HIGH = 0.15, 0.5  # no structure below, all of it above (ramp between)
_SPAN_LOW, _SPAN_HIGH = 3.0, 6.0  # span along the structure / width across the hole: full weight below, none above
_SOFTEN = 3.0  # Gaussian (px) smoothing the per-pixel weight, so no seam shows where it changes
_EDGE_SIGMA = 1.5  # the hole's border colours are averaged over this Gaussian (px), known pixels only
_ONE_SIDED = 3.0  # a line known on one side only counts as this many times longer
_MARGIN = 8  # px around the hole's box that the interpolation looks at (the colour averaging's reach)


def fill(img: np.ndarray, hole: np.ndarray, method: str = "telea", radius: int = 5) -> np.ndarray:
    """``img`` (H,W,3) uint8 filled inside ``hole`` (H,W) bool by ``method`` (one of ``METHODS``),
    (H,W,3) uint8. ``radius``: Telea's and Navier-Stokes' neighbourhood, px."""
    import cv2

    if method not in METHODS:
        raise ValueError(f"unknown classical fill {method!r}; choose one of: {', '.join(METHODS)}")
    if not hole.any():
        return img.copy()
    flag = cv2.INPAINT_NS if method == "navier-stokes" else cv2.INPAINT_TELEA
    out = cv2.inpaint(np.ascontiguousarray(img), hole.astype(np.uint8), radius, flag)
    return structure_fill(img, hole, out) if method == "structure" else out


def structure_fill(img: np.ndarray, hole: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Lines that cross the hole continue across it: where the known pixels around the hole have
    one dominant direction (a horizon, a shore, planks), each hole pixel is interpolated between
    the two known pixels on its line in that direction, and blended over ``base`` (a diffusion fill
    such as Telea, which mixes what lies above and below a horizon into a smear). The weight is the
    ring's coherence (how much one direction dominates), and per pixel, how short the line's span
    across the hole is against the hole's width there: along a hole that runs with the structure
    (a long shadow on a court's lines) the line would carry one end's colour far; ``base`` keeps
    that. (H,W,3) uint8 → (H,W,3) uint8, ``img`` outside the hole."""
    import cv2

    theta, coherence = dominant_direction(img, hole)
    strength = float(np.clip((coherence - _COHERENCE_LOW) / (_COHERENCE_HIGH - _COHERENCE_LOW), 0, 1))
    if strength == 0:
        return base.copy()
    # every line through the hole meets its first known pixels within the hole's box grown by the
    # colour averaging's reach: the rest of the image is not needed
    ys, xs = np.nonzero(hole)
    m = _MARGIN
    y0, y1 = max(0, ys.min() - m), min(hole.shape[0], ys.max() + 1 + m)
    x0, x1 = max(0, xs.min() - m), min(hole.shape[1], xs.max() + 1 + m)
    sub = hole[y0:y1, x0:x1]
    along, span = interpolate_along(img[y0:y1, x0:x1], sub, theta)
    width = 2 * (cv2.distanceTransform(sub.astype(np.uint8), cv2.DIST_L2, 3) + 1)
    weight = np.clip((_SPAN_HIGH - span / width) / (_SPAN_HIGH - _SPAN_LOW), 0, 1).astype(np.float32)
    inside = sub.astype(np.float32)  # softened over the hole's pixels only: the known ones say nothing
    weight = (cv2.GaussianBlur(weight * inside, (0, 0), _SOFTEN)
              / np.maximum(cv2.GaussianBlur(inside, (0, 0), _SOFTEN), 1e-6))
    weight = weight[..., None] * np.float32(strength)
    mixed = weight * along + (1 - weight) * base[y0:y1, x0:x1].astype(np.float32)
    out = base.copy()
    out[y0:y1, x0:x1] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    return np.where(hole[..., None], out, img)


def dominant_direction(img: np.ndarray, hole: np.ndarray) -> tuple[float, float]:
    """The direction lines run in around ``hole`` (radians; x right, y down, in [0, pi)) and how
    much it dominates (coherence of the structure tensor, 0 = none, 1 = parallel lines only), from
    the known pixels within half the hole's size of it (not the 2 px next to it, which a dilated
    mask's edge may still touch)."""
    import cv2

    gray = cv2.GaussianBlur(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.5)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    ys, xs = np.nonzero(hole)
    reach = max(8.0, 0.5 * max(np.ptp(ys) + 1, np.ptp(xs) + 1))
    dist = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)
    ring = ((dist > 2) & (dist < reach)).astype(np.float32)
    jxx, jyy, jxy = float((ring * gx * gx).sum()), float((ring * gy * gy).sum()), float((ring * gx * gy).sum())
    trace = jxx + jyy
    if trace <= 1e-9:
        return 0.0, 0.0
    coherence = float(np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / trace)
    gradient = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # the dominant gradient; lines run across it
    return float((gradient + np.pi / 2) % np.pi), coherence


def interpolate_along(img: np.ndarray, hole: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel interpolated (linearly, by distance) between the nearest known pixels before and
    after it on its line in direction ``theta`` (radians), from colours averaged over known pixels
    only; one side alone where the other leaves the image. → (H,W,3) float32 colours (0-255) and
    (H,W) float32 span: the length of the line's gap through the pixel, px (one-sided spans count
    ``_ONE_SIDED`` times; 1e6 where no known pixel lies on the line). Done by rotating the image so
    the lines are rows, scanning rows, and rotating back."""
    import cv2

    h, w = hole.shape
    known = cv2.erode((~hole).astype(np.float32), np.ones((3, 3), np.uint8))
    colour = img.astype(np.float32)
    num = cv2.GaussianBlur(colour * known[..., None], (0, 0), _EDGE_SIGMA)
    den = cv2.GaussianBlur(known, (0, 0), _EDGE_SIGMA)[..., None]
    colour = np.where(den > 0.3, num / np.maximum(den, 1e-6), colour)

    c, s = abs(np.cos(theta)), abs(np.sin(theta))
    W, H = int(np.ceil(w * c + h * s)) + 2, int(np.ceil(w * s + h * c)) + 2
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), float(np.degrees(theta)), 1.0)
    rot[0, 2] += W / 2 - w / 2
    rot[1, 2] += H / 2 - h / 2
    k = cv2.warpAffine(known, rot, (W, H), flags=cv2.INTER_LINEAR, borderValue=0) > 0.99
    col = cv2.warpAffine(colour, rot, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    x = np.broadcast_to(np.arange(W, dtype=np.int32), (H, W))
    left = np.maximum.accumulate(np.where(k, x, np.int32(-1)), axis=1)
    right = np.minimum.accumulate(np.where(k, x, np.int32(W))[:, ::-1], axis=1)[:, ::-1]
    has_l, has_r = left >= 0, right < W
    c_l = np.take_along_axis(col, np.clip(left, 0, W - 1)[..., None], axis=1)
    c_r = np.take_along_axis(col, np.clip(right, 0, W - 1)[..., None], axis=1)
    d_l = np.maximum(x - left, 1).astype(np.float32)
    d_r = np.maximum(right - x, 1).astype(np.float32)
    w_l, w_r = np.where(has_l, d_r, 0), np.where(has_r, d_l, 0)  # the nearer side weighs more
    out = (c_l * w_l[..., None] + c_r * w_r[..., None]) / np.maximum(w_l + w_r, 1e-9)[..., None]
    span = np.where(has_l & has_r, d_l + d_r,
                    np.where(has_l, _ONE_SIDED * d_l, np.where(has_r, _ONE_SIDED * d_r, 1e6))).astype(np.float32)

    back = cv2.invertAffineTransform(rot)
    out = cv2.warpAffine(out, back, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    span = cv2.warpAffine(span, back, (w, h), flags=cv2.INTER_NEAREST, borderValue=1e6)
    return out, span
