"""The segmentation stage: soft person maps for a window of frames, from person boxes (tracked) and a
network inside each."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bgclean.errors import InputError
from bgclean.ops import check_frames, frame_unit, max_filter, resize, to_integers
from bgclean.stages.segment.backends import RobustVideoMatting, SelfieNet, _RembgSession
from bgclean.stages.segment.config import SEGMENTER_KINDS, SegmentConfig
from bgclean.stages.segment.crops import (
    Keyframe,
    _follows,
    _grow_box,
    _overlap,
    _place_near,
    crop_place,
    followers,
    kept_map,
    map_or_ellipse,
    padded_crop,
)
from bgclean.stages.segment.detector import PersonDetector, box_iou
from bgclean.stages.segment.motion import camera_motion, track_corners
from bgclean.stages.segment.people import _PeopleRules
from bgclean.stages.segment.tracking import BoxTracker, Track

log = logging.getLogger(__name__)


_MEAN = (0.485, 0.456, 0.406)


_STD = (0.229, 0.224, 0.225)


def segmenter_names() -> list[str]:
    """The segmenters ``segment.backend`` names (rembg sessions as ``rembg:<session>``)."""
    return [*SEGMENTER_KINDS, "rembg:<session>"]


class SegmentStage(_PeopleRules):
    """``(B,3,H,W)`` float RGB in [0,1] → ``(B,1,H,W)`` float person probability in [0,1].

    Detector backends keep temporal state (tracked person boxes) across calls: windows of one video
    must come in order, and ``reset()`` starts a new video.
    """

    def __init__(self, cfg: SegmentConfig, device: torch.device | str = "cpu", download_progress=None):
        self.cfg = cfg
        self.device = torch.device(device)
        self.model: Any = None  # the whole-frame or crop network: onnxruntime, torch or LiteRT
        self.detector: PersonDetector | None = None
        #: the frames are unrelated stills (the hooks' batches), not a video
        self.stills = False
        self.rvm: RobustVideoMatting | None = None
        if cfg.backend.startswith("rembg:"):
            self._rembg = _RembgSession(cfg.backend.split(":", 1)[1])
            return
        if cfg.backend not in segmenter_names():
            raise InputError(f"unknown segmenter {cfg.backend!r}; choose one of: {', '.join(segmenter_names())}")
        # the network people's crops get where it is not U²-Net: yolox+mediapipe.selfie segments
        # people with the selfie network, and what they carry and the animals beside them (no
        # person in those crops) with U²-Net small, which takes the salient object
        self.person_net = None
        self.selfie = cfg.backend == "mediapipe.selfie"  # alone, on whole frames
        u2: str | None = cfg.backend.removeprefix("yolox+")
        if cfg.backend.endswith("mediapipe.selfie"):
            selfie = SelfieNet(hint=f"or choose another --segmenter than {cfg.backend}")
            self.person_net, u2 = (None, None) if self.selfie else (selfie, "u2net.small")
        if cfg.backend.endswith("rvm"):
            self.rvm = RobustVideoMatting(self.device, download_progress)
            self.model, self.dtype = self.rvm, torch.float32
        elif u2 is None:  # mediapipe.selfie alone
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
            # a weak track (painted figures score low and flicker) is carried two frames at most, a
            # surely seen person the full ``carry``: less false area and fewer crops for the same
            # recall (bench/RESULTS.md, "Segmentation")
            self.tracker = BoxTracker(cfg.det_threshold, cfg.det_keep, cfg.carry, weak_carry=min(2, cfg.carry))
            # an animal's track starts and is kept only by sure boxes (a weak one at her feet can
            # span the dog and her legs, and take her legs out of her mask), and only one seen
            # surely (``_SURE_ANIMAL``) is carried when lost
            self.animal_tracker = BoxTracker(cfg.animal_threshold, cfg.animal_threshold, cfg.animal_carry, weak_carry=0)
            self.thing_tracker = BoxTracker(cfg.belongings_score, min(cfg.belongings_score, self._THING_KEEP),
                                            self._THING_CARRY, rigid=True)
        self._gate = None  # PersonGate, built when an animal first overlaps a person
        self._since_animal = 1 << 30
        self._frame = 0  # frames segmented since the last reset
        self._grey = None  # the previous frame's ``small_grey`` and its full size, for the corners' motion
        self._still_at: int | None = None  # the frame the scene was last seen still, while it stays so
        self._belongings: list[Keyframe] = []  # belongings' keyframes
        self._mean = torch.tensor(_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(_STD, device=self.device).view(1, 3, 1, 1)

    def reset(self) -> None:
        self._since_animal = 1 << 30
        self._frame, self._belongings, self._grey, self._still_at = 0, [], None, None
        if self.detector is not None:
            self.tracker.reset()
            self.animal_tracker.reset()
            self.thing_tracker.reset()
        if self.rvm is not None:
            self.rvm.reset()

    def preprocess(self, frames: torch.Tensor, side: int | None = None) -> torch.Tensor:
        """rembg's normalisation: resize to the network side, divide by the image max, ImageNet stats."""
        side = side or self.cfg.resolution
        x = resize(frames, (side, side))
        peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        return (x / peak - self._mean) / self._std

    @property
    def batch_size(self) -> int:
        """Frames or crops per network call. On a CPU, two: as fast as four, and onnxruntime's
        activations take half the memory, where a batch of four set the segmentation stage's
        memory peak (bench/RESULTS.md, "Memory")."""
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
        for i, (img, found) in enumerate(zip(u8, self._detector.detect_many(u8))):
            boxes, scores, animals, animal_scores = found[:4]
            self._since_animal = 0 if (animal_scores >= self.cfg.det_threshold).any() else self._since_animal + 1
            tracks = self.tracker.update_tracks(boxes, scores)
            for t in tracks:
                place = crop_place(t.box, self.cfg.box_margin, h, w) if self._is_person(img, t, tracks) else None
                if place:
                    gy0, gy1, gx0, gx1 = place[4]
                    out[i, :, gy0:gy1, gx0:gx1] = 1
        return out

    def _person_crops(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Person boxes (tracked over time), each grown by ``box_margin``, segmented by U²-Net at
        ``crop_resolution``; the soft map is the max over crops and 0 outside every box. Animals the
        detector finds next to a person are segmented too and taken out of her mask (a dog at her feet
        stays in the video); what she carries or rides (``belongings_score``: a bag, a racket, a bike
        touching her box) is segmented in its own crop and joins her mask. With ``every`` > 1 a
        person is segmented on every ``every``-th frame of her track; in between, while her box
        keeps its size, her last map follows her box (a belonging's map follows its box likewise)."""
        h, w = frames.shape[2:]
        every = self.cfg.every or (1 if self.device.type == "cuda" else 3)
        u8 = to_integers(frames)
        plan = _CropPlan()
        detections = self._detector.detect_many(u8)  # the window's frames in one call on a GPU
        for i, img in enumerate(u8):
            self._plan_frame(plan, i, img, detections[i], every, h, w)
        soft = torch.zeros(frames.shape[0], 1, h, w, device=frames.device)
        if not plan.places and not plan.reused:
            return soft, None, None
        animal, pastes = self._maps(frames, plan, soft)
        self._paste_people(soft, pastes, plan.motion, len(u8))
        if not any(len(animals) for _, animals in plan.tight):  # no animal: nothing to keep out (no frame-sized maps)
            return soft.clamp_(0, 1), None, None
        return self._animals_apart(frames, soft, animal, plan.tight)

    def _frame_tracks(self, img: np.ndarray, detection: tuple) -> tuple:
        """One frame's detections through the trackers: (tracks, people among them, animal boxes,
        belongings' boxes and tracks, ridden things' boxes)."""
        boxes, scores, animals, animal_scores, things, thing_scores, thing_rigid, ridden = detection
        ridden = things[ridden & (thing_scores >= self.cfg.belongings_score)]  # a bike, a board, as detected
        # tracked like people: an animal the detector misses for a frame or two stays kept out of
        # her mask (its score wavers from frame to frame while it moves)
        if self.cfg.animal_carry:
            tracked = self.animal_tracker.update_tracks(animals, animal_scores)
            for t in tracked:
                if t.score >= self._SURE_ANIMAL:
                    self.animal_tracker.trust(t)
            animals = np.array([t.box for t in tracked], np.float32).reshape(-1, 4)
        else:
            animals = animals[animal_scores >= self.cfg.animal_threshold]
        if self.cfg.belongings_score > 0:
            # tracked too: a bike behind a tree is missed for a frame or two while he rides on
            thing_tracks = self.thing_tracker.update_tracks(things, thing_scores, rigid=thing_rigid)
            things = np.array([t.box for t in thing_tracks], np.float32).reshape(-1, 4)
        else:
            things, thing_tracks = things[:0], []
        self._since_animal = 0 if len(animals) else self._since_animal + 1
        scores = self._confirm_entering(img, boxes, scores)
        boxes = self._hold_merged(boxes, animals)
        tracks = self.tracker.update_tracks(boxes, scores)
        self._look_for_lost(img, tracks, animals)
        people = [t for t in tracks if self._is_person(img, t, tracks)]
        return tracks, people, animals, things, thing_tracks, ridden

    def _scene_motion(self, greys, tracks: list[Track], people: list[Track], animals: np.ndarray, things: np.ndarray,
                      thing_tracks: list[Track], h: int, w: int):
        """The camera's motion this frame, from corners tracked where they can say something: a
        person not yet seen to move (is she scenery? while the scene stays still nothing can tell,
        so it is looked at again only every few frames) or a track the detector lost (where did she
        go?). None where corners were not tracked; else (corners before, after, camera motion, the
        grown boxes of what people carry with their tracks, the small greys)."""
        unsure = any(not t.moved for t in people) and (
            self._still_at is None or self._frame - self._still_at >= self._STILL_RECHECK)
        if greys is None or not (unsure or any(t.missed for t in tracks)):
            return None
        flow = track_corners(greys[0][0], greys[1][0], greys[0][1])
        # the scene's motion: people known to move and what they carry or ride are not the scene
        carried = [(_grow_box(b, 0.1, h, w), t) for b, t in zip(things, thing_tracks)]
        moving = [crop_place(t.box, self.cfg.box_margin, h, w) for t in people if t.moved]
        camera = camera_motion(*flow, [p[4] for p in moving if p] + [g for g, _ in carried], frame_unit(h, w))
        if camera is None:
            return None
        self.carry_by_corners(tracks, flow, camera, animals, frame_unit(h, w))
        self._still_at = self._frame if camera[1] < self._SCENERY_CAMERA else None
        # the small greys too: a smooth figure's own corners are looked for once its map is made
        return (*flow, camera, carried, greys)

    def _plan_frame(self, plan: _CropPlan, i: int, img: np.ndarray, detection: tuple, every: int,
                    h: int, w: int) -> None:
        """Track frame ``i`` and add its crops to ``plan``: people's, animals' beside them, belongings'."""
        greys = self._greys(img)
        tracks, people, animals, things, thing_tracks, ridden = self._frame_tracks(img, detection)
        plan.motion.append(self._scene_motion(greys, tracks, people, animals, things, thing_tracks, h, w))
        grown_boxes = self._plan_people(plan, i, people, ridden, every, h, w)
        for box in animals:
            place = _place_near(box, grown_boxes, 0.05, h, w)
            if place:
                plan.places.append((i, True, *place, None))
        self._plan_belongings(plan, i, things, thing_tracks, grown_boxes, every, h, w)
        self._frame += 1
        # a weak track that looked like an animal up close is one too (a small dog pressed
        # against her can score as a person)
        like_animals = [t.box for t in tracks if t.animal and not any(t is p for p in people)]
        animals_all = np.concatenate([animals, np.array(like_animals, np.float32).reshape(-1, 4)])
        plan.tight.append(([t.box for t in people], animals_all))

    def _plan_people(self, plan: _CropPlan, i: int, people: list[Track], ridden: np.ndarray, every: int,
                     h: int, w: int) -> list:
        """Each person's crop in frame ``i``: a new map (a keyframe) or her last one following her
        box; returns the grown boxes of the people who are not scenery."""
        grown_boxes = []
        follow = followers([t for t in people if not self._scenery_now(t)], every, self.cfg.fresh,
                           self.cfg.box_margin, h, w)
        for t in people:
            place = crop_place(t.box, self.cfg.box_margin, h, w)
            if not place:
                continue
            if not self._scenery_now(t):  # what touches a painted figure is not carried
                grown_boxes.append(place[4])
            if self.person_net is not None and any(_overlap(place[4], b) for b in ridden):
                t.rides = self._frame
            key = t.key
            # scenery's map only tells whether its pixels start to move on their own: its last
            # one follows its box
            if any(t is f for f in follow) or (key is not None and self._scenery_now(t)):
                plan.reused.append((i, place[4], key, t))
                continue
            # a keyframe, filled with her map once the batch has run; her good map is taken from the
            # key before once that one's map is made: keys of one window are all made before its batch
            t.key = key = Keyframe(t.age, list(t.box), t, strong=t.strong, prev=key, waiting=True)
            # a person network leaves out what she rides: her crop gets U²-Net while she was seen
            # on it lately (the detector can miss the bike behind a trunk); and it loses much of a
            # person half hidden behind another, so a crop another person's box reaches gets U²-Net too
            key.u2net = self.person_net is not None and (
                self._frame - t.rides <= self._RIDE_MEMORY
                or self._among_others(t, place[4], people))
            plan.places.append((i, False, *place, key))
        return grown_boxes

    def _plan_belongings(self, plan: _CropPlan, i: int, things: np.ndarray, thing_tracks: list[Track],
                         grown_boxes: list, every: int, h: int, w: int) -> None:
        """A bag, a racket, a bike touching a person joins her mask: its crop in frame ``i``, or
        (like a person's map) its last map following its box between keyframes."""
        for box, thing in zip(things, thing_tracks):
            place = _place_near(box, grown_boxes, 0.1, h, w)
            if not place:
                continue
            keys = [k for k in self._belongings if _follows(box, k, self._frame, every, 0.1, h, w)
                    and box_iou(np.array([box]), np.array([k.box]))[0, 0] > 0.5]
            if keys:
                plan.reused.append((i, place[4], keys[0], thing))
            else:
                key = Keyframe(self._frame, list(box), thing, ellipse=True)
                self._belongings.append(key)
                plan.places.append((i, False, *place, key))
        self._belongings = [k for k in self._belongings if self._frame - k.age < every]

    def _crop_probabilities(self, frames: torch.Tensor, places: list) -> list[torch.Tensor]:
        """Every planned crop cut (a batch at a time: a window of a crowd holds a hundred) and
        segmented at ``crop_resolution``: people's by the person network where there is one;
        animals', belongings', riders' and people's among others by U²-Net (it takes the bike with
        him, a salient object; the person network does not). Small people are scaled up to the
        crop side: U²-Net small loses much of a person at her native size (bench/RESULTS.md)."""
        side = self.cfg.crop_resolution
        by_person_net = [self.person_net is not None and not is_animal
                         and not (key is not None and (key.ellipse or key.u2net)) for _, is_animal, *_, key in places]
        probs: list = [None] * len(places)
        for person in (False, True):
            group = [n for n, b in enumerate(by_person_net) if b == person]
            for k in range(0, len(group), self.batch_size):
                part = group[k : k + self.batch_size]
                crops = [resize(padded_crop(frames[i : i + 1], Y0, Y1, X0, X1), (side, side))
                         for i, _, Y0, Y1, X0, X1, _, _ in (places[n] for n in part)]
                x = torch.cat(crops)
                # crops are side x side
                out = self.person_net(x) if person and self.person_net is not None else self._u2net(x, side)
                for n, p in zip(part, out):
                    probs[n] = p
        return probs

    def _maps(self, frames: torch.Tensor, plan: _CropPlan, soft: torch.Tensor) -> tuple[dict, list]:
        """Each crop's map cut to its grown box: animals' gathered per frame ((1,H,W) maps), the
        others (people's, belongings', and the maps that follow a box) as pastes in frame order:
        (frame, grown box, map, track or None)."""
        h, w = soft.shape[2:]
        animal: dict[int, torch.Tensor] = {}
        pastes = []
        for p, (i, is_animal, Y0, Y1, X0, X1, (gy0, gy1, gx0, gx1), key) in zip(
                self._crop_probabilities(frames, plan.places), plan.places):
            if key is not None and key.waiting:  # in frame order: the key before is done
                prev, key.prev, key.waiting = key.prev, None, False
                key.good = None if prev is None else prev.good
            patch = resize(p[None], (Y1 - Y0, X1 - X0), antialias=False)[0]
            # keep only the grown box: the square also holds neighbours (a dog beside her)
            patch = patch[:, gy0 - Y0 : gy1 - Y0, gx0 - X0 : gx1 - X0]
            if key is not None and key.ellipse:
                patch = map_or_ellipse(patch, key.box, gy0, gx0)
            elif key is not None and key.strong and not is_animal:  # not for a weak track: a painted figure
                patch = kept_map(patch, key, 3 * self.cfg.carry)
            seen = key is not None and not key.ellipse and not is_animal and (key.strong or key.track.person)
            if self.stills and seen and key is not None:
                # a still has no other frame to find her in: where her map found almost nothing of
                # a person the detector saw (a small, blurred girl in a 256 px still), her box's
                # ellipse goes. Not in a video: there the map also tells whether she moves with the
                # scene, and an ellipse of background would make a rider behind trees scenery
                patch = map_or_ellipse(patch, key.box, gy0, gx0)
            if is_animal:
                target = animal.setdefault(i, soft.new_zeros(1, h, w))
                target[:, gy0:gy1, gx0:gx1] = torch.maximum(target[:, gy0:gy1, gx0:gx1], patch)
            else:
                pastes.append((i, (gy0, gy1, gx0, gx1), patch, None if key is None else key.track))
            if key is not None:
                key.patch = patch
        for i, (gy0, gy1, gx0, gx1), key, t in plan.reused:
            patch = resize(key.patch[None], (gy1 - gy0, gx1 - gx0), antialias=False)[0]
            pastes.append((i, (gy0, gy1, gx0, gx1), patch, t))
        pastes.sort(key=lambda e: e[0])
        return animal, pastes

    def _paste_people(self, soft: torch.Tensor, pastes: list, motion: list, frames: int) -> None:
        """Paste the maps into ``soft`` (max), leaving out what is scenery by the evidence of the
        whole window: a figure found to be scenery by its end is left out of the frames before too
        (its first frames in view come before two frames of evidence)."""
        h, w = soft.shape[2:]
        scenery = []  # per paste: its track was scenery by the evidence up to its frame
        for i, grown, patch, t in pastes:
            if t is None or motion[i] is None:
                scenery.append(False)
                continue
            # people known to move (by now: the evidence of this window's earlier frames
            # counts) and their belongings are not the scene
            moving = [g for g, o in motion[i][3] if o is not t] + [
                g for j, g, _, o in pastes if j == i and o is not None and o is not t and o.moved]
            scenery.append(self.is_scenery(t, (*motion[i][:3], moving), patch, grown, self._frame - frames + i,
                                            h, w, greys=motion[i][4]))
        for (i, (gy0, gy1, gx0, gx1), patch, t), was in zip(pastes, scenery):
            if was or (t is not None and self._scenery_now(t)):
                continue
            soft[i, :, gy0:gy1, gx0:gx1] = torch.maximum(soft[i, :, gy0:gy1, gx0:gx1], patch)

    def _animals_apart(self, frames: torch.Tensor, soft: torch.Tensor, animal: dict, tight: list) -> tuple:
        """Animals beside people taken out of their masks: (soft maps, what her dilation must leave
        alone, the animals' own pixels for propagation to avoid), a frame at a time and only for the
        frames with an animal (window-sized float maps here would set the stage's memory peak)."""
        h, w = soft.shape[2:]
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
        # grown by 3 px (an outline of fur is loose), kept as bool
        movers = None
        for i, own in dogs.items():
            own &= soft[i] < 0.5
            if own.any():  # animal boxes, none beside a person, leave it None
                if movers is None:
                    movers = torch.zeros(soft.shape, dtype=torch.bool, device=soft.device)
                movers[i] = max_filter(own[None].float(), 7, 7)[0] > 0
        return soft, keep_out, movers


@dataclass
class _CropPlan:
    """What a window's frames need segmented, gathered frame by frame before any network runs."""

    # (frame, is an animal, crop y0, y1, x0, x1, grown box, key or None): crops to segment
    places: list = field(default_factory=list)
    # (frame, grown box, key, track): maps that follow a box instead
    reused: list = field(default_factory=list)
    # per frame: (people's boxes, animals' boxes)
    tight: list = field(default_factory=list)
    # per frame: ``_scene_motion``'s result or None
    motion: list = field(default_factory=list)
