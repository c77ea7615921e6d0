"""The propagation stage: real background seen in other frames copied into each frame's holes."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import torch

from bgclean.ops import check_frames, check_masks, frame_unit
from bgclean.stages.propagate.alignment import (
    corner_shift,
    exposure_gains,
    flow_sigma,
    good_corners,
    homography_from_features,
    orb_features,
    padded_box,
    residual_flow,
    track_fit,
    track_refined,
)
from bgclean.stages.propagate.config import PropagateConfig
from bgclean.stages.propagate.invented import InventedPixels
from bgclean.stages.propagate.shadows import changed_pixels, shadow_candidates
from bgclean.stages.propagate.sightings import (
    Reference,
    SightingCrop,
    _joined,
    nan_statistic,
    ring_error,
    source_order,
)
from bgclean.tuning import release_freed_memory


class PropagateStage:
    """``frames (B,3,H,W)`` in [0,1] and hole ``masks (B,1,H,W)`` → (frames with every hole pixel
    that another frame saw replaced by that real background, the holes that remain (B,1,H,W)).

    Stateful across windows of one video (history buffer, camera path); ``reset()`` between videos.
    """

    def __init__(self, cfg: PropagateConfig):
        self.cfg = cfg
        self.reset()

    def limit_history(self, frames: int) -> None:
        """Keep at most ``frames`` past frames, fewer than configured (large frames, little memory)."""
        for name in ("history", "_history_corners", "_history_grays"):
            setattr(self, name, deque(getattr(self, name), maxlen=max(0, min(frames, self.cfg.history))))

    def reset(self) -> None:
        # each entry: (frame (H,W,3) float16, visible (H,W) bool, pose 3x3: this frame -> reference)
        self.history: deque = deque(maxlen=max(0, self.cfg.history))
        self._history_corners: deque = deque(maxlen=max(0, self.cfg.history))  # corners to track, or None
        self._history_grays: deque = deque(maxlen=max(0, self.cfg.history))  # 8-bit grey, beside history
        self._grays: list = []  # their 8-bit grey frames
        self._valid: list = []  # their background masks (H,W) bool
        self._corners: list = []  # their corners to track (N,1,2) float32, None until needed
        self._pairs: dict = {}  # (source, target) index in this call's sources -> homography
        self._last_gray: np.ndarray | None = None  # the previous frame's grey and background
        self._last_valid: np.ndarray | None = None
        self._last_step = np.eye(3)  # its camera step (frame -> previous frame)
        self._last_corners: np.ndarray | None = None  # its corners to track, when they were needed
        self._last_pose = np.eye(3)
        self.static = True  # every motion so far snapped to the identity
        self.invented = InventedPixels()  # still camera: invented fill, reused for zero flicker

    def fill_unseen(self, filled: torch.Tensor, remaining: torch.Tensor,
                    invent: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
        """Still camera: fill what no frame saw (``remaining`` (B,1,H,W)) in ``filled`` (B,3,H,W),
        in place, a frame at a time, so that each reuses what the frames before it invented
        (``invent(frame, holes)`` is called for what is new). Returns False, doing nothing, for a
        moving camera: its fill cannot be kept per pixel."""
        if not self.static:
            self.invented.reset()
            return False
        with torch.inference_mode():  # into the caller's tensor: no second window-sized copy
            for i in range(filled.shape[0]):
                filled[i : i + 1] = self.invented.fill(filled[i : i + 1], remaining[i : i + 1], invent)
        return True

    def _pose(self, gray: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Pose (frame → reference) of a new frame, chained from the previous frame's. The step
        from the previous frame: its corners tracked from where the last step's motion would put
        them (a camera keeps moving as it moved), refit; where that fits less than half of them (a
        jolt, a cut), ORB features matched between the two frames first."""
        self._last_corners = None
        last_gray, last_valid = self._last_gray, self._last_valid
        if last_gray is None or last_valid is None:
            pose = np.eye(3)
        else:
            self._last_corners = corners = good_corners(gray, valid)  # kept for its pairs too
            h, fits = track_fit(gray, last_gray, last_valid, self._last_step, corners)
            if h is None or fits < 0.5:
                guess = homography_from_features(orb_features(gray, valid, self.cfg.max_features),
                                                 orb_features(last_gray, last_valid, self.cfg.max_features))
                h = None if guess is None else track_refined(gray, last_gray, last_valid, guess, corners)
            if h is None or corner_shift(h, gray.shape[1], gray.shape[0]) <= self.cfg.static_px:
                h = np.eye(3)  # static (or unknown: assume still rather than guess)
            else:
                self.static = False
            self._last_step = h
            pose = self._last_pose @ h
        self._last_pose = pose
        self._last_gray, self._last_valid = gray, valid
        return pose

    def _source_to_target(self, k: int, t: int, chained: np.ndarray) -> np.ndarray:
        """Homography from source ``k`` to target ``t`` (indices into this call's sources): the
        ``chained`` camera path (frame-to-frame homographies multiplied) refit directly between
        the two frames by corners tracked from one into the other (``track_refined``); ``chained``
        itself when too few track. Chaining adds each step's error; refitting it to the pair
        removes that error, more closely than a direct ORB match of the pair, whose matching it
        also saves. On scenes of several planes the refit
        follows the plane with most corners, so ``_sightings`` keeps whichever of the two aligns
        better."""
        if (k, t) not in self._pairs:
            if (t, k) in self._pairs:  # the reverse pair is known: invert it
                back = self._pairs[t, k]
                self._pairs[k, t] = None if back is None else np.linalg.inv(back)
            else:
                self._pairs[k, t] = self._track_refined(k, t, chained)
        direct = self._pairs[k, t]
        return chained if direct is None else direct

    def _track_refined(self, k: int, t: int, homography: np.ndarray) -> np.ndarray:
        """``track_refined`` for sources ``k`` -> ``t`` of this call (each source's corners found once)."""
        if self._corners[k] is None:
            self._corners[k] = good_corners(self._grays[k], self._valid[k])
        return track_refined(self._grays[k], self._grays[t], self._valid[t], homography, self._corners[k])

    def _sightings(self, sources, t_index: int, pose_t: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                   shape: tuple[int, int], nearest: int | None = None,
                   max_sources: int = 0, target=None, quantile: float = 0.5,
                   flow: bool = True, trim: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The median (or see ``trim``) of the ``nearest`` closest-in-time frames that saw pixels
        (ys, xs) of frame ``t_index`` (warped into it; 0 = all of them), and how many saw each: ((P,3) values, (P,)
        counts). ``max_sources`` > 0 uses at most that many frames, spread over the buffer.
        ``target``: (image (H,W,3), visible (H,W)) of frame ``t_index``; with ``cfg.refine == "flow"``
        each warped source is then aligned to it by dense flow (below) unless ``flow`` is False, and
        takes the chained or the direct homography (``_source_to_target``), whichever aligns the
        target's background ring better. ``quantile``, ``trim``: the statistic over the sightings
        (``nan_statistic``; 0.5 and 0 = the median)."""
        nearest = self.cfg.nearest if nearest is None else nearest
        h, w = shape
        order = source_order(len(sources), t_index, nearest, max_sources)
        if not order or len(ys) == 0:
            return np.zeros((len(ys), 3), np.float32), np.zeros(len(ys), int)
        # warp, align and match only a window around the pixels asked for, with enough background
        # around them for the flow and exposure estimates
        sigma = flow_sigma(h, w)
        y0, y1, x0, x1 = padded_box(ys, xs, h, w, margin=2 * sigma)
        to_crop = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
        win = SightingCrop(y0, x0, (x1 - x0, y1 - y0), to_crop, sigma)
        ref = None if target is None else Reference.around(target, y0, y1, x0, x1)
        # a pixel's k-th sighting goes to row k: ``nearest`` rows, not one per source (with a
        # still camera's many sources, one row each made this the stage's largest buffer)
        rows = min(len(order), nearest) if nearest > 0 else len(order)
        stack = np.full((rows, len(ys), 3), np.nan, np.float32)
        seen_count = np.zeros(len(ys), int)
        inv_t = np.linalg.inv(pose_t)
        for k in order:
            need = np.flatnonzero(seen_count < nearest) if nearest > 0 else np.arange(len(ys))
            if len(need) == 0:
                break  # every pixel has its nearest sightings
            s_img, s_vis, pose_s = sources[k]
            m = inv_t @ pose_s  # source frame -> this frame, along the camera path
            py, px = ys[need], xs[need]
            if np.allclose(m, np.eye(3), atol=1e-9):
                c, vis = s_img[py, px].astype(np.float32), s_vis[py, px]
            else:
                seen = self._warped_sighting(k, t_index, s_img, s_vis, m, win, ref, py, px, flow)
                if seen is None:
                    continue  # this frame saw none of what is still needed
                c, vis = seen
            got = need[vis]
            stack[seen_count[got], got] = c[vis]
            seen_count[got] += 1
        return nan_statistic(stack, seen_count, quantile, trim), seen_count

    def _warped_sighting(self, k: int, t_index: int, s_img: np.ndarray, s_vis: np.ndarray, m: np.ndarray,
                         win: SightingCrop, ref: Reference | None, py: np.ndarray, px: np.ndarray,
                         flow: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """Source ``k`` warped into ``win`` of frame ``t_index`` by homography ``m`` (source ->
        frame), aligned to the reference by dense flow and exposure where there is one: its values
        (P,3) and whether it saw each (P,) of pixels (py, px); None where it saw none of them."""
        import cv2

        size = win.size
        vis8 = s_vis.view(np.uint8) if s_vis.dtype == bool else s_vis.astype(np.uint8)

        def seen_by(m):
            vis = cv2.warpPerspective(vis8, win.from_frame @ m, size, flags=cv2.INTER_NEAREST,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            return cv2.erode(vis, np.ones((3, 3), np.uint8))  # no blends at the edges

        vis_img = seen_by(m)
        if not vis_img[py - win.y0, px - win.x0].any():
            return None  # no flow or exposure work for a frame that saw none of them
        source = np.asarray(s_img, np.float32)  # history frames are float16
        if ref is not None:  # only now the costlier direct match of the two frames
            other = self._source_to_target(k, t_index, m)
            # keep whichever aligns the background around the holes better: a direct match fits
            # the plane with most features, the chained path drifts
            if other is not m and (ring_error(source, other, ref.ring, ref.ring_values)
                                   < ring_error(source, m, ref.ring, ref.ring_values)):
                m, vis_img = other, seen_by(other)
        m = win.from_frame @ m  # source frame -> the window of this frame
        residual = None
        if flow and ref is not None and self.cfg.refine == "flow":
            # the flow is measured on grey frames: warp the source's grey only
            warped_gray = cv2.warpPerspective(self._grays[k], m, size, flags=cv2.INTER_LINEAR,
                                              borderMode=cv2.BORDER_CONSTANT)
            residual = residual_flow(None, vis_img > 0, ref.image, ref.visible, sigma=win.sigma,
                                     target_gray=ref.gray, warped_gray=warped_gray)
        if residual is None:
            warped = cv2.warpPerspective(source, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        else:
            # one resampling of the source, homography and flow composed, bicubic: no second blur
            # whose strength would change from frame to frame
            gx, gy = np.meshgrid(np.arange(size[0], dtype=np.float32), np.arange(size[1], dtype=np.float32))
            pts = np.stack([gx + residual[..., 0], gy + residual[..., 1]], -1).reshape(-1, 1, 2)
            src_pts = cv2.perspectiveTransform(pts, np.linalg.inv(m)).reshape(size[1], size[0], 2)
            mx, my = np.ascontiguousarray(src_pts[..., 0]), np.ascontiguousarray(src_pts[..., 1])
            warped = cv2.remap(source, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT).clip(0, 1)
            vis_img = cv2.remap(vis8, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
            vis_img = cv2.erode(vis_img, np.ones((3, 3), np.uint8))
        c, vis = warped[py - win.y0, px - win.x0], vis_img[py - win.y0, px - win.x0] > 0
        if ref is not None and self.cfg.exposure:
            # gains from the ring's sample, applied to the pixels asked for only
            gains = exposure_gains(warped, vis_img > 0, ref.image, ref.ring_in_window)
            c = c if gains is None else np.clip(c * gains, 0, 1)
        return c, vis

    def _shadow(self, sources, t_index, img, hole, pose_t) -> np.ndarray:
        """Pixels near the hole that differ from the background the other frames saw there
        (shadows, reflections, missed edges of the person), connected to the hole."""
        import cv2

        h, w = hole.shape
        reach = max(3, int(self.cfg.shadow_reach * min(h, w)))
        # within ``reach`` of the hole: a distance transform costs the same at any reach, where a
        # dilation by a disc that wide grows with its area
        band = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= reach
        band &= ~hole
        ys, xs = np.nonzero(band)
        if len(ys) == 0:
            return hole
        # judged a cell at a time at the 240 px scale (cells of f x f px, one band pixel each): the
        # sightings of every band pixel were the stage's largest cost after the networks, and a
        # shadow is a broad region
        f = max(1, int(frame_unit(h, w)))
        if f > 1:
            _, first, inverse = np.unique((ys // f) * -(-w // f) + xs // f, return_index=True, return_inverse=True)
            sy, sx = ys[first], xs[first]
        else:  # every band pixel its own cell
            sy, sx, inverse = ys, xs, np.arange(ys.size)
        # the long-run background: a shadow moves with its person, so nearby frames share it. A
        # still camera copies its sightings without warps (no alignment, so no target ring either),
        # so the band goes in chunks at no cost: its sightings (12 per pixel of a band far around
        # every person) were otherwise the stage's largest transient buffer
        chunk = 32768
        parts = [self._sightings(sources, t_index, pose_t, sy[i : i + chunk], sx[i : i + chunk], (h, w), nearest=0,
                                 max_sources=12) for i in range(0, len(sy), chunk)]
        bg, count = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        cur = img[sy, sx].astype(np.float32)
        # shadows darken multiplicatively: on dark ground the absolute change is small but the ratio is not
        lum_cur, lum_bg = cur.mean(axis=1), bg.mean(axis=1)
        darker = (lum_bg > 0.03) & (lum_cur < (1 - 2 * self.cfg.shadow_diff) * lum_bg)
        differs = ((np.abs(cur - bg).max(axis=1) > self.cfg.shadow_diff) | darker) & (count >= 2)
        extra = np.zeros((h, w), np.uint8)
        extra[ys, xs] = differs[inverse]  # each cell's verdict to its band pixels
        extra = cv2.morphologyEx(extra, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # drop noise specks
        added = _joined(extra > 0, hole) & ~hole
        if not added.any() or added.sum() > hole.sum():
            return hole  # nothing, or more than the person itself: a scene change, not a shadow
        added = cv2.dilate(added.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # the penumbra
        return added | hole

    def _moving_shadow(self, sources, t_index, img, hole, pose_t, dilation: int) -> np.ndarray:
        """A moving camera: the shadow travels with its person, so no background model holds it.
        Pixels that look like a cast shadow in this frame (``shadow_candidates``) and are darker
        than the same ground in the other frames (aligned; the brighter sightings, since the shadow
        may lie there too in the nearest ones), linked to the hole, grown by ``dilation`` px like
        the person's mask. Only on smooth ground: where the ground's own texture passes the
        photometric test (40% or more of it) or its median gradient exceeds 28 grey levels (Sobel,
        8-bit, on the frame at 240 px), a misalignment of a fraction of a pixel already makes
        texture look darker than in other frames, and nothing joins (grass, gravel, patterned
        floors)."""
        import cv2

        h, w = hole.shape
        # the reaches below were set on 240 px frames: a shadow 3x the pixels wide at 720 px
        # needs a closing 3x as wide to look darker than its surroundings
        unit = frame_unit(h, w)
        cand, grounds = shadow_candidates(img, hole, width=max(4, round(12 * unit)))
        gradient = None
        # texture is judged at the 240 px scale its threshold was set on: upscaled 4 px of grass
        # are 12 at 720 px, each with a third of the gradient, and a whole band of grass would
        # pass for a smooth shadow
        small = (max(1, round(w / unit)), max(1, round(h / unit))) if unit > 1.5 else None
        smooth = np.zeros_like(cand)  # each person's ground is judged on its own
        for ground in grounds:
            mine = cand & ground
            if not mine.any() or mine.sum() >= 0.4 * ground.sum():
                continue
            if gradient is None:
                gray = self._grays[t_index]
                if small is not None:
                    gray = cv2.resize(gray, small, interpolation=cv2.INTER_AREA)
                gradient = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
            bare = ground & ~cand
            if small is not None:
                bare = cv2.resize(bare.astype(np.uint8), small, interpolation=cv2.INTER_NEAREST) > 0
            if bare.any() and np.median(gradient[bare]) <= 28:
                smooth |= mine
        cand = smooth
        if not cand.any():
            return hole
        ys, xs = np.nonzero(cand)
        # the camera motion alone aligns smooth ground well enough, and a shadow darkens by far more
        # than exposure drifts between frames: no flow, no exposure matching (both cost more than
        # the rest of this test)
        bg, count = self._sightings(sources, t_index, pose_t, ys, xs, (h, w), nearest=0, max_sources=12,
                                    quantile=0.9)
        lum_cur, lum_bg = img[ys, xs].astype(np.float32).mean(axis=1), bg.mean(axis=1)
        moved = (count >= 2) & (lum_cur < 0.9 * lum_bg)
        keep = np.zeros((h, w), np.uint8)
        keep[ys[moved], xs[moved]] = 1
        # a shadow line breaks where it crosses lighter ground: bridge gaps of a few pixels
        bridge, touch = 2 * max(2, round(4 * unit)) + 1, 2 * max(1, round(2 * unit)) + 1
        linked = cv2.dilate(keep, np.ones((bridge, bridge), np.uint8))
        grown = cv2.dilate(hole.astype(np.uint8), np.ones((touch, touch), np.uint8)) > 0
        # linked to the hole through dark shadow-like ground too: near the feet the shadow moves
        # least, so it may not be darker than in other frames
        added = _joined((linked > 0) | cand, grown) & (keep > 0)
        if not added.any() or added.sum() > hole.sum():
            return hole  # nothing, or more than the person itself: not a shadow
        # the test finds the umbra; the soft penumbra around it reaches a few pixels further
        penumbra = max(2, round(min(h, w) / 60))
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * (dilation + penumbra) + 1,) * 2)
        return hole | (cv2.dilate(added.astype(np.uint8), disk) > 0)

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor, masks: torch.Tensor, grow_shadows: bool = True, dilation: int = 0,
                 movers: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (filled frames, remaining holes, holes) where ``holes`` may have grown by shadows
        (per ``cfg.shadows``) and shrunk to what differs from the background found (per
        ``cfg.unchanged_tolerance``, ``changed_pixels``); ``grow_shadows=False`` keeps the holes as given
        (user masks).
        ``dilation``: px the masks were grown by; a moving camera's shadows are grown as much.
        ``movers`` (B,1,H,W) bool (or float, above 0.5): where things that move on their own
        stand (animals). They stay in their own frames but are never copied into another frame's
        hole, nor used to follow the camera: a dog that sat where the woman stands later is not
        background (a dog that walked off is not copied back in)."""
        check_frames(frames)
        check_masks(masks, frames)
        h, w = frames.shape[2:]
        imgs = frames.permute(0, 2, 3, 1).float().cpu().numpy()
        holes = masks[:, 0].cpu().numpy() > 0
        people = holes.copy()
        if movers is not None:
            check_masks(movers, frames, "movers")
            moving = movers[:, 0].cpu().numpy() > 0.5
        else:
            moving = np.zeros((len(holes), 1, 1), bool)  # broadcasts: no frame-sized array of False
        window, win_grays = self._take_window(imgs, holes, moving)
        sources = list(self.history) + window
        base = len(self.history)
        if grow_shadows and self.cfg.shadows != "off":
            self._grow_by_shadows(sources, window, holes, base, dilation)
            # shadowed pixels count as unseen everywhere: no frame's shadow is copied into another's fill
            window = [(img, ~hole & ~mover, pose) for (img, _, pose), hole, mover in zip(window, holes, moving)]
            sources = list(self.history) + window
            self._valid = [v for _, v, _ in sources]
        out = imgs.copy()
        remaining = holes.copy()
        for t, (img, visible, pose_t) in enumerate(window):
            if holes[t].any():
                holes[t] = self._fill_frame(sources, base + t, img, visible, pose_t, holes[t], people[t],
                                            out[t], remaining[t], grow_shadows, dilation)
        # this call's lists of sources held the history frames that the push drops: let go of them
        # first, so each dropped frame is freed as its successor arrives, where memory peaks
        del sources
        self._push_history(window, win_grays)
        del window, people, moving
        # the sightings' temporaries are freed but the heap still holds them: hand them back
        # before the masks' float copies are made on top
        release_freed_memory()
        filled = torch.from_numpy(out).permute(0, 3, 1, 2).to(frames.device, frames.dtype)
        as_mask = lambda a: torch.from_numpy(a[:, None]).to(masks.device, torch.float32)  # noqa: E731
        return filled, as_mask(remaining), as_mask(holes)

    def _take_window(self, imgs: np.ndarray, holes: np.ndarray, moving: np.ndarray) -> tuple[list, list]:
        """The window's frames as sources, each with its background and camera pose; this call's
        lists of greys, backgrounds and corners (history first) start here."""
        import cv2

        window: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (image, background seen, pose)
        win_grays: list[np.ndarray] = []
        win_corners: list[np.ndarray | None] = []
        for img, hole, mover in zip(imgs, holes, moving):
            gray = cv2.cvtColor((img * 255).round().astype(np.uint8), cv2.COLOR_RGB2GRAY)
            seen = ~hole & ~mover  # what this frame shows of the background, for the others
            window.append((img, seen, self._pose(gray, seen)))
            win_grays.append(gray)
            win_corners.append(self._last_corners)
        self._pairs = {}
        self._grays = list(self._history_grays) + win_grays
        self._valid = [v for _, v, _ in list(self.history) + window]
        self._corners = list(self._history_corners) + win_corners  # None: found when first needed
        return window, win_grays

    def _grow_by_shadows(self, sources: list, window: list, holes: np.ndarray, base: int, dilation: int) -> None:
        """Each frame's hole grown by its person's shadow (``cfg.shadows``), in place: a still
        camera's from its background model, a moving camera's by a photometric and temporal test."""
        if self.static and self.cfg.shadows in ("static", "always"):
            for t, (img, _, pose_t) in enumerate(window):
                if holes[t].any():
                    holes[t] = self._shadow(sources, base + t, img, holes[t], pose_t)
        elif self.cfg.shadows == "always":
            for t, (img, _, pose_t) in enumerate(window):
                if holes[t].any():
                    holes[t] = self._moving_shadow(sources, base + t, img, holes[t], pose_t, dilation)

    def _fill_frame(self, sources: list, t_index: int, img: np.ndarray, visible: np.ndarray, pose_t: np.ndarray,
                    hole: np.ndarray, person: np.ndarray, out: np.ndarray, remaining: np.ndarray,
                    grow_shadows: bool, dilation: int) -> np.ndarray:
        """Fill one frame's ``hole`` from the sources into ``out`` (H,W,3), clearing ``remaining``
        where a source saw the background; returns the hole, shrunk to what differs from the
        background found (``cfg.unchanged_tolerance``): the rest keeps the frame's own pixels."""
        h, w = hole.shape
        # a moving camera's shadow reaches far over smooth ground: filled by the camera motion
        # alone, so the flow windows stay the size of the person
        shadow = hole & ~person if not self.static else np.zeros_like(hole)
        for part, flow in ((hole & ~shadow, True), (shadow, False)):
            ys, xs = np.nonzero(part)
            if len(ys) == 0:
                continue
            med, count = self._sightings(sources, t_index, pose_t, ys, xs, (h, w), target=(img, visible),
                                         max_sources=0 if self.static else self.cfg.sources, flow=flow,
                                         trim=self.cfg.trim)
            ok = count >= 1
            out[ys[ok], xs[ok]] = med[ok]
            remaining[ys[ok], xs[ok]] = False
        if not (grow_shadows and self.cfg.unchanged_tolerance > 0):
            return hole
        # the hole shrinks to what differs from the background found (and the dilation around it)
        kept = changed_pixels(img, out, hole, remaining | (hole & ~person), self.cfg.unchanged_tolerance,
                              dilation, tolerance=max(1, round(frame_unit(h, w))))
        drop = hole & ~kept
        out[drop] = img[drop]
        return kept

    def _push_history(self, window: list, win_grays: list) -> None:
        """The window's frames join the history (the oldest leave it); this call's lists end."""
        self._history_corners.extend(self._corners[len(self._corners) - len(window):])
        self._history_grays.extend(win_grays)
        self._grays, self._valid, self._corners, self._pairs = [], [], [], {}
        for img, visible, pose in window:
            # float16 halves the buffer and still rounds back to the exact 8-bit level (16-bit
            # sources lose their low bits in propagated pixels only)
            self.history.append((img.astype(np.float16), visible, pose))
