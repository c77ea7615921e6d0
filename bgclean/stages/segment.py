"""Person segmentation: soft person maps for a batch of frames."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from bgclean.errors import InputError
from bgclean.ops import check_frames, frame_unit, max_filter, resize, to_integers
from bgclean.pipeline.config import SegmentConfig

log = logging.getLogger(__name__)

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def segmenter_names() -> list[str]:
    from bgclean.weights.registry import REGISTRY

    u2 = [n for n in REGISTRY.names() if REGISTRY.get(n).architecture.startswith("u2net")]
    return [f"yolox+{n}" for n in u2] + u2 + ["yolox+rvm", "rvm", "yolox+mediapipe.selfie", "mediapipe.selfie",
                                              "rembg:<session>"]


class SegmentStage:
    """``(B,3,H,W)`` float RGB in [0,1] → ``(B,1,H,W)`` float person probability in [0,1].

    Detector backends keep temporal state (tracked person boxes) across calls: windows of one video
    must come in order, and ``reset()`` starts a new video.
    """

    def __init__(self, cfg: SegmentConfig, device: torch.device | str = "cpu", download_progress=None):
        self.cfg = cfg
        self.device = torch.device(device)
        self.model = None
        self.detector = None
        if cfg.backend.startswith("rembg:"):
            self._rembg = _RembgSession(cfg.backend.split(":", 1)[1])
            return
        if cfg.backend not in segmenter_names():
            raise InputError(f"unknown segmenter {cfg.backend!r}; choose one of: {', '.join(segmenter_names())}")
        self.rvm = None
        # the network people's crops get where it is not U²-Net: yolox+mediapipe.selfie segments
        # people with the selfie network, and what they carry and the animals beside them (no
        # person in those crops) with U²-Net small, which takes the salient object
        self.person_net = None
        self.selfie = cfg.backend == "mediapipe.selfie"  # alone, on whole frames
        u2 = cfg.backend.removeprefix("yolox+")
        if cfg.backend.endswith("mediapipe.selfie"):
            selfie = SelfieNet(hint=f"or choose another --segmenter than {cfg.backend}")
            self.person_net, u2 = (None, None) if self.selfie else (selfie, "u2net.small")
        if cfg.backend.endswith("rvm"):
            self.rvm = RobustVideoMatting(self.device, download_progress)
            self.model, self.dtype = self.rvm, torch.float32
        elif self.selfie:
            self.model, self.dtype = selfie, torch.float32
        elif self.device.type == "cpu":  # onnxruntime runs U²-Net 1.3x faster than torch on a CPU
            from bgclean.weights.store import load_onnx_model

            self.model, self.dtype = load_onnx_model(u2, download_progress), torch.float32
        else:
            from bgclean.weights.store import load_model

            self.model, self.dtype = load_model(u2, self.device, cfg.half, download_progress)
        if cfg.backend.startswith("yolox+"):
            self.detector = PersonDetector(self.device, runtime=None if cfg.detector_runtime == "auto"
                                           else cfg.detector_runtime)
            # a weak track (painted figures on the bmx-trees wall score 0.2-0.6) is carried two frames
            # at most, a surely seen person the full ``carry``: at 2 frames bmx-trees' false area fell
            # (10.1 -> 9.7x the truth) and both it and schoolgirls rose from 4.5 to 5.3 fps, with
            # schoolgirls' recall 0.998 -> 0.997
            self.tracker = BoxTracker(cfg.det_threshold, cfg.det_keep, cfg.carry, weak_carry=min(2, cfg.carry))
            # an animal's track starts and is kept only by sure boxes (weak ones at her feet took her
            # legs: dogs_jump frame 2, a 0.29 box over the small dog and her legs, her recall 0.74),
            # and only one seen surely (``_SURE_ANIMAL``) is carried when lost
            self.animal_tracker = BoxTracker(cfg.animal_threshold, cfg.animal_threshold, cfg.animal_carry, weak_carry=0)
            self.thing_tracker = BoxTracker(cfg.belongings_score, min(cfg.belongings_score, self._THING_KEEP), self._THING_CARRY,
                                            rigid=True)
        self._gate = None  # PersonGate, built when an animal first overlaps a person
        self._since_animal = 1 << 30
        self._frame = 0  # frames segmented since the last reset
        self._grey = None  # the previous frame's ``small_grey`` and its full size, for the corners' motion
        self._still_at = None  # the frame the scene was last seen still, while it stays so
        self._belongings: list[dict] = []  # belongings' keyframes: {"age", "box", "ellipse", "patch"}
        self._mean = torch.tensor(_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(_STD, device=self.device).view(1, 3, 1, 1)

    _LOOKS_PER_FRAME = 1  # zoomed looks for lost people per frame (each costs a detector run)
    _LOOK_GROWTH = 2.0  # a zoomed look's box may have at most this times the lost box's area
    _OWN_GROWTH = 0.03  # where her box is the smaller, she owns it grown by this fraction of its size
    _MERGE_GROWTH = 1.3  # a person's detection this times her box's area, over an animal's, is both of them
    _SURE_ANIMAL = 0.5  # an animal's track scored this once is carried ``animal_carry`` frames when lost
    _ANIMAL_MEMORY = 30  # frames after an animal was last seen during which the scene "has animals"
    _GATE_CONTEXT = 0.7  # the person gate's crop: her box grown by this fraction of its size on each side
    _THING_KEEP = 0.15  # a belonging's track is kept by boxes scoring this (it starts at ``belongings``)
    _THING_CARRY = 2  # frames a lost belonging stays, moving at its last velocity
    _SCENERY_PAIRS = 2  # frames in a row a track's pixels moved with its surroundings before it is scenery
    _SCENERY_FOLLOW = 0.9  # share of its corners within 1 px (at 240 px) of where its surroundings moved them
    _SCENERY_OWN = 0.25  # share of its corners 2 px or more off that: it moves on its own, a person
    _SCENERY_CAMERA = 1.5  # median px (at 240 px) its surroundings moved: the camera moved
    _RIDE_MEMORY = 8  # frames after a ridden thing was last seen at a person's box that her crop still gets U²-Net
    _STILL_RECHECK = 4  # a still scene's corners are tracked only every this many frames (no evidence there)

    def reset(self) -> None:
        self._since_animal = 1 << 30
        self._frame, self._belongings, self._grey, self._still_at = 0, [], None, None
        if self.detector is not None:
            self.tracker.reset()
            self.animal_tracker.reset()
            self.thing_tracker.reset()
        if getattr(self, "rvm", None) is not None:
            self.rvm.reset()

    def preprocess(self, frames: torch.Tensor, side: int | None = None) -> torch.Tensor:
        """rembg's normalisation: resize to the network side, divide by the image max, ImageNet stats."""
        side = side or self.cfg.resolution
        x = resize(frames, (side, side))
        peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        return (x / peak - self._mean) / self._std

    @property
    def batch_size(self) -> int:
        """Frames or crops per network call. On a CPU, two: the whole segmentation stage runs as
        fast as with four (schoolgirls / dogs_jump 7.13-7.38 / 6.79-7.21 fps against 7.18-7.25 /
        6.95-7.37; one crop per call 6.57-6.92 / 6.60-6.82), and onnxruntime's activations take
        half the memory (U²-Net small on 160 px crops: 62-66 MB above the resident size against
        141-167 MB): the batch of 4 set the peak of vtest's segmentation calls."""
        return self.cfg.batch_size or (16 if self.device.type == "cuda" else 2)

    def _u2net(self, x: torch.Tensor, side: int) -> torch.Tensor:
        """The segmentation network on frames or crops ``x`` (B,3,S,S) in [0,1], at ``side``
        (U²-Net; the selfie network has its own side) → (B,1,side,side) probabilities."""
        if self.selfie:
            return resize(self.model(x), (side, side), antialias=False).clamp_(0, 1)
        outs = []
        for chunk in x.split(self.batch_size):
            inp = self.preprocess(chunk.float(), side).to(self.dtype).contiguous(memory_format=torch.channels_last)
            outs.append(self.model(inp).float())
        return torch.cat(outs)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return self.segment(frames)[0]

    @torch.inference_mode()
    def segment(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(B,3,H,W)`` float RGB in [0,1] → the person probability ``(B,1,H,W)`` in [0,1]; for
        the detector backends a ``(B,1,H,W)`` bool map of what only an animal beside a person is
        (None for the other backends and where the window has no animal): pixels her mask's
        dilation must leave alone (a dog at her feet);
        and ``(B,1,H,W)`` bool, the pixels of those animals (None where the window has none):
        things that move on their own, which propagation must not copy into a hole."""
        check_frames(frames)
        if self.model is None:
            return self._rembg(frames), None, None
        try:
            return self._segment(frames)
        finally:
            if hasattr(self.model, "release_memory"):  # onnxruntime's arena, kept only for one window
                self.model.release_memory()

    def _segment(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        frames = frames.to(self.device)
        h, w = frames.shape[2:]
        if self.rvm is not None:
            alpha = self.rvm(frames)
            return (alpha, None, None) if self.detector is None else (alpha * self._person_boxes(frames), None, None)
        if self.detector is None:
            return resize(self._u2net(frames, self.cfg.resolution), (h, w), antialias=False).clamp_(0, 1), None, None
        return self._person_crops(frames)

    def _person_boxes(self, frames: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) 1 inside the grown boxes of confirmed person tracks (yolox+rvm: the matte is
        kept only where a person was detected)."""
        h, w = frames.shape[2:]
        out = torch.zeros(frames.shape[0], 1, h, w, device=frames.device)
        u8 = to_integers(frames)
        for i, (img, found) in enumerate(zip(u8, self.detector.detect_many(u8))):
            boxes, scores, animals, animal_scores = found[:4]
            self._since_animal = 0 if (animal_scores >= self.cfg.det_threshold).any() else self._since_animal + 1
            tracks = self.tracker.update_tracks(boxes, scores)
            for t in tracks:
                place = _crop_place(t["box"], self.cfg.box_margin, h, w) if self._is_person(img, t, tracks) else None
                if place:
                    gy0, gy1, gx0, gx1 = place[4]
                    out[i, :, gy0:gy1, gx0:gx1] = 1
        return out

    def _person_crops(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Person boxes (tracked over time), each grown by ``box_margin``, segmented by U²-Net at
        ``crop_resolution``; the soft map is the max over crops and 0 outside every box. Animals the
        detector finds next to a person are segmented too and taken out of her mask (a dog at her feet
        stays in the video); what she carries or rides (``belongings``: a bag, a racket, a bike
        touching her box) is segmented in its own crop and joins her mask. With ``every`` > 1 a
        person is segmented on every ``every``-th frame of her track; in between, while her box
        keeps its size, her last map follows her box (a belonging's map follows its box likewise)."""
        h, w = frames.shape[2:]
        every = self.cfg.every or (1 if self.device.type == "cuda" else 3)
        u8 = to_integers(frames)
        places, reused, tight, motion = [], [], [], []
        detections = self.detector.detect_many(u8)  # the window's frames in one call on a GPU
        for i, img in enumerate(u8):
            greys = self._greys(img)
            boxes, scores, animals, animal_scores, things, thing_scores, thing_rigid, ridden = detections[i]
            ridden = things[ridden & (thing_scores >= self.cfg.belongings_score)]  # a bike, a board, as detected
            # tracked like people: an animal the detector misses for a frame or two stays kept
            # out of her mask (dogs_jump: the small dog at her feet scored 0.70, 0.69, 0.56, 0.44,
            # 0.13, 0.38, nothing, nothing, 0.46 in frames 14-22)
            if self.cfg.animal_carry:
                tracked = self.animal_tracker.update_tracks(animals, animal_scores)
                for t in tracked:
                    if t["score"] >= self._SURE_ANIMAL:
                        self.animal_tracker.trust(t)
                animals = np.float32([t["box"] for t in tracked]).reshape(-1, 4)
            else:
                animals = animals[animal_scores >= self.cfg.animal_threshold]
            if self.cfg.belongings_score > 0:
                # tracked too: the bike under the rider scored 0.74-0.86, then 0.37, 0.26 and nothing
                # for two frames behind a tree (bmx-trees frames 14-17) while he rode on
                thing_tracks = self.thing_tracker.update_tracks(things, thing_scores, rigid=thing_rigid)
                things = np.float32([t["box"] for t in thing_tracks]).reshape(-1, 4)
            else:
                things, thing_tracks = things[:0], []
            self._since_animal = 0 if len(animals) else self._since_animal + 1
            scores = self._confirm_entering(img, boxes, scores)
            boxes = self._hold_merged(boxes, animals)
            tracks = self.tracker.update_tracks(boxes, scores)
            self._look_for_lost(img, tracks, animals)
            people = [t for t in tracks if self._is_person(img, t, tracks)]
            camera = None
            # corners are tracked only where they can say something: a person not yet seen to move
            # (is she scenery? while the scene stays still, nothing can tell: looked at again every
            # few frames) or a track the detector lost this frame (where did she go?)
            unsure = any(not t.get("moved") for t in people) and (
                self._still_at is None or self._frame - self._still_at >= self._STILL_RECHECK)
            if greys is not None and (unsure or any(t["missed"] for t in tracks)):
                flow = track_corners(greys[0][0], greys[1][0], greys[0][1])
                # the scene's motion: people known to move and what they carry or ride (the bike
                # under the rider) are not the scene
                carried = [(_grow_box(b, 0.1, h, w), t) for b, t in zip(things, thing_tracks)]
                moving = [_crop_place(t["box"], self.cfg.box_margin, h, w) for t in people if t.get("moved")]
                camera = camera_motion(*flow, [p[4] for p in moving if p] + [g for g, _ in carried],
                                       frame_unit(h, w))
                if camera is not None:
                    self._carry_by_corners(tracks, flow, camera, animals, frame_unit(h, w))
                    self._still_at = self._frame if camera[1] < self._SCENERY_CAMERA else None
            # the small greys too: a smooth figure's own corners are looked for once its map is made
            motion.append(None if camera is None else (*flow, camera, carried, greys))
            grown_boxes = []
            follow = _followers([t for t in people if not self._scenery_now(t)], every, self.cfg.fresh,
                                self.cfg.box_margin, h, w)
            for t in people:
                place = _crop_place(t["box"], self.cfg.box_margin, h, w)
                if not place:
                    continue
                if not self._scenery_now(t):  # what touches a painted figure is not carried
                    grown_boxes.append(place[4])
                if self.person_net is not None and any(_overlap(place[4], b) for b in ridden):
                    t["rides"] = self._frame
                key = t.get("key")
                # scenery's map only tells whether its pixels start to move on their own: its last
                # one follows its box (bmx-trees: a third of the crops were painted figures')
                if any(t is f for f in follow) or (key is not None and self._scenery_now(t)):
                    reused.append((i, place[4], key, t))
                else:  # filled with her map once the batch has run
                    # her good map is taken from the key before once that one's map is made: keys
                    # of one window are all made before its batch runs
                    t["key"] = key = {"age": t["age"], "box": list(t["box"]), "prev": key, "strong": t.get("strong"),
                                      "track": t}
                    # a person network leaves out what she rides: her crop gets U²-Net while she
                    # was seen on it lately (the detector misses the bike behind a trunk); and it
                    # loses much of a person half hidden behind another or behind a sign (vtest
                    # frames 56-57: a man's legs left as a ghost), so a crop another person's box
                    # reaches gets U²-Net too
                    key["u2net"] = self.person_net is not None and (
                        self._frame - t.get("rides", -(1 << 30)) <= self._RIDE_MEMORY
                        or self._among_others(t, place[4], people))
                    places.append((i, False, *place, key))
            for box in animals:
                place = _place_near(box, grown_boxes, 0.05, h, w)
                if place:
                    places.append((i, True, *place, None))
            # a bag, a racket, a bike touching a person joins her mask
            for box, thing in zip(things, thing_tracks):
                place = _place_near(box, grown_boxes, 0.1, h, w)
                if not place:
                    continue
                # like a person's map, a belonging's map follows its box between keyframes
                keys = [k for k in self._belongings if _follows(box, k, self._frame, every, 0.1, h, w)
                        and box_iou(np.array([box]), np.array([k["box"]]))[0, 0] > 0.5]
                if keys:
                    reused.append((i, place[4], keys[0], thing))
                else:
                    key = {"age": self._frame, "box": list(box), "ellipse": True, "track": thing}
                    self._belongings.append(key)
                    places.append((i, False, *place, key))
            self._belongings = [k for k in self._belongings if self._frame - k["age"] < every]
            self._frame += 1
            # a weak track that looked like an animal up close is one too (the small dog pressed
            # against her, called a person 0.40-0.62 in dogs_jump frames 18-22, an animal 0.00-0.38)
            like_animals = [t["box"] for t in tracks if t.get("animal") and not any(t is p for p in people)]
            animals_all = np.concatenate([animals, np.float32(like_animals).reshape(-1, 4)])
            tight.append(([t["box"] for t in people], animals_all))
        soft = torch.zeros(frames.shape[0], 1, h, w, device=frames.device)
        if not places and not reused:
            return soft, None, None
        animal: dict[int, torch.Tensor] = {}  # frame -> (1,H,W) map of its animals' crops, where it has any
        # every crop at the cap, small people scaled up: U²-Net small loses much of a girl at her
        # native 64-96 px (schoolgirls, measured with narrower windows: pixels above 0.5 covered 0.85
        # of the girls at native size, 0.92 scaled to 160)
        side = self.cfg.crop_resolution
        # the crops are cut a batch at a time (a window of a crowd holds a hundred); people's by
        # the person network where there is one, animals', belongings', riders' and people's among
        # others by U²-Net (it takes the bike with him, a salient object; the person network does not)
        by_person_net = [self.person_net is not None and not is_animal and not (key or {}).get("ellipse")
                         and not (key or {}).get("u2net") for _, is_animal, *_, key in places]
        probs = [None] * len(places)
        for person in (False, True):
            group = [n for n, b in enumerate(by_person_net) if b == person]
            for k in range(0, len(group), self.batch_size):
                part = group[k : k + self.batch_size]
                crops = [resize(_padded_crop(frames[i : i + 1], Y0, Y1, X0, X1), (side, side))
                         for i, _, Y0, Y1, X0, X1, _, _ in (places[n] for n in part)]
                x = torch.cat(crops)
                out = self.person_net(x) if person else self._u2net(x, side)  # crops are side x side
                for n, p in zip(part, out):
                    probs[n] = p
        pastes = []  # (frame, grown box, map, person's track or None), pasted in frame order below
        for p, (i, is_animal, Y0, Y1, X0, X1, (gy0, gy1, gx0, gx1), key) in zip(probs, places):
            if key is not None and "prev" in key:  # in frame order: the key before is done
                prev = key.pop("prev")
                key["good"] = None if prev is None else prev.get("good")
            patch = resize(p[None], (Y1 - Y0, X1 - X0), antialias=False)[0]
            # keep only the grown box: the square also holds neighbours (a dog beside her)
            patch = patch[:, gy0 - Y0 : gy1 - Y0, gx0 - X0 : gx1 - X0]
            if key is not None and key.get("ellipse"):
                patch = _belonging_map(patch, key["box"], gy0, gx0)
            elif key is not None and key["strong"] and not is_animal:  # not for a weak track: a painted figure
                patch = _kept_map(patch, key, 3 * self.cfg.carry)
            if is_animal:
                target = animal.setdefault(i, soft.new_zeros(1, h, w))
                target[:, gy0:gy1, gx0:gx1] = torch.maximum(target[:, gy0:gy1, gx0:gx1], patch)
            else:
                pastes.append((i, (gy0, gy1, gx0, gx1), patch, None if key is None else key.get("track")))
            if key is not None:
                key["patch"] = patch
        for i, (gy0, gy1, gx0, gx1), key, t in reused:
            patch = resize(key["patch"][None], (gy1 - gy0, gx1 - gx0), antialias=False)[0]
            pastes.append((i, (gy0, gy1, gx0, gx1), patch, t))
        pastes.sort(key=lambda e: e[0])
        scenery = []  # per paste: its track was scenery by the evidence up to its frame
        for i, grown, patch, t in pastes:
            if t is None or motion[i] is None:
                scenery.append(False)
                continue
            # people known to move (by now: the evidence of this window's earlier frames
            # counts) and their belongings are not the scene
            moving = [g for g, o in motion[i][3] if o is not t] + [
                g for j, g, _, o in pastes if j == i and o is not None and o is not t and o.get("moved")]
            scenery.append(self._is_scenery(t, (*motion[i][:3], moving), patch, grown, self._frame - len(u8) + i,
                                            h, w, greys=motion[i][4]))
        for (i, (gy0, gy1, gx0, gx1), patch, t), was in zip(pastes, scenery):
            # the window's later frames count too: a figure found to be scenery by its end is
            # left out of the frames before (its first frames in view, before two frames of
            # evidence: bmx-trees frames 1-3 and 10-12 erased a tree and half a painted wall)
            if was or (t is not None and self._scenery_now(t)):
                continue
            soft[i, :, gy0:gy1, gx0:gx1] = torch.maximum(soft[i, :, gy0:gy1, gx0:gx1], patch)
        if not any(len(animals) for _, animals in tight):  # no animal: nothing to keep out (no frame-sized maps)
            return soft.clamp_(0, 1), None, None
        # a frame at a time, and only the frames with an animal: five window-sized float maps here
        # set the peak of vtest's segmentation calls (its detector sees an animal in every window)
        keep_out = torch.zeros(soft.shape, dtype=torch.bool, device=soft.device)
        dogs = {}  # frame -> (1,H,W) bool: the animals' own pixels, before her box claims any of them
        for i, (people, animals) in enumerate(tight):
            if len(animals):
                # no crop map where none of its animals is beside a person (their boxes still count)
                crops = animal[i] if i in animal else soft.new_zeros(1, h, w)
                dogs[i] = self._keep_animals_out(crops, people, animals, soft[i], keep_out[i])
        soft.clamp_(0, 1)
        if self.cfg.person_gate:
            self._gate_animals(frames, tight, soft, keep_out)
        # the animals as propagation must not copy them: their crops' pixels that are not hers,
        # grown by 3 px (U²-Net's outline of fur is loose); a frame at a time, kept as bool (float
        # window-sized maps raised vtest's peak by ~90 MB, where the detector sees an animal or two)
        movers = None
        for i, own in dogs.items():
            own &= soft[i] < 0.5
            if own.any():  # animal boxes, none beside a person (vtest: every window) leave it None
                if movers is None:
                    movers = torch.zeros(soft.shape, dtype=torch.bool, device=soft.device)
                movers[i] = max_filter(own[None].float(), 7, 7)[0] > 0
        return soft, keep_out, movers

    def _keep_animals_out(self, animal: torch.Tensor, people: list, animals: np.ndarray, soft: torch.Tensor,
                          keep_out: torch.Tensor) -> torch.Tensor:
        """One frame's animals beside its people: takes them out of her map ``soft`` (1,H,W, in
        place) and marks in ``keep_out`` (1,H,W bool, in place) what her mask's dilation must leave
        alone. ``animal`` (1,H,W): the max of the animals' crop maps (changed). Returns the animals'
        own pixels (1,H,W bool) before her box claimed any of them."""
        # where a person's box and an animal's overlap, the smaller box owns the pixels: a dog sitting
        # at her feet leaves her mask, and her legs stay hers when a big dog walks past them
        # an animal's box is its own too: U²-Net in the dog's crop may take the woman's legs and
        # leave a dark dog that sits against them unclaimed; and outside every person's tight box
        # her claim on a pixel of an animal's box does not count (dogs_jump frames 22-29: her crop
        # also takes the small dog sitting against her legs)
        dogs = animal > 0.5
        boxes, hers = torch.zeros_like(soft), torch.zeros_like(soft)
        for a in animals:
            boxes[(slice(None), *_box_window(a))] = 1
        for x0, y0, x1, y1 in people:
            window = (slice(None), *_box_window((x0, y0, x1, y1)))
            hers[window] = 1
            if any((x1 - x0) * (y1 - y0) < (a[2] - a[0]) * (a[3] - a[1]) and _overlap((y0, y1, x0, x1), a)
                   for a in animals):
                # her box grown a little: a box held through an animal's jump sits a pixel or two off
                # her (dogs_jump frames 6-10, with growth 0 / 0.03 / 0.05 / 0.075 of her size: dogs
                # masked 0.089 / 0.095 / 0.099 / 0.104, her recall 0.980 / 0.983 / 0.985 / 0.987)
                mx, my = self._OWN_GROWTH * (x1 - x0), self._OWN_GROWTH * (y1 - y0)
                own = (slice(None), *_box_window((x0 - mx, y0 - my, x1 + mx, y1 + my)))
                animal[own] = 0
                boxes[own] = 0
        animal.clamp_(0, 1)
        # what only the animal's crop or box claims stays out of her dilation; where she claims a
        # pixel too it leaves her map but stays reachable (dogs_jump: a small dog's crop also takes
        # the legs of the woman it stands against: kept out, her recall fell 0.993 -> 0.972)
        keep_out |= torch.maximum(animal, boxes).mul_(hers.mul_(soft.clamp(0, 1)).neg_().add_(1)) > 0.5
        soft.mul_(animal.neg_().add_(1))
        return dogs

    def _gate_animals(self, frames: torch.Tensor, tight: list, soft: torch.Tensor, keep_out: torch.Tensor) -> None:
        """Where an animal's box overlaps a person's grown box, a person-only segmenter (MediaPipe
        selfie, ``PersonGate``) run on her crop decides which pixels are hers: the others leave her
        map and are kept out of her mask. U²-Net is a salient-object network: in her crop it takes
        the dog at her feet as well, and in the dog's crop her legs (dogs_jump: the small dog against
        her legs in frames 16-29 and 50-53; on eight such frames MediaPipe covered 0.88-0.99 of her
        and 0.03-0.26 of the dogs)."""
        h, w = frames.shape[2:]
        for i, (people, animals) in enumerate(tight):
            for box in people:
                place = _crop_place(box, self.cfg.box_margin, h, w)
                near = [a for a in animals if place and _overlap(place[4], a)]
                if not near:
                    continue
                if self._gate is None:
                    self._gate = PersonGate(net=self.person_net)
                gy0, gy1, gx0, gx1 = place[4]
                # the gate sees her with wide context: on her tight crop it took the dog at her
                # feet as a person (dogs_jump frames 1-52: 0.29-0.97 of the dog pixels at margin
                # 0.15, 0.03-0.26 at 0.7, her own coverage 0.88-0.99 at both)
                Y0, Y1, X0, X1, _ = _crop_place(box, self._GATE_CONTEXT, h, w)
                hers = self._gate(_padded_crop(frames[i : i + 1], Y0, Y1, X0, X1))[0, 0]
                hers = hers[gy0 - Y0 : gy1 - Y0, gx0 - X0 : gx1 - X0].to(soft.device)
                for a in near:
                    ay0, ay1 = max(gy0, int(a[1])), min(gy1, int(round(a[3])))
                    ax0, ax1 = max(gx0, int(a[0])), min(gx1, int(round(a[2])))
                    if ay1 <= ay0 or ax1 <= ax0:
                        continue
                    not_hers = 1 - hers[ay0 - gy0 : ay1 - gy0, ax0 - gx0 : ax1 - gx0]
                    soft[i, 0, ay0:ay1, ax0:ax1] *= 1 - not_hers
                    keep_out[i, 0, ay0:ay1, ax0:ax1] |= not_hers > 0.5

    def _confirm_entering(self, img: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """A weak box (between ``det_keep`` and ``det_threshold``) cut by the left or right frame
        edge, where no track is yet, gets a zoomed-in look; if the look is sure of a person, her
        track starts now. Someone walking into the frame shows a sliver first, which the whole-frame
        look scores low (vtest: 0.40 for a man 20 px inside the right edge, below the start
        threshold in the re-encoded sample; 0.80 up close)."""
        h, w = img.shape[:2]
        known = np.array([t["box"] for t in self.tracker.tracks], np.float32).reshape(-1, 4)
        scores = scores.copy()
        for k, (box, score) in enumerate(zip(boxes, scores)):
            x0, y0, x1, y1 = box
            # walking in from a side: cut by the left or right edge, head inside (the painted
            # figures on the bmx-trees wall that the detector takes for people hang from the top)
            at_edge = (x0 <= 2 or x1 >= w - 2) and y0 > 2
            if not (self.cfg.det_keep <= score < self.cfg.det_threshold and at_edge):
                continue
            if len(known) and box_iou(box[None], known).max() >= self.tracker.match_iou:
                continue
            person, _ = self.detector.verify(img, box)
            if person >= self.cfg.det_threshold:
                scores[k] = person
        return scores

    def _hold_merged(self, boxes: np.ndarray, animals: np.ndarray) -> np.ndarray:
        """``boxes`` where a detection of a surely seen person grew by over ``_MERGE_GROWTH`` x her
        box's area while at least half of it lies inside an animal's box replaced by her box: that
        detection is her and the animal in one, and her track keeps its place and size. dogs_jump
        frames 6-10: the big dog jumping up in front of her, person boxes 1.4-1.8x hers and nearly
        the dog's own; her track followed them and her crop took the whole dog (0.96 of the dog
        pixels of those frames masked, 0.68 with her box held; her recall 0.98 / 0.94). A woman
        who really grows that fast beside a dog (bending, arms out) keeps her box for that frame:
        her margin still holds some of what she reached out."""
        strong = [t for t in self.tracker.tracks if t.get("strong")]
        if not len(boxes) or not len(animals) or not strong:
            return boxes
        theirs = np.float32([t["box"] for t in strong])
        held = boxes.copy()
        for k, j in enumerate(self._merged_with(boxes, theirs, animals)):
            if j is not None:
                held[k] = theirs[j]
        return held

    def _merged_with(self, boxes: np.ndarray, theirs: np.ndarray, animals: np.ndarray,
                     shrunk: bool = False) -> list[int | None]:
        """For each of ``boxes``: the index into ``theirs`` (person boxes) of the one it matches and
        outgrew by ``_MERGE_GROWTH`` (``shrunk``: or fell below 1 / ``_MERGE_GROWTH`` of) while at
        least half of it lies inside an animal's box, or None."""
        if not len(animals):
            return [None] * len(boxes)
        iou = box_iou(boxes, theirs)
        in_animal = _inside_share(boxes, animals).max(axis=1) >= 0.5
        out = []
        for k in range(len(boxes)):
            j = int(np.argmax(iou[k]))
            ratio = _area(boxes[k : k + 1])[0] / max(_area(theirs[j : j + 1])[0], 1e-6)
            changed = ratio > self._MERGE_GROWTH or (shrunk and ratio < 1 / self._MERGE_GROWTH)
            out.append(j if iou[k, j] >= self.tracker.match_iou and in_animal[k] and changed else None)
        return out

    def _look_for_lost(self, img: np.ndarray, tracks: list[dict], animals: np.ndarray | None = None) -> None:
        """A surely seen person whom the whole-frame detector lost gets a zoomed-in look where her
        box was carried; found there (score >= ``det_keep``), her track follows the box found. A rider
        behind branches scored under 0.06 on the whole frame and 0.59-0.73 up close (bmx-trees frames
        50-60)."""
        lost = sorted((t for t in tracks if t["missed"] and t.get("strong")), key=lambda t: t.get("looked", -1))
        for t in lost[: self._LOOKS_PER_FRAME]:  # the one looked for longest ago first
            t["looked"] = self._frame
            found, scores, _, _ = self.detector.look(img, t["box"], grow=0.5)
            # she does not grow while hidden: a box over twice hers is something else she is in
            # front of (bmx-trees frame 15: a painted figure's box, 3.2x the rider's, took his track)
            scores = np.where(_area(found) > self._LOOK_GROWTH * _area(np.array([t["box"]])), 0, scores)
            best = best_match(t["box"], found, scores, min_iou=self.tracker.match_iou)
            if best is not None and scores[best] >= self.cfg.det_keep:
                box = found[best]
                # she and an animal in one box, or the part of her the animal leaves in view (dogs_jump
                # frame 10: her head, a third of her box): she stays where she was
                if animals is not None and self._merged_with(box[None], np.float32([t["box"]]), animals,
                                                             shrunk=True)[0] is not None:
                    box = np.float32(t["box"])
                self.tracker.recover(t, box, float(scores[best]))

    def _greys(self, img: np.ndarray):
        """The previous and this frame's ``small_grey`` ((grey, scale) each; None on a video's first
        frame or with ``scenery`` off); ``img`` (H,W,3 uint8 RGB) is kept, as its small grey, for the
        next call: each frame is made small once."""
        if not self.cfg.scenery:
            return None
        import cv2

        grey = small_grey(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)), img.shape[:2]
        prev, self._grey = self._grey, grey
        return None if prev is None or prev[1] != grey[1] else (prev[0], grey[0])

    def _carry_by_corners(self, tracks: list[dict], flow, camera, animals: np.ndarray, unit: float) -> None:
        """Tracks the detector lost this frame (carried at their last velocity by the tracker)
        moved instead by the corners of their last box that move against the scene (2 units or
        more off ``camera``'s homography), by their median motion, where at least 5 and a quarter
        of them do. bmx-trees frames 15-17: the rider behind a tree, his box shrunk to the part
        left of the trunk and carried off to the left at 6 px a frame while the camera kept him in
        place; his detection then went to a painted figure's track. Corners inside an animal's box
        (``animals``, x0,y0,x1,y1, this frame) or another seen person's known to move are not hers:
        a dog jumping up in front of her (dogs_jump frames 10-12) would take her box along."""
        p0, p1 = flow
        for t in tracks:
            if not t["missed"]:
                continue
            vx, vy = t["velocity"]
            x0, y0, x1, y1 = t["box"][0] - vx, t["box"][1] - vy, t["box"][2] - vx, t["box"][3] - vy
            others = [o["box"] for o in tracks if o is not t and not o["missed"] and o.get("moved")]
            others = [(by0, by1, bx0, bx1) for bx0, by0, bx1, by1 in others + [list(b) for b in animals]]
            inside = _in_boxes(p0, [(y0, y1, x0, x1)]) & ~_in_boxes(p1, others)
            own = _off_scene(p0[inside], p1[inside], camera[0], unit) >= 2
            if own.sum() < 5 or own.mean() < self._SCENERY_OWN:
                # hidden behind what moves with the scene (the rider behind the bush, frames 60-69:
                # his box's corners are the bush's): her last velocity says more
                continue
            dx, dy = np.median(p1[inside][own] - p0[inside][own], axis=0)
            t["box"] = [float(x0 + dx), float(y0 + dy), float(x1 + dx), float(y1 + dy)]
            t["velocity"] = [float(dx), float(dy)]

    def _is_scenery(self, track: dict, motion, patch: torch.Tensor, grown, frame: int, h: int, w: int,
                    greys=None) -> bool:
        """Whether a person's track is part of the scene: while the camera moved, her pixels moved
        with the scene for ``_SCENERY_PAIRS`` frames in a row, and never on their own. Updates the
        track's evidence from ``frame``'s ``motion``: (p0, p1) tracked corners (``corner_motion``),
        the scene's motion (``camera_motion``) and the grown boxes of the people known to move
        and their belongings. A painted figure on a wall, a poster: the detector and U²-Net take
        them for people (bmx-trees: the painted faces beside the rider, scored 0.2-0.76, confirmed
        up close), and their crops erased half the wall. A person moves against the scene; one
        who has moved once stays a person, and a still camera gives no evidence (a person standing
        still in front of it stays masked). A belonging's track is judged the same way. ``greys``:
        the previous and current frames' ``small_grey``, where a map holding under 5 of the
        frame's corners looks for its own (``_own_corners``)."""
        if track.get("moved"):  # a person for good: no evidence can change that
            return False
        p0, p1, camera, moving = motion
        mine, unit = patch[0].cpu().numpy(), frame_unit(h, w)
        ev = surroundings_motion(p0, p1, mine, grown, camera, unit, moving)
        if ev is None and greys is not None and camera[1] >= self._SCENERY_CAMERA:
            # a smooth or blurred figure (a trunk out of focus: bmx-trees frames 34-36, 1-4 of the
            # frame's corners in its map) holds few of the frame's best corners: its own best
            # ones, found in this frame inside its map and tracked back
            ev = surroundings_motion(*_own_corners(greys, mine, grown), mine, grown, camera, unit, moving)
        if ev is not None:
            follow, own, scene = ev
            if own >= self._SCENERY_OWN:
                track["moved"] = True
            elif scene < self._SCENERY_CAMERA:
                pass  # a still camera says nothing
            elif follow >= self._SCENERY_FOLLOW:
                track["still"] = track.get("still", 0) + 1
            elif not self._scenery_now(track):
                # scenery needs its frames in a row; once it is scenery only moving on its own
                # undoes that (bmx-trees frame 32: a trunk at the frame edge, scenery for 25
                # frames, had 4 of 6 corners follow and none move on its own; reset, it was
                # masked again for 8 frames)
                track["still"] = 0
            log.debug("frame %d, track at %s: %.2f of its corners follow the scene, %.2f move on their own, "
                      "the scene moved %.1f", frame, [round(v) for v in track["box"]], *ev)
        return self._scenery_now(track)

    def _scenery_now(self, track: dict) -> bool:
        """Whether the evidence so far makes ``track`` part of the scene (``_is_scenery``)."""
        return self.cfg.scenery and not track.get("moved") and track.get("still", 0) >= self._SCENERY_PAIRS

    def _among_others(self, track: dict, grown, people: list[dict]) -> bool:
        """Whether another person's box (not scenery) reaches ``track``'s grown box."""
        return any(o is not track and not self._scenery_now(o) and _overlap(grown, o["box"]) for o in people)

    def _is_person(self, img: np.ndarray, track: dict, tracks: list[dict]) -> bool:
        """Confirm a weak track by a zoomed-in second look, when it starts and every
        ``verify_every`` frames after; strong tracks need none. While the scene has animals, a weak
        track is a person only after two looks in a row confirmed it (the second comes two frames
        after the first), and it is looked at again every ``verify_every`` frames: up close the nano
        model still called a dog a person now and then (dogs_jump: the big dog cut by the right edge
        0.83 in frame 60 and 0.15 / 0.30 two frames either side; the small dog pressed against the
        woman 0.59 in frame 18, then 0.00-0.14)."""
        animals_near = self._since_animal <= self._ANIMAL_MEMORY
        if track.get("strong") or track["score"] >= self.cfg.verify_below or self.cfg.verify_below == 0:
            # a person seen surely once stays one (a dog may hide her later)
            track["strong"] = track["person"] = True
            self.tracker.trust(track)  # her track is carried the full ``carry`` frames when lost
            return True
        if track.get("confirmed") and not animals_near:
            track["person"] = True
            return True
        wait = 2 if track.get("confirmed") and not track.get("person") else self.cfg.verify_every
        if "checked" not in track or track["age"] - track["checked"] >= wait:
            others = [t["box"] for t in tracks if t is not track and t.get("person")]
            person, animal = self.detector.verify(img, track["box"], others)
            before, track["confirmed"] = track.get("confirmed", False), person >= self.cfg.det_threshold
            track["animal"] = animal > person
            if animals_near:  # only a person confirmed twice in a row is masked
                track["person"] = track["confirmed"] and before
            else:  # unsure tracks stay (a person half hidden in a group) unless up close it looks like an animal
                track["person"] = track["confirmed"] or animal <= max(person, 0.1)
            track["checked"] = track["age"]
        return track["person"]


def _crop_place(box, margin: float, h: int, w: int):
    """For a x0,y0,x1,y1 box: the square crop window (Y0, Y1, X0, X1), which may overhang the frame,
    and the box grown by ``margin`` inside the frame (gy0, gy1, gx0, gx1); None when degenerate.

    Square, because U²-Net fails on people squashed into its square input, and also on tall narrow
    windows at their own aspect (bmx-trees: recall 0.82 → 0.64 with windows 0.6 as wide as tall:
    without the context beside her, the salient object is elsewhere)."""
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


def _own_corners(greys, patch: np.ndarray, grown, corners: int = 100, quality: float = 0.02):
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
        found += np.float32([x0, y0])
    p1, p0 = _lucas_kanade(cur, prev, found, s)
    return p0, p1


def _grow_box(box, margin: float, h: int, w: int):
    """An x0,y0,x1,y1 box grown by ``margin`` of its size on each side, clipped to the frame, as
    (gy0, gy1, gx0, gx1)."""
    x0, y0, x1, y1 = box
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    return (max(0, int(y0 - my)), min(h, int(round(y1 + my))), max(0, int(x0 - mx)), min(w, int(round(x1 + mx))))


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
    corners fit. Looked at on bmx-trees (the camera panning 12 px a frame): the wall, its painted
    figures, the grass and the trees all fit it within 1 px, the rider's corners are 2 px off or more."""
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
                        people: list = (), least: int = 5):
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


def _place_near(box, grown_boxes, margin: float, h: int, w: int):
    """``_crop_place`` of ``box`` when it overlaps one of the people's ``grown_boxes`` (gy0, gy1,
    gx0, gx1), else None: only an animal or a thing beside a person needs a crop of its own."""
    return _crop_place(box, margin, h, w) if any(_overlap(g, box) for g in grown_boxes) else None


def _belonging_map(patch: torch.Tensor, box, gy0: int, gx0: int, least: float = 0.15) -> torch.Tensor:
    """U²-Net's map (1,h,w) of a belonging's crop (placed at gy0, gx0 in the frame), or, where it
    finds almost nothing of the thing inside its box (``least`` of the box above 0.5: a dark racket
    against a busy banner), the ellipse inscribed in the box: the detector saw it, so it goes."""
    x0, y0, x1, y1 = box
    ys = torch.arange(patch.shape[1], device=patch.device, dtype=torch.float32)[:, None] + gy0 + 0.5
    xs = torch.arange(patch.shape[2], device=patch.device, dtype=torch.float32)[None, :] + gx0 + 0.5
    cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, max((y1 - y0) / 2, 1.0), max((x1 - x0) / 2, 1.0)
    inside = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
    if inside.any() and (patch[0][inside] > 0.5).float().mean() < least:
        return torch.maximum(patch, inside[None].to(patch.dtype))
    return patch


def _kept_map(patch: torch.Tensor, key: dict, memory: int, lost: float = 0.4, window: int = 8) -> torch.Tensor:
    """A person's fresh map (1,h,w) of keyframe ``key``, or, where U²-Net lost her, her good map
    scaled onto her box. Lost: the map covers less than ``lost`` of the share of her box that her
    best map of the last ``window`` frames covered. The good map kept is that best one, while her
    last good map was made at most ``memory`` frames ago. A rider passing behind branches stops
    being the salient thing in his crop while the detector still follows him (bmx-trees frames
    52-60: the map inside his box fell from 0.7 to 0 on his pixels). The best of a few frames, not
    the last map alone: segmented every frame, a map that fades over several frames passed each
    step, and the last of them was a poor one to keep."""
    share = float((patch > 0.5).float().mean())
    good = key.get("good")
    recent = [r for r in (good or {}).get("recent", []) if key["age"] - r[0] < window]
    reference = max(r[1] for r in recent) if recent else None if good is None else good["share"]
    if reference is None or share >= lost * reference:  # U²-Net still finds her: a good map
        recent.append((key["age"], share, patch))
        best = max(recent, key=lambda r: r[1])
        key["good"] = {"age": key["age"], "patch": best[2], "share": best[1], "recent": recent}
    elif key["age"] - good["age"] <= memory:
        kept = resize(good["patch"][None], tuple(patch.shape[1:]), antialias=False)[0]
        return torch.maximum(patch, kept)
    return patch


def _followers(people: list[dict], every: int, fresh: int, margin: float, h: int, w: int) -> list[dict]:
    """The tracks whose last map follows their box in this frame instead of a new crop: of those
    that can (``_follows``), all but the oldest maps, so that at least ``fresh`` people get a new map
    each frame. A lone player is segmented every frame (tennis: a map that follows her box for two
    frames misses the limbs that moved, recall 0.973 against 0.984), a crowd every ``every``-th
    (schoolgirls: 157 crops in 80 frames with ``fresh`` 1, 154 with 0, 183 with 2)."""
    can = [t for t in people if t.get("key") is not None
           and _follows(t["box"], t["key"], t["age"], every, margin, h, w)]
    budget = max(0, fresh - (len(people) - len(can)))
    can.sort(key=lambda t: t["key"]["age"] - t["age"])  # oldest map first
    return can[budget:]


def _follows(box, key: dict, age: int, every: int, margin: float, h: int, w: int) -> bool:
    """Whether the map of keyframe ``key`` ({"age", "box"}) can follow ``box`` at ``age``: made
    fewer than ``every`` frames ago, for a box of the same size (``_similar``), and the box grown by
    ``margin`` lies inside the frame (``_inside``)."""
    return age - key["age"] < every and _similar(box, key["box"]) and _inside(box, margin, h, w)


def _similar(box, key_box, tolerance: float = 0.15) -> bool:
    """Whether a box has kept the width and height of ``key_box`` within ``tolerance``: a map made
    for one can be scaled onto the other. A lunge or a turn changes the box, and the person's shape
    with it (tennis: false area 0.15 → 0.35 of the truth in such frames when the map was reused)."""
    (x0, y0, x1, y1), (k0, l0, k1, l1) = box, key_box
    return abs((x1 - x0) / max(k1 - k0, 1e-6) - 1) < tolerance and abs((y1 - y0) / max(l1 - l0, 1e-6) - 1) < tolerance


def _inside(box, margin: float, h: int, w: int) -> bool:
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


def _padded_crop(x: torch.Tensor, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """x[:, :, y0:y1, x0:x1] where the window may overhang the image: the overhang mirrors the
    image (edge-replicated where the mirror would need more than the image holds). A person cut by
    the frame edge, mirrored, is a whole body that U²-Net segments; replicated edge pixels are
    streaks that it takes for the salient object (vtest: a man entering at the right edge, pixels
    above 0.5 in his box over four frames 0.00/0.05/0.27/0.52 replicated, 0.35/0.42/0.57/0.65
    mirrored; a black border: 0.00/0.00/0.00/0.60)."""
    import torch.nn.functional as F

    h, w = x.shape[2:]
    inner = x[:, :, max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    pads = (max(0, -x0), max(0, x1 - w), max(0, -y0), max(0, y1 - h))
    if not any(pads):
        return inner
    ih, iw = inner.shape[2:]
    mirror = max(pads[:2]) < iw and max(pads[2:]) < ih
    return F.pad(inner, pads, mode="reflect" if mirror else "replicate")


def letterbox(rgb: np.ndarray, side: int = 416) -> tuple[np.ndarray, float]:
    """YOLOX input: (1,3,side,side) float32 BGR 0-255, the image scaled into the top-left corner and
    the rest filled with 114. Returns it and the scale factor."""
    import cv2

    h, w = rgb.shape[:2]
    r = min(side / h, side / w)
    out = np.full((side, side, 3), 114, np.uint8)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    out[:nh, :nw] = cv2.resize(rgb[:, :, ::-1], (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out.transpose(2, 0, 1)[None].astype(np.float32), r


_COCO_ANIMALS = np.arange(14, 24)  # bird, cat, dog, horse, sheep, cow, elephant, bear, zebra, giraffe
# what people carry or ride: bicycle, motorcycle, backpack, umbrella, handbag, suitcase, skis,
# snowboard, baseball bat, baseball glove, skateboard, surfboard, tennis racket (not balls or kites:
# they fly free of the person)
_COCO_BELONGINGS = np.array([1, 3, 24, 25, 26, 28, 30, 31, 34, 35, 36, 37, 38])
# of those, the ones whose box keeps its width while part of it is hidden (not swung or turned:
# umbrella, skis, bat, glove, racket)
_COCO_RIGID = np.array([1, 3, 24, 26, 28, 31, 36, 37])
# of those, what people ride: bicycle, motorcycle, skis, snowboard, skateboard, surfboard
_COCO_RIDDEN = np.array([1, 3, 30, 31, 36, 37])


def decode_yolox(raw: np.ndarray, ratio: float, score_min: float, side: int = 416,
                 nms_iou: float = 0.45, animals: bool = False, belongings: bool = False, rigid_things: bool = False):
    """Person boxes from YOLOX's raw (N,85) grid output: (K,4) x0,y0,x1,y1 in frame pixels and
    (K,) scores = objectness x person class, after NMS. With ``animals=True`` also the animal boxes
    (any COCO animal class winning its anchor) and their scores: ``(people, scores, animals, scores)``;
    with ``belongings=True`` as well, then the boxes of things people carry or ride
    (``_COCO_BELONGINGS`` winning over person and animal) and their scores (a 6-tuple); with
    ``rigid_things`` also whether each thing's class is rigid (``_COCO_RIGID``) and whether it is
    ridden (``_COCO_RIDDEN``; an 8-tuple)."""
    grids, strides = [], []
    for stride in (8, 16, 32):
        n = side // stride
        yv, xv = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack([xv, yv], -1).reshape(-1, 2))
        strides.append(np.full((n * n, 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    xy = (raw[:, :2] + grid) * stride
    wh = np.exp(raw[:, 2:4]) * stride
    all_boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1) / ratio
    person = raw[:, 5]
    animal = raw[:, 5 + _COCO_ANIMALS].max(axis=1)
    # the nano model often calls a dog a person; drop anchors where an animal class wins
    people = _nms(all_boxes, raw[:, 4] * person, (raw[:, 4] * person >= score_min) & (person >= animal), nms_iou)
    if not animals:
        return people
    beasts = _nms(all_boxes, raw[:, 4] * animal, (raw[:, 4] * animal >= score_min) & (animal > person), nms_iou)
    if not belongings:
        return (*people, *beasts)
    thing = raw[:, 5 + _COCO_BELONGINGS].max(axis=1)
    score = raw[:, 4] * thing
    idx = _nms_index(all_boxes, score, (score >= score_min) & (thing > person) & (thing > animal), nms_iou)
    things = _picked(all_boxes, score, idx)
    if not rigid_things:
        return (*people, *beasts, *things)
    # the class winning each kept anchor
    cls = _COCO_BELONGINGS[raw[idx][:, 5 + _COCO_BELONGINGS].argmax(axis=1)]
    return (*people, *beasts, *things, np.isin(cls, _COCO_RIGID), np.isin(cls, _COCO_RIDDEN))


def _nms(boxes: np.ndarray, scores: np.ndarray, keep: np.ndarray, nms_iou: float):
    return _picked(boxes, scores, _nms_index(boxes, scores, keep, nms_iou))


def _picked(boxes: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The boxes (K,4) and scores (K,) at ``idx``, float32."""
    return boxes[idx].astype(np.float32).reshape(-1, 4), scores[idx].astype(np.float32)


def _nms_index(boxes: np.ndarray, scores: np.ndarray, keep: np.ndarray, nms_iou: float) -> np.ndarray:
    """Indices (into ``boxes``) of the ``keep`` boxes left by non-maximum suppression."""
    import cv2

    where = np.flatnonzero(keep)
    if len(where) == 0:
        return where
    kept = boxes[where].astype(np.float32)
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in kept]
    idx = np.array(cv2.dnn.NMSBoxes(xywh, scores[where].astype(np.float32).tolist(), 0.0, nms_iou),
                   dtype=int).reshape(-1)
    return where[idx]


@contextlib.contextmanager
def _quiet_stderr():
    """File descriptor 2 sent to /dev/null meanwhile: native libraries write there directly."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class SelfieNet:
    """MediaPipe selfie segmentation (Apache-2.0, 0.25 MB, run with LiteRT on the CPU cores): a
    network that segments people only. ``(B,3,H,W)`` float RGB in [0,1] → ``(B,1,H,W)`` person
    probability in [0,1], each image at the network's 256 px square and back."""

    side = 256

    def __init__(self, hint: str = "or set segment.person_gate: false"):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # a dependency: only a broken install lacks it
            raise InputError(f"MediaPipe selfie needs the ai-edge-litert package (pip install ai-edge-litert), {hint}") from exc

        from bgclean.weights.registry import REGISTRY
        from bgclean.weights.store import resolve

        path = str(resolve(REGISTRY.get("mediapipe.selfie")))
        with _quiet_stderr():  # LiteRT's C++ logs "INFO: Created TensorFlow Lite XNNPACK delegate"
            self.net = Interpreter(model_path=path, num_threads=max(1, torch.get_num_threads()))
            self.net.allocate_tensors()
        self._in = self.net.get_input_details()[0]["index"]
        self._out = self.net.get_output_details()[0]["index"]

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[2:])
        small = resize(x.float().cpu(), (self.side, self.side)).clamp_(0, 1).permute(0, 2, 3, 1).numpy()
        outs = []
        for img in small:  # the graph takes one image
            self.net.set_tensor(self._in, np.ascontiguousarray(img, np.float32)[None])
            self.net.invoke()
            outs.append(torch.from_numpy(self.net.get_tensor(self._out)[0, :, :, 0].copy()))
        return resize(torch.stack(outs)[:, None], size, antialias=False).clamp_(0, 1).to(x.device)


class PersonGate:
    """The selfie network (``SelfieNet``) as an arbiter: it tells a woman from the dog pressed
    against her, which U²-Net (salient objects) does not. Too loose alone (it covered 0.88-0.99 of
    the woman in dogs_jump crops), so it only arbitrates inside animal boxes. (1,3,S,S) crop in
    [0,1] → (1,1,S,S) person map in [0,1], grown by ``grow`` of the side (a max filter: her outline
    stays hers)."""

    def __init__(self, grow: float = 0.04, net: SelfieNet | None = None):
        self.net = net or SelfieNet()
        self.grow = grow

    @torch.inference_mode()
    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        m = self.net(crop)
        k = 2 * max(1, round(self.grow * max(crop.shape[2:]))) + 1
        return max_filter(m, k, k)


class PersonDetector:
    """YOLOX-nano person boxes on one (H,W,3) uint8 RGB frame: through onnxruntime on a CPU (or
    with its CUDA provider, where the user installed onnxruntime-gpu), else on a CUDA device the
    same graph run by torch (``OnnxGraph``) on the GPU. ``runtime`` forces one: onnxruntime | torch."""

    def __init__(self, device: torch.device, score_min: float = 0.1, runtime: str | None = None):
        import onnxruntime as ort

        from bgclean.weights.registry import REGISTRY
        from bgclean.weights.store import resolve

        path = resolve(REGISTRY.get("yolox.nano"))
        self.score_min = score_min
        self.device = torch.device(device)
        ort_cuda = self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()
        self.runtime = runtime or ("torch" if self.device.type == "cuda" and not ort_cuda else "onnxruntime")
        if self.runtime == "torch":
            from bgclean.models.onnx_graph import OnnxGraph

            self.net = OnnxGraph(path).to(self.device).eval()
            return
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if ort_cuda else ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.input = self.session.get_inputs()[0].name

    def _run(self, x: np.ndarray) -> np.ndarray:
        """The network's raw output (N,3549,85) for letterboxed input ``x`` (N,3,416,416)."""
        if self.runtime == "torch":
            with torch.inference_mode():
                return self.net(torch.from_numpy(x).to(self.device)).float().cpu().numpy()
        return self.session.run(None, {self.input: x})[0]

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes and scores."""
        return self.detect(rgb)[:2]

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, ...]:
        """Person boxes and scores, animal boxes and scores, then boxes and scores of things people
        carry or ride and whether each is rigid (``decode_yolox``)."""
        return self.detect_many([rgb])[0]

    def detect_many(self, images) -> list[tuple[np.ndarray, ...]]:
        """``detect`` for each of ``images``: in one network call on torch (a GPU's batch), a frame
        at a time on onnxruntime (whose graph takes one frame; nor are the inputs held together)."""
        if self.runtime == "torch":
            boxed = [letterbox(rgb) for rgb in images]
            raws = self._run(np.concatenate([x for x, _ in boxed])) if boxed else []
            found = zip(raws, (ratio for _, ratio in boxed))
        else:  # lazily: one frame's input at a time
            found = ((self._run(x)[0], ratio) for x, ratio in map(letterbox, images))
        return [decode_yolox(raw, ratio, self.score_min, animals=True, belongings=True, rigid_things=True)
                for raw, ratio in found]

    def look(self, rgb: np.ndarray, box, grow: float, score_min: float = 0.02):
        """The detector on a square crop around ``box`` (grown by ``grow``), scaled up to its input:
        (people (N,4), their scores, animals (M,4), their scores), boxes in frame coordinates."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = box
        side = max(x1 - x0, y1 - y0) * (1 + grow)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        X0, Y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        X1, Y1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
        if X1 - X0 < 2 or Y1 - Y0 < 2:
            empty = np.zeros((0, 4), np.float32)
            return empty, np.zeros(0, np.float32), empty, np.zeros(0, np.float32)
        x, ratio = letterbox(np.ascontiguousarray(rgb[Y0:Y1, X0:X1]))
        raw = self._run(x)[0]
        people, people_scores, animals, animal_scores = decode_yolox(raw, ratio, score_min, animals=True)
        shift = np.array([X0, Y0, X0, Y0], np.float32)
        return people + shift, people_scores, animals + shift, animal_scores

    def verify(self, rgb: np.ndarray, box, others=(), grow: float = 0.5) -> tuple[float, float]:
        """A second, zoomed-in look (``look``) at ``box``. Returns the best person score and the best
        animal score of boxes matching ``box`` (IoU >= 0.3), people counted only where they match
        ``box`` better than any of ``others`` (the people already known). At 416 px on a whole frame
        the nano model calls a small dog a person with scores up to 0.6; seen up close, the same dog
        scores under 0.15 as a person and higher as an animal, while people score over 0.75."""
        people, people_scores, animals, animal_scores = self.look(rgb, box, grow)
        # the woman beside the dog is found in the dog's crop too: she is not the dog
        person = best_match(box, people, people_scores, rivals=others)
        animal = best_match(box, animals, animal_scores)
        return (0.0 if person is None else float(people_scores[person]),
                0.0 if animal is None else float(animal_scores[animal]))


def best_match(box, found: np.ndarray, scores: np.ndarray, rivals=(), min_iou: float = 0.3) -> int | None:
    """Index of the highest-scoring of the ``found`` (N,4) boxes that match ``box`` (IoU >=
    ``min_iou``) better than any of ``rivals`` (or overlap every rival by less than 0.5); None when
    none does."""
    if len(found) == 0:
        return None
    iou = box_iou(np.array([box], np.float32), found)[0]
    match = iou >= min_iou
    if len(rivals):
        rival = box_iou(np.array(rivals, np.float32).reshape(-1, 4), found).max(axis=0)
        match &= (rival < 0.5) | (iou > rival)
    return int(np.argmax(np.where(match, scores, -np.inf))) if match.any() else None


def _area(boxes: np.ndarray) -> np.ndarray:
    """Areas of (N,4) x0,y0,x1,y1 boxes."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M) intersection areas of (N,4) and (M,4) x0,y0,x1,y1 boxes."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)


def _inside_share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M): the share of each of the (N,4) boxes ``a`` that lies inside each of the (M,4) ``b``."""
    return _intersection(a, b) / np.maximum(_area(a)[:, None], 1e-6)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of (N,4) and (M,4) x0,y0,x1,y1 boxes."""
    inter = _intersection(a, b)
    return inter / np.maximum(_area(a)[:, None] + _area(b)[None, :] - inter, 1e-6)


def _velocity(track: dict, new) -> list[float]:
    """A track's velocity once its box moves to ``new``: its centre's, smoothed over the matches. A
    box that jumps or shrinks once (a rider half behind a branch) must not send a carried box off,
    and moving the four sides apart turned carried boxes inside out (bmx-trees frames 53-60)."""
    old = track["box"]
    step = [(new[0] + new[2] - old[0] - old[2]) / 2, (new[1] + new[3] - old[1] - old[3]) / 2]
    return step if track["age"] == 0 else [(v + d) / 2 for v, d in zip(track["velocity"], step)]


def _rigid_box(track: dict, new: list[float], memory: int = 8, shrink: float = 0.85) -> list[float]:
    """``new`` (a rigid thing's matched box) at least ``shrink`` of the width of the widest of the
    track's last ``memory`` boxes seen, grown to that width on the side that moved most from the
    track's box (``BoxTracker``, ``rigid``). Keeps the widths in ``track["widths"]``. Only the
    width: holding the height too gave bmx-trees the same recall and 0.017x the truth's area
    more (2.519 against 2.501 at ``propagate.unchanged_tolerance`` 0.04)."""
    old = track["box"]
    widths = track.setdefault("widths", [old[2] - old[0]])  # from its first box on
    widths[:] = (widths + [new[2] - new[0]])[-memory:]
    out = list(new)
    width = max(widths)
    moved = abs(new[0] - old[0]), abs(new[2] - old[2])
    if new[2] - new[0] < shrink * width:
        if moved[1] >= moved[0]:
            out[2] = new[0] + width
        else:
            out[0] = new[2] - width
    return out


class BoxTracker:
    """Hysteresis and carry-over for person boxes: a person starts at score >= ``start``, is kept
    while a box of score >= ``keep`` overlaps it, and stays at its last box for ``carry`` frames
    after the detector loses it (a person missed in one frame stays masked), moving at her centre's
    last velocity. A track starts with ``weak_carry`` (default ``carry``) frames of carry; ``trust``
    gives it the full ``carry``. Two tracks whose boxes overlap by ``merge_iou`` or more are one
    person: the older is kept, at the box of whichever of the two was seen last.

    ``rigid`` (a bike, a bag; ``update_tracks`` is told which boxes are): a matched box narrower
    than 0.85 of the track's widest of its last 8 boxes seen keeps that width, grown on the side
    that moved most since the last frame: the part passing behind something is still there
    (bmx-trees frames 13-15: the bike's box shrank from 97 to 61 px wide as its front wheel passed
    behind a trunk, and the wheel right of the trunk was left out of every crop; a ghost wheel in
    frames 15-16). A racket swung and turned is not held (tennis frames 48-51 at 720p, 163 -> 91 px
    wide: held at 174 px, the shadow below it was lost, recall 0.983 -> 0.980).

    Why merge: while her track is carried, the detector finds her again and a second track starts on
    her; the two then share her detections, each is lost every other frame and carried off at its own
    stale velocity (bmx-trees frames 45-64: the rider behind branches, recall of those frames
    0.5-0.9 with two tracks, 0.9-1.0 with one).
    """

    def __init__(self, start: float, keep: float, carry: int, match_iou: float = 0.3, weak_carry: int | None = None,
                 merge_iou: float = 0.5, rigid: bool = False):
        self.start, self.keep, self.carry, self.match_iou, self.merge_iou = start, keep, carry, match_iou, merge_iou
        self.rigid = rigid
        self.weak_carry = carry if weak_carry is None else weak_carry
        self.reset()

    def reset(self) -> None:
        self.tracks: list[dict] = []

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> list[tuple[float, float, float, float]]:
        return [tuple(t["box"]) for t in self.update_tracks(boxes, scores)]

    def trust(self, track: dict) -> None:
        """A caller sure that ``track`` is a person: carried the full ``carry`` frames when lost."""
        track["carry"] = self.carry

    def recover(self, track: dict, box, score: float) -> None:
        """A lost ``track`` found again by a closer look this frame: at ``box``, seen."""
        new = [float(v) for v in box]
        track.update(velocity=_velocity(track, new), box=new, missed=0, score=score)

    def update_tracks(self, boxes: np.ndarray, scores: np.ndarray, rigid: np.ndarray | None = None) -> list[dict]:
        """Like ``update``, returning the live tracks: dicts with ``box``, ``score`` (of the last
        detection matched), ``age`` (frames since the track started) and ``missed``; callers may keep
        their own keys in them. ``rigid`` (bool per box, with a ``rigid`` tracker): which boxes are
        of rigid things (default: all)."""
        cand = boxes[scores >= self.keep]
        cand_scores = scores[scores >= self.keep]
        cand_rigid = np.ones(len(cand), bool) if rigid is None else np.asarray(rigid)[scores >= self.keep]
        used = np.zeros(len(cand), bool)
        if self.tracks and len(cand):
            iou = box_iou(np.array([t["box"] for t in self.tracks]), cand)
            for ti, ci in sorted(np.argwhere(iou >= self.match_iou).tolist(), key=lambda tc: -iou[tc[0], tc[1]]):
                track = self.tracks[ti]
                if used[ci] or track.get("seen"):
                    continue
                new = cand[ci].tolist()
                if self.rigid and cand_rigid[ci]:
                    new = _rigid_box(track, new)
                track.update(velocity=_velocity(track, new), box=new, missed=0, seen=True, score=float(cand_scores[ci]))
                used[ci] = True
        for track in self.tracks:
            track["age"] += 1
            if not track.pop("seen", False):
                track["missed"] += 1
                # a lost person keeps moving as she did, at her last size (occlusion by a tree, motion blur)
                vx, vy = track["velocity"]
                track["box"] = [track["box"][0] + vx, track["box"][1] + vy, track["box"][2] + vx, track["box"][3] + vy]
        self.tracks = [t for t in self.tracks if t["missed"] <= t["carry"]]
        for ci in np.flatnonzero(~used & (cand_scores >= self.start)):
            self.tracks.append({"box": cand[ci].tolist(), "missed": 0, "velocity": [0.0, 0.0], "carry": self.weak_carry,
                                "score": float(cand_scores[ci]), "age": 0})
        self.tracks = self._merged(self.tracks)
        return self.tracks

    def _merged(self, tracks: list[dict]) -> list[dict]:
        """``tracks`` without the younger of any two overlapping by ``merge_iou`` or more; the older
        takes the younger's box, score and velocity when the younger was seen more recently, and the
        longer carry of the two."""
        if len(tracks) < 2:
            return tracks
        kept: list[dict] = []
        for t in sorted(tracks, key=lambda t: -t["age"]):
            same = [k for k in kept if box_iou(np.array([k["box"]]), np.array([t["box"]]))[0, 0] >= self.merge_iou]
            if not same:
                kept.append(t)
            else:
                same[0]["carry"] = max(same[0]["carry"], t["carry"])
                if same[0]["missed"] > t["missed"]:
                    same[0].update(box=t["box"], missed=t["missed"], score=t["score"], velocity=t["velocity"])
        return [t for t in tracks if any(t is k for k in kept)]


class RobustVideoMatting:
    """Robust Video Matting (MobileNetV3) through onnxruntime: a recurrent human matting network, so
    frames must come in order and ``reset()`` starts a new video. (B,3,H,W) RGB in [0,1] → (B,1,H,W)
    alpha in [0,1]. GPL-3.0 weights, fetched only when the user picks this backend."""

    def __init__(self, device: torch.device, download_progress=None, side: int = 512):
        import onnxruntime as ort

        from bgclean.weights.registry import REGISTRY
        from bgclean.weights.store import resolve

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        log.info("Robust Video Matting weights are GPL-3.0 (opt-in backend)")
        self.session = ort.InferenceSession(str(resolve(REGISTRY.get("rvm.mobilenetv3"), download_progress)),
                                            opts, providers=providers)
        self.side = side  # the network's internal long side (its downsample_ratio), px
        self.reset()

    def reset(self) -> None:
        self.state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        self.shape = None

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        h, w = frames.shape[2:]
        if self.shape != (h, w):  # a new size cannot reuse the recurrent state
            self.state, self.shape = [np.zeros((1, 1, 1, 1), np.float32)] * 4, (h, w)
        ratio = np.array([min(1.0, self.side / max(h, w))], np.float32)
        outs = []
        for f in frames.float().cpu().numpy():
            fgr, pha, *self.state = self.session.run(None, {
                "src": f[None], "r1i": self.state[0], "r2i": self.state[1], "r3i": self.state[2],
                "r4i": self.state[3], "downsample_ratio": ratio})
            outs.append(torch.from_numpy(pha[0]))
        return torch.stack(outs).to(frames.device).clamp_(0, 1)


class _RembgSession:
    """rembg's own models through its session API (downloads its models on first use)."""

    def __init__(self, name: str):
        try:
            import rembg
        except ImportError:
            raise InputError(
                f"--segmenter rembg:{name} needs the rembg package: pip install rembg "
                "(its models download from the internet on first use)"
            ) from None
        try:
            self.session = rembg.new_session(name)
        except Exception as exc:
            raise InputError(f"rembg could not open session {name!r}: {exc}") from exc

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        import numpy as np
        from PIL import Image

        outs = []
        for f in frames:
            arr = (f.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            masks = self.session.predict(Image.fromarray(arr))
            m = np.asarray(masks[0].convert("L").resize((arr.shape[1], arr.shape[0])), dtype=np.float32)
            outs.append(torch.from_numpy(m / 255.0)[None])
        return torch.stack(outs).to(frames.device)
