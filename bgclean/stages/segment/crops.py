"""Crop geometry: where a person's crop is cut, and how a map made on one frame follows her box on the next."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bgclean.ops import resize
from bgclean.stages.segment.tracking import Track


@dataclass(eq=False)
class GoodMap:
    """A person's best recent map, kept for the frames where the network loses her."""

    age: int  # the keyframe it was made at
    patch: torch.Tensor  # (1,h,w) in her grown box then
    share: float  # the share of her box it covers
    recent: list  # (age, share, map) of her last keyframes


@dataclass(eq=False)
class Keyframe:
    """A crop segmented in one frame; until the track's next keyframe its map follows the box."""

    age: int  # the track's age (a person's) or the frame (a belonging's) it was made at
    box: list[float]  # x0, y0, x1, y1 then
    track: Track  # whose it is
    strong: bool = False  # the track was surely a person
    ellipse: bool = False  # a belonging's: its map is kept inside the ellipse of its box
    u2net: bool = False  # segmented by U²-Net where the person network would lose part of her
    prev: Keyframe | None = None  # the track's keyframe before...
    waiting: bool = False  # ...whose good map this one takes once that one's map is made
    good: GoodMap | None = None
    patch: torch.Tensor | None = None  # its map, cut to its grown box

def crop_place(box, margin: float, h: int, w: int):
    """For a x0,y0,x1,y1 box: the square crop window (Y0, Y1, X0, X1), which may overhang the frame,
    and the box grown by ``margin`` inside the frame (gy0, gy1, gx0, gx1); None when degenerate.

    Square, because U²-Net fails on people squashed into its square input, and also on tall narrow
    windows at their own aspect: without the context beside her, the salient object is elsewhere."""
    x0, y0, x1, y1 = box
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    grown = _grow_box(box, margin, h, w)
    side_px = max(x1 - x0 + 2 * mx, y1 - y0 + 2 * my)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    X0, Y0 = int(round(cx - side_px / 2)), int(round(cy - side_px / 2))
    X1, Y1 = X0 + int(round(side_px)), Y0 + int(round(side_px))
    grown = (max(grown[0], Y0), min(grown[1], Y1), max(grown[2], X0), min(grown[3], X1))
    if X1 - X0 >= 4 and grown[1] > grown[0] and grown[3] > grown[2]:
        return Y0, Y1, X0, X1, grown
    return None


def _grow_box(box, margin: float, h: int, w: int):
    """An x0,y0,x1,y1 box grown by ``margin`` of its size on each side, clipped to the frame, as
    (gy0, gy1, gx0, gx1)."""
    x0, y0, x1, y1 = box
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    return (max(0, int(y0 - my)), min(h, int(round(y1 + my))), max(0, int(x0 - mx)), min(w, int(round(x1 + mx))))


def _place_near(box, grown_boxes, margin: float, h: int, w: int):
    """``crop_place`` of ``box`` when it overlaps one of the people's ``grown_boxes`` (gy0, gy1,
    gx0, gx1), else None: only an animal or a thing beside a person needs a crop of its own."""
    return crop_place(box, margin, h, w) if any(_overlap(g, box) for g in grown_boxes) else None


def map_or_ellipse(patch: torch.Tensor, box, gy0: int, gx0: int, least: float = 0.15) -> torch.Tensor:
    """A crop's map (1,h,w) (placed at gy0, gx0 in the frame) of something the detector found in
    ``box``, or, where the map finds almost nothing inside the box (``least`` of it above 0.5: a dark
    racket against a busy banner, a small blurred girl in a 256 px still), with the ellipse
    inscribed in the box added: the detector saw it, so it goes."""
    x0, y0, x1, y1 = box
    ys = torch.arange(patch.shape[1], device=patch.device, dtype=torch.float32)[:, None] + gy0 + 0.5
    xs = torch.arange(patch.shape[2], device=patch.device, dtype=torch.float32)[None, :] + gx0 + 0.5
    cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, max((y1 - y0) / 2, 1.0), max((x1 - x0) / 2, 1.0)
    inside = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
    if inside.any() and (patch[0][inside] > 0.5).float().mean() < least:
        return torch.maximum(patch, inside[None].to(patch.dtype))
    return patch


def kept_map(patch: torch.Tensor, key: Keyframe, memory: int, lost: float = 0.4, window: int = 8) -> torch.Tensor:
    """A person's fresh map (1,h,w) of keyframe ``key``, or, where U²-Net lost her, her good map
    scaled onto her box. Lost: the map covers less than ``lost`` of the share of her box that her
    best map of the last ``window`` frames covered. The good map kept is that best one, while her
    last good map was made at most ``memory`` frames ago. A rider passing behind branches stops
    being the salient thing in his crop while the detector still follows him: his map fades to
    nothing. The best of a few frames, not
    the last map alone: segmented every frame, a map that fades over several frames passed each
    step, and the last of them was a poor one to keep."""
    share = float((patch > 0.5).float().mean())
    good = key.good
    recent = [r for r in (good.recent if good is not None else []) if key.age - r[0] < window]
    reference = max(r[1] for r in recent) if recent else None if good is None else good.share
    if reference is None or share >= lost * reference:  # U²-Net still finds her: a good map
        recent.append((key.age, share, patch))
        best = max(recent, key=lambda r: r[1])
        key.good = GoodMap(key.age, best[2], best[1], recent)
    elif good is not None and key.age - good.age <= memory:
        kept = resize(good.patch[None], (patch.shape[1], patch.shape[2]), antialias=False)[0]
        return torch.maximum(patch, kept)
    return patch


def followers(people: list[Track], every: int, fresh: int, margin: float, h: int, w: int) -> list[Track]:
    """The tracks whose last map follows their box in this frame instead of a new crop: of those
    that can (``_follows``), all but the oldest maps, so that at least ``fresh`` people get a new map
    each frame. A lone player is segmented every frame (a map that follows her box misses the limbs
    that moved), a crowd every ``every``-th, where most of the crops are saved."""
    can = [(t, t.key) for t in people if t.key is not None
           and _follows(t.box, t.key, t.age, every, margin, h, w)]
    budget = max(0, fresh - (len(people) - len(can)))
    can.sort(key=lambda tk: tk[1].age - tk[0].age)  # oldest map first
    return [t for t, _ in can[budget:]]


def _follows(box, key: Keyframe, age: int, every: int, margin: float, h: int, w: int) -> bool:
    """Whether the map of keyframe ``key`` ({"age", "box"}) can follow ``box`` at ``age``: made
    fewer than ``every`` frames ago, for a box of the same size (``similar``), and the box grown by
    ``margin`` lies inside the frame (``inside``)."""
    return age - key.age < every and similar(box, key.box) and inside(box, margin, h, w)


def similar(box, key_box, tolerance: float = 0.15) -> bool:
    """Whether a box has kept the width and height of ``key_box`` within ``tolerance``: a map made
    for one can be scaled onto the other. A lunge or a turn changes the box, and the person's shape
    with it: a map reused across them masks where she no longer is."""
    (x0, y0, x1, y1), (k0, l0, k1, l1) = box, key_box
    return abs((x1 - x0) / max(k1 - k0, 1e-6) - 1) < tolerance and abs((y1 - y0) / max(l1 - l0, 1e-6) - 1) < tolerance


def inside(box, margin: float, h: int, w: int) -> bool:
    """Whether the box grown by ``margin`` lies wholly inside an h x w frame (a map made for it can
    follow it by scaling; one cut by the frame edge cannot)."""
    x0, y0, x1, y1 = box
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    return x0 - mx >= 0 and y0 - my >= 0 and x1 + mx <= w and y1 + my <= h


def _box_window(box) -> tuple[slice, slice]:
    """Row and column slices of an x0,y0,x1,y1 box (float, may reach past the top-left edge)."""
    x0, y0, x1, y1 = box
    return slice(max(0, int(y0)), int(round(y1))), slice(max(0, int(x0)), int(round(x1)))


def _overlap(grown: tuple[int, int, int, int], box) -> bool:
    gy0, gy1, gx0, gx1 = grown
    return box[0] < gx1 and box[2] > gx0 and box[1] < gy1 and box[3] > gy0


def padded_crop(x: torch.Tensor, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """x[:, :, y0:y1, x0:x1] where the window may overhang the image: the overhang mirrors the
    image (edge-replicated where the mirror would need more than the image holds). A person cut by
    the frame edge, mirrored, is a whole body that U²-Net segments; replicated edge pixels are
    streaks that it takes for the salient object, and a black border hides him until he is well
    inside the frame."""
    import torch.nn.functional as F

    h, w = x.shape[2:]
    inner = x[:, :, max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    pads = (max(0, -x0), max(0, x1 - w), max(0, -y0), max(0, y1 - h))
    if not any(pads):
        return inner
    ih, iw = inner.shape[2:]
    mirror = max(pads[:2]) < iw and max(pads[2:]) < ih
    return F.pad(inner, pads, mode="reflect" if mirror else "replicate")
