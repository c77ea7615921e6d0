"""Pure tensor operations shared by the stages (each tested on its own).

Frames: float ``(B,3,H,W)`` RGB in [0,1]. Masks: float ``(B,1,H,W)`` in {0,1} (or [0,1] for soft
maps), 1 = person / hole to fill.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from bgclean.errors import ShapeError


def check_frames(x: torch.Tensor, name: str = "frames") -> None:
    """Raise ShapeError unless ``x`` is a float (B,3,H,W) tensor."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        dtype = getattr(x, "dtype", None)
        raise ShapeError(f"{name}: expected a float tensor of shape (B,3,H,W), got {got} {dtype or ''}".strip())


def check_masks(m: torch.Tensor, like: torch.Tensor | None = None, name: str = "masks") -> None:
    """Raise ShapeError unless ``m`` is a (B,1,H,W) tensor matching ``like``'s B, H, W."""
    if not isinstance(m, torch.Tensor) or m.ndim != 4 or m.shape[1] != 1:
        got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
        raise ShapeError(f"{name}: expected shape (B,1,H,W), got {got}")
    if like is not None and (m.shape[0], *m.shape[2:]) != (like.shape[0], *like.shape[2:]):
        raise ShapeError(
            f"{name}: expected shape ({like.shape[0]},1,{like.shape[2]},{like.shape[3]}) to match the "
            f"frames, got {tuple(m.shape)}"
        )


def to_tensor(arrays: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """(H,W,3) uint8/uint16 arrays → (B,3,H,W) float in [0,1]."""
    scale = 65535.0 if arrays[0].dtype == np.uint16 else 255.0
    batch = torch.from_numpy(np.stack(arrays)).to(device)
    return batch.permute(0, 3, 1, 2).float().div_(scale)


def to_arrays(frames: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """(B,3,H,W) float in [0,1] → (B,H,W,3) arrays of ``dtype`` (uint8 or uint16)."""
    return to_integers(frames, dtype, 65535.0 if dtype == np.uint16 else 255.0)


def to_integers(frames: torch.Tensor, dtype=None, scale: float = 255.0):
    """``(B,3,H,W)`` float RGB in [0,1] → ``(B,H,W,3)`` numpy array of ``dtype`` (default uint8)
    holding ``round(clamp(x) * scale)``. One frame at a time, into one output array: the float
    temporaries are a frame's, not the window's (two window-sized float copies set the memory peak
    of the segmentation calls)."""
    import numpy as np

    check_frames(frames)
    b, _, h, w = frames.shape
    out = np.empty((b, h, w, 3), dtype or np.uint8)
    for i in range(b):
        out[i] = frames[i].permute(1, 2, 0).clamp(0, 1).mul_(scale).round_().cpu().numpy()
    return out


def max_filter(m: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """The max over a kh x kw window (odd sides, centred) of (B,C,H,W) ``m``, same size: a column
    pass then a row pass, the same values as one kh x kw max-pool at kh + kw comparisons per pixel
    instead of kh * kw (one large pool was a visible share of the segmentation time)."""
    if kh > 1:
        m = F.max_pool2d(m, (kh, 1), stride=1, padding=(kh // 2, 0))
    if kw > 1:
        m = F.max_pool2d(m, (1, kw), stride=1, padding=(0, kw // 2))
    return m



def frame_unit(h: int, w: int) -> float:
    """Pixels of an (h, w) frame per pixel of the same frame at 240 px on its shorter side: the
    scale the masks' and propagation's reaches and thresholds were set on (432x240 clips)."""
    return min(h, w) / 240


def dilate_masks(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilate (B,1,H,W) masks by ``radius`` px with an octagonal (near-disc) structuring element:
    alternating square and cross max-pools, so corners do not grow square. On a CPU the same steps
    as OpenCV dilations (the same values; a square kernel is separable there, so a 1280x720 mask
    at radius 14 takes 4.5 ms against 24 ms for one dilation by the whole octagon, and 1920x1080
    at radius 22 3.9 against 54)."""
    check_masks(masks)
    if radius <= 0:
        return masks
    if masks.device.type == "cpu":
        import cv2

        out = masks.detach().to(torch.float32).numpy().copy()
        for plane in out.reshape(-1, *out.shape[2:]):
            for r, square in _octagon_steps(radius):
                kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8) if square else _CROSS
                cv2.dilate(plane, kernel, dst=plane)
        return torch.from_numpy(out).to(masks.dtype)
    return dilate_by_pools(masks, radius)


_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)


def _octagon_steps(radius: int) -> list[tuple[int, bool]]:
    """The dilations whose sequence is the octagon of ``radius``: (radius, square?) each, squares
    of a quarter of the radius alternating with 3x3 crosses."""
    steps, remaining, square = [], radius, True
    while remaining > 0:
        r = min(remaining, max(1, radius // 4) if square else 1)
        steps.append((r, square))
        remaining -= r
        square = not square
    return steps


@functools.lru_cache(maxsize=16)
def octagon(radius: int):
    """``dilate_masks``' structuring element for ``radius``: (2r+1, 2r+1) uint8 (for OpenCV)."""
    point = torch.zeros(1, 1, 2 * radius + 1, 2 * radius + 1)
    point[..., radius, radius] = 1
    return (dilate_by_pools(point, radius)[0, 0] > 0).to(torch.uint8).numpy()


def dilate_by_pools(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """``dilate_masks`` as torch max-pools (any device)."""
    out = masks
    for r, square in _octagon_steps(radius):
        k = 2 * r + 1
        out = max_filter(out, k, k) if square else torch.maximum(max_filter(out, 1, k), max_filter(out, k, 1))
    return out


def erode_masks(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Erode (B,1,H,W) masks by ``radius`` px (the dual of ``dilate_masks``)."""
    return 1.0 - dilate_masks(1.0 - masks, radius)


def feather_alpha(masks: torch.Tensor, width: int) -> torch.Tensor:
    """Blend weights for pasting a fill: 1 deep inside the mask, ramping down over ``width`` px to
    ``1/width`` at its edge, and exactly 0 outside it. (B,1,H,W) in [0,1]."""
    check_masks(masks)
    if width <= 1:
        return masks.clone()
    if masks.device.type == "cpu" and bool(((masks == 0) | (masks == 1)).all()):
        # on a CPU, binary masks: the erosions' sum is the chessboard distance to the nearest
        # pixel outside (the image's border is not outside), capped at ``width``: the same values
        # from one OpenCV distance transform instead of ``width`` - 1 pools
        import cv2

        out = masks.detach().to(torch.float32).numpy().copy()
        for plane in out.reshape(-1, *out.shape[2:]):
            plane[...] = np.minimum(cv2.distanceTransform(plane.astype(np.uint8), cv2.DIST_C, 3), width)
        return torch.from_numpy(out).div_(width).to(masks.dtype)
    acc = masks.clone()
    cur = masks
    for _ in range(width - 1):
        cur = -max_filter(-cur, 3, 3)  # erode by one pixel
        acc = acc + cur
    return acc / width


def composite(frames: torch.Tensor, fill: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``frames`` where ``alpha`` is 0, ``fill`` where it is 1, blended between. Where alpha == 0
    the result is ``frames`` exactly (no arithmetic touches those pixels)."""
    check_frames(frames)
    check_frames(fill, "fill")
    check_masks(alpha, frames, "alpha")
    # in place: three window-sized temporaries would add to the peak memory
    out = fill - frames
    out.mul_(alpha).add_(frames)
    return torch.where(alpha > 0, out, frames, out=out)


def resize(x: torch.Tensor, size: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of (B,C,H,W) to ``size`` = (H,W); antialiased when shrinking."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[2] or size[1] < x.shape[3]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias and shrink)


def resize_known(x: torch.Tensor, hole: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``resize`` of (B,C,H,W) ``x`` from its known pixels only: ``hole`` (B,1,H,W), 1 = unknown. Each
    output pixel is the average of the known pixels under its antialiasing filter (normalised
    convolution), so what lies in a hole (the person being removed) never bleeds into the pixels
    around it, where a plain antialiased shrink would mix it in. 0 where the filter sees no known
    pixel. One image at a time: no batch-sized temporary."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    out = torch.empty(x.shape[0], x.shape[1], *size, dtype=x.dtype, device=x.device)
    for i in range(x.shape[0]):
        known = (hole[i : i + 1] <= 0).to(x.dtype)
        weight = resize(known, size)
        out[i : i + 1] = torch.where(weight > 1e-6, resize(x[i : i + 1] * known, size) / weight.clamp_min(1e-6), 0)
    return out


def resize_bicubic(x: torch.Tensor, size) -> torch.Tensor:
    """Bicubic resize of (B,C,H,W) in [0,1] to ``size`` = (H,W), antialiased when shrinking, clamped."""
    size = tuple(int(v) for v in size)
    if tuple(x.shape[2:]) == size:
        return x
    shrink = size[0] < x.shape[2] or size[1] < x.shape[3]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=shrink).clamp_(0, 1)


def tiled_upscale(fn, x: torch.Tensor, scale: int, tile: int, tile_pad: int = 16, pre_pad: int = 0,
                  batch_size: int = 4) -> torch.Tensor:
    """Apply an upscaling network ``fn`` ((N,C,h,w) → (N,C,sh,sw)) to ``x`` (B,C,H,W) in overlapping
    tiles, so memory is bounded by the tile, not the image.

    Each tile of ``tile`` px is cut with ``tile_pad`` px of context on every side (the image is
    reflect-padded by ``pre_pad + tile_pad`` first, so border tiles get context too); only each
    tile's centre is kept. Tiles are batched ``batch_size`` at a time. ``tile <= 0`` runs the whole
    image at once.
    """
    b, c, h, w = x.shape
    pad = pre_pad + tile_pad

    def padded(t: torch.Tensor, p: int) -> torch.Tensor:
        # reflect needs p < size; replicate is the fallback for tiny images
        mode = "reflect" if p < min(t.shape[2], t.shape[3]) else "replicate"
        return F.pad(t, (p, p, p, p), mode=mode) if p > 0 else t

    if tile <= 0 or (h <= tile and w <= tile):
        y = fn(padded(x, pad))
        return y[:, :, pad * scale : (pad + h) * scale, pad * scale : (pad + w) * scale]
    th, tw = min(tile, h), min(tile, w)
    ys = list(range(0, h - th, th)) + [h - th]
    xs = list(range(0, w - tw, tw)) + [w - tw]
    xp = padded(x, pad)
    out = x.new_zeros(b, c, h * scale, w * scale)
    boxes = [(y0, x0) for y0 in ys for x0 in xs]
    for start in range(0, len(boxes), max(1, batch_size)):
        group = boxes[start : start + batch_size]
        patches = torch.cat([xp[:, :, y0 : y0 + th + 2 * pad, x0 : x0 + tw + 2 * pad] for y0, x0 in group])
        res = fn(patches)
        for i, (y0, x0) in enumerate(group):
            centre = res[i * b : (i + 1) * b, :, pad * scale : (pad + th) * scale, pad * scale : (pad + tw) * scale]
            out[:, :, y0 * scale : (y0 + th) * scale, x0 * scale : (x0 + tw) * scale] = centre
    return out


def mask_boxes(mask: torch.Tensor, margin: int) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (y0, y1, x0, x1) of the connected regions of a (H,W) mask, grown by
    ``margin`` px and clipped to the image; overlapping boxes are merged."""
    import cv2
    import numpy as np

    m = (mask > 0).cpu().numpy().astype(np.uint8)
    h, w = m.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    boxes = []
    for i in range(1, n):
        x0, y0, bw, bh = stats[i, :4]
        boxes.append([max(0, y0 - margin), min(h, y0 + bh + margin), max(0, x0 - margin), min(w, x0 + bw + margin)])
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    boxes[i] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [(int(bx[0]), int(bx[1]), int(bx[2]), int(bx[3])) for bx in boxes]


def hysteresis(soft: np.ndarray, low: float, high: float) -> np.ndarray:
    """(H,W) probabilities → bool: regions above ``low`` that contain a pixel above ``high``."""
    return kept_regions(soft > low, soft > high)


def kept_regions(weak: np.ndarray, strong: np.ndarray, min_area: int = 0, cell_area: int = 1) -> np.ndarray:
    """(H,W) bool → bool: the 8-connected regions of ``weak`` that hold a pixel of ``strong`` and
    cover at least ``min_area`` px, each of their pixels counting ``cell_area`` px."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(weak.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(labels[strong])] = True
    keep[0] = False
    if min_area > 0:
        keep &= stats[:, cv2.CC_STAT_AREA] * cell_area >= min_area
    return keep[labels]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B,C,H,W) with reflect borders."""
    if sigma <= 0:
        return x
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)  # on the CPU: read back as Python floats
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    k: list[float] = (kernel / kernel.sum()).tolist()
    mode = "reflect" if radius < min(x.shape[2], x.shape[3]) else "replicate"
    # a sum of shifted copies, one pass per axis: the same values as a depthwise conv2d, whose CPU
    # kernel unfolds the image into 2 x radius + 1 copies (the largest transient of the still-camera
    # fill); this takes a fraction of the memory and of the time
    for dim in (3, 2):
        n = x.shape[dim]
        padded = F.pad(x, (radius, radius, 0, 0) if dim == 3 else (0, 0, radius, radius), mode=mode)
        x = padded.narrow(dim, 0, n) * k[0]
        for i in range(1, 2 * radius + 1):
            x.add_(padded.narrow(dim, i, n), alpha=k[i])
        del padded
    return x


def transfer_detail(detail: torch.Tensor, base: torch.Tensor, sigma: float) -> torch.Tensor:
    """``base``'s low frequencies with ``detail``'s high frequencies (split by a Gaussian of
    ``sigma`` px): keeps a super-resolved image's texture without its tone shifts."""
    return (gaussian_blur(base, sigma) + detail - gaussian_blur(detail, sigma)).clamp_(0, 1)
