"""Classical (not learned) fills of one image: what the ``telea``, ``navier-stokes`` and
``structure`` backends do, and the fill a residual network corrects (in inference and training).

Images: ``(H,W,3)`` uint8 RGB; holes: ``(H,W)`` bool, True = fill. Outside the hole the result is
the input. cv2 is imported lazily (no import-time cost for ``bgclean --help``).
"""

from __future__ import annotations

import numpy as np

METHODS = ("telea", "navier-stokes", "structure")

# structure fill, chosen on the held-out photos of bench/inpaint.py (bench/RESULTS.md, "Still-image fill")
_COHERENCE_LOW, _COHERENCE_HIGH = 0.15, 0.5  # no structure below, all of it above (ramp between)
_SPAN_LOW, _SPAN_HIGH = 3.0, 6.0  # span along the structure / width across the hole: full weight below, none above
_SOFTEN = 3.0  # Gaussian (px) smoothing the per-pixel weight, so no seam shows where it changes
_EDGE_SIGMA = 1.5  # the hole's border colours are averaged over this Gaussian (px), known pixels only
_ONE_SIDED = 3.0  # a line known on one side only counts as this many times longer
_MARGIN = 8  # px around the hole's box that the interpolation looks at (the colour averaging's reach)
_WINDOWS = (16, 32, 64, 128, 256, 512)  # half-sides of the windows a local direction is read in, px
_SMOOTH = 12.0  # Gaussian (px) smoothing the local structure tensors over the hole (no seam between windows)
_BINS = 16  # directions the lines are interpolated in (each pixel's shared between the nearest two)
_LEAST_SHARE = 0.03  # a direction that less of the hole's weight than this runs in is not interpolated


def fill(img: np.ndarray, hole: np.ndarray, method: str = "telea", radius: int = 5) -> np.ndarray:
    """``img`` (H,W,3) uint8 filled inside ``hole`` (H,W) bool by ``method`` (one of ``METHODS``),
    (H,W,3) uint8. ``radius``: Telea's and Navier-Stokes' neighbourhood, px."""
    import cv2

    if method not in METHODS:
        raise ValueError(f"unknown classical fill {method!r}; choose one of: {', '.join(METHODS)}")
    if not hole.any():
        return img.copy()
    flag = cv2.INPAINT_NS if method == "navier-stokes" else cv2.INPAINT_TELEA
    # OpenCV's fills can read a little of the pixels under the mask (a level or two of a person's
    # colour came through): they get none to read
    known = np.where(hole[..., None], np.uint8(0), img)
    out = cv2.inpaint(known, hole.astype(np.uint8), radius, flag)
    return structure_fill(img, hole, out) if method == "structure" else out


def structure_fill(img: np.ndarray, hole: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Lines that cross the hole continue across it: where the known pixels near a hole pixel have
    one dominant direction (a horizon, a shore, a bench's slats), the pixel is interpolated between
    the two known pixels on its line in that direction, and blended over ``base`` (a diffusion fill
    such as Telea, which mixes what lies above and below a horizon into a smear). The direction is
    local (``local_directions``: the slats beside a person and the pavement under her differ). The
    weight is that direction's coherence (how much it dominates), and how short the line's span
    across the hole is against the hole's width there: along a hole that runs with the structure
    (a long shadow on a court's lines) the line would carry one end's colour far; ``base`` keeps
    that. (H,W,3) uint8 → (H,W,3) uint8, ``img`` outside the hole."""
    return structure_fill_and_weight(img, hole, base)[0]


def structure_fill_and_weight(img: np.ndarray, hole: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``structure_fill`` and the (H,W) float32 weight its lines had over ``base`` at each pixel
    (0 outside the hole)."""
    import cv2

    # the hole's own pixels (the person being removed) must not steer the directions or the edge
    # colours measured around it: the diffusion fill stands in for them
    img = np.where(hole[..., None], base, img)

    # every line through the hole meets its first known pixels within the hole's box grown by the
    # colour averaging's reach: the rest of the image is not needed for the lines
    ys, xs = np.nonzero(hole)
    m = _MARGIN
    y0, y1 = max(0, ys.min() - m), min(hole.shape[0], ys.max() + 1 + m)
    x0, x1 = max(0, xs.min() - m), min(hole.shape[1], xs.max() + 1 + m)
    ys, xs = ys - y0, xs - x0
    sub = hole[y0:y1, x0:x1]
    theta, coherence = local_directions(img, hole, (y0, x0), sub, ys, xs)
    strength = np.clip((coherence - _COHERENCE_LOW) / (_COHERENCE_HIGH - _COHERENCE_LOW), 0, 1)
    total = float(strength.sum())
    if total == 0:
        return base.copy(), np.zeros(hole.shape, np.float32)
    colour, known = _edge_colours(img[y0:y1, x0:x1], sub)
    # the hole's width where the pixel lies (not twice its distance to the edge, which near the
    # edge made every line across look long and gave those pixels to base)
    width = 2 * (thickness(sub) + 1)[ys, xs]
    # each pixel's direction shared linearly between the two nearest of _BINS directions
    pos = theta * (_BINS / np.pi)
    lo = np.floor(pos).astype(np.int64) % _BINS
    hi = (lo + 1) % _BINS
    frac = (pos - np.floor(pos)).astype(np.float32)
    mass = (np.bincount(lo, (1 - frac) * strength, _BINS) + np.bincount(hi, frac * strength, _BINS))
    live = strength > 0
    acc = np.zeros((len(ys), 3), np.float32)
    wsum = np.zeros(len(ys), np.float32)
    for b in np.nonzero(mass >= _LEAST_SHARE * total)[0]:  # too little weight for a pass: base keeps it
        sel = np.nonzero(live & ((lo == b) | (hi == b)))[0]
        share = np.where(lo[sel] == b, 1 - frac[sel], 0) + np.where(hi[sel] == b, frac[sel], 0)
        along, span = _along_at(colour, known, b * np.pi / _BINS, ys[sel], xs[sel])
        gate = np.clip((_SPAN_HIGH - span / width[sel]) / (_SPAN_HIGH - _SPAN_LOW), 0, 1)
        wgt = (share * gate).astype(np.float32)
        acc[sel] += wgt[:, None] * along
        wsum[sel] += wgt
    at = base[y0:y1, x0:x1].astype(np.float32)[ys, xs]
    line = np.where((wsum > 1e-3)[:, None], acc / np.maximum(wsum, 1e-6)[:, None], at)
    # softened over the hole's pixels only: the known ones say nothing
    weight = np.zeros(sub.shape, np.float32)
    weight[ys, xs] = strength * np.minimum(wsum, 1)
    inside = sub.astype(np.float32)
    weight = (cv2.GaussianBlur(weight, (0, 0), _SOFTEN)
              / np.maximum(cv2.GaussianBlur(inside, (0, 0), _SOFTEN), 1e-6))[ys, xs, None]
    out = base.copy()
    out[ys + y0, xs + x0] = np.clip(np.round(weight * line + (1 - weight) * at), 0, 255).astype(np.uint8)
    out = np.where(hole[..., None], out, img)
    full = np.zeros(hole.shape, np.float32)
    full[ys + y0, xs + x0] = weight[:, 0]
    return out, full


def thickness(hole: np.ndarray) -> np.ndarray:
    """Half the local width of the hole at each of its pixels: the radius of the largest disc
    inside the hole that (roughly) covers the pixel, px (powers of two from 1 up)."""
    import cv2

    dist = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    out = dist.copy()
    r = 2
    while r <= dist.max():
        # within r of a pixel at least r inside: one distance transform, whatever r (a dilation by
        # a disc of radius r cost time growing with r)
        near = cv2.distanceTransform((dist < r).astype(np.uint8), cv2.DIST_L2, 3) <= r
        out = np.where(near & hole, np.maximum(out, r), out)
        r *= 2
    return out


def local_directions(img: np.ndarray, hole: np.ndarray, origin: tuple[int, int], sub: np.ndarray,
                     ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The direction lines run in near each hole pixel (``ys``, ``xs``: its coordinates in ``sub``,
    the part of ``hole`` from ``origin`` on) and how much it dominates: the structure tensor of the
    known pixels (not the 2 px next to the hole, which a dilated mask's edge may still touch) in a
    square window around the pixel that reaches as far past the hole's edge as the pixel lies
    inside it (half-sides of 16, 32, ... 512 px, the smallest that holds a band of known pixels),
    then smoothed over the hole. → radians (x right, y down, in [0, pi)) and coherence (0 = no
    direction, 1 = parallel lines only), one per pixel."""
    import cv2

    gray = cv2.GaussianBlur(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.5)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    ring = (cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3) > 2).astype(np.float32)
    sums = cv2.integral(np.dstack([ring * gx * gx, ring * gy * gy, ring * gx * gy, ring]), sdepth=cv2.CV_64F)
    h, w = hole.shape
    gy_, gx_ = ys + origin[0], xs + origin[1]
    need = 2 * cv2.distanceTransform(sub.astype(np.uint8), cv2.DIST_L2, 3)[ys, xs] + 8
    tensor = np.zeros((len(ys), 3), np.float32)
    todo = np.ones(len(ys), bool)
    for half in _WINDOWS:
        last = half == _WINDOWS[-1]
        sel = np.nonzero(todo & ((need <= half) | last))[0]
        if not len(sel):
            continue
        a0, a1 = np.clip(gy_[sel] - half, 0, h), np.clip(gy_[sel] + half + 1, 0, h)
        b0, b1 = np.clip(gx_[sel] - half, 0, w), np.clip(gx_[sel] + half + 1, 0, w)
        box = sums[a1, b1] - sums[a0, b1] - sums[a1, b0] + sums[a0, b0]
        ok = (box[:, 3] >= 4 * half) | last
        sel = sel[ok]
        tensor[sel] = box[ok, :3] / np.maximum(box[ok, 3:], 1)
        todo[sel] = False
    field = np.zeros(sub.shape + (3,), np.float32)
    field[ys, xs] = tensor
    inside = sub.astype(np.float32)
    tensor = (cv2.GaussianBlur(field, (0, 0), _SMOOTH)
              / np.maximum(cv2.GaussianBlur(inside, (0, 0), _SMOOTH), 1e-6)[..., None])[ys, xs]
    jxx, jyy, jxy = tensor[:, 0], tensor[:, 1], tensor[:, 2]
    trace = jxx + jyy
    coherence = np.where(trace > 1e-6, np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / np.maximum(trace, 1e-9), 0)
    gradient = 0.5 * np.arctan2(2 * jxy, jxx - jyy)  # the dominant gradient; lines run across it
    return ((gradient + np.pi / 2) % np.pi).astype(np.float32), coherence.astype(np.float32)


def interpolate_along(img: np.ndarray, hole: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel interpolated (linearly, by distance) between the nearest known pixels before and
    after it on its line in direction ``theta`` (radians), from colours averaged over known pixels
    only; one side alone where the other leaves the image. → (H,W,3) float32 colours (0-255) and
    (H,W) float32 span: the length of the line's gap through the pixel, px (one-sided spans count
    ``_ONE_SIDED`` times; 1e6 where no known pixel lies on the line)."""
    colour, known = _edge_colours(img, hole)
    ys, xs = np.indices(hole.shape).reshape(2, -1)
    along, span = _along_at(colour, known, theta, ys, xs)
    return along.reshape(*hole.shape, 3), span.reshape(hole.shape)


def _edge_colours(img: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The colours a line takes from its known ends: averaged over known pixels only (Gaussian of
    ``_EDGE_SIGMA``), float32 (H,W,3); and where pixels count as known (not within 1 px of the
    hole), float32 (H,W) in {0, 1}."""
    import cv2

    known = cv2.erode((~hole).astype(np.float32), np.ones((3, 3), np.uint8))
    colour = img.astype(np.float32)
    num = cv2.GaussianBlur(colour * known[..., None], (0, 0), _EDGE_SIGMA)
    den = cv2.GaussianBlur(known, (0, 0), _EDGE_SIGMA)[..., None]
    return np.where(den > 0.3, num / np.maximum(den, 1e-6), colour), known


def _along_at(colour: np.ndarray, known: np.ndarray, theta: float, ys: np.ndarray,
              xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``interpolate_along`` at the pixels (``ys``, ``xs``) only: (N,3) colours and (N,) spans. The
    image is rotated so the lines are rows (only the rows those pixels lie on), the rows scanned for
    the nearest known pixel either way, and each pixel read between its two nearest rows."""
    import cv2

    h, w = known.shape
    c, s = abs(np.cos(theta)), abs(np.sin(theta))
    W, H = int(np.ceil(w * c + h * s)) + 2, int(np.ceil(w * s + h * c)) + 2
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), float(np.degrees(theta)), 1.0)
    rot[0, 2] += W / 2 - w / 2
    rot[1, 2] += H / 2 - h / 2
    u = rot[0, 0] * xs + rot[0, 1] * ys + rot[0, 2]
    v = rot[1, 0] * xs + rot[1, 1] * ys + rot[1, 2]
    r0 = max(0, int(np.floor(v.min())) - 1)
    rows = min(H, int(np.ceil(v.max())) + 2) - r0
    rot[1, 2] -= r0
    k = cv2.warpAffine(known, rot, (W, rows), flags=cv2.INTER_LINEAR, borderValue=0) > 0.99
    col = cv2.warpAffine(colour, rot, (W, rows), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    x = np.arange(W, dtype=np.int32)
    left = np.maximum.accumulate(np.where(k, x, np.int32(-1)), axis=1)
    right = np.minimum.accumulate(np.where(k, x, np.int32(W))[:, ::-1], axis=1)[:, ::-1]
    ui = np.clip(np.round(u).astype(np.int64), 0, W - 1)
    v = np.clip(v - r0, 0, rows - 1)
    va = np.floor(v).astype(np.int64)
    vb = np.minimum(va + 1, rows - 1)
    fb = (v - va).astype(np.float32)

    def read(vi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lft, rgt = left[vi, ui], right[vi, ui]
        has_l, has_r = lft >= 0, rgt < W
        d_l = np.maximum(ui - lft, 1).astype(np.float32)
        d_r = np.maximum(rgt - ui, 1).astype(np.float32)
        w_l, w_r = np.where(has_l, d_r, 0), np.where(has_r, d_l, 0)  # the nearer side weighs more
        c_l, c_r = col[vi, np.clip(lft, 0, W - 1)], col[vi, np.clip(rgt, 0, W - 1)]
        out = (c_l * w_l[:, None] + c_r * w_r[:, None]) / np.maximum(w_l + w_r, 1e-9)[:, None]
        out = np.where((has_l | has_r)[:, None], out, col[vi, ui])
        span = np.where(has_l & has_r, d_l + d_r,
                        np.where(has_l, _ONE_SIDED * d_l, np.where(has_r, _ONE_SIDED * d_r, 1e6)))
        return out, span.astype(np.float32)

    out_a, span_a = read(va)
    out_b, span_b = read(vb)
    return out_a * (1 - fb[:, None]) + out_b * fb[:, None], np.maximum(span_a, span_b)
