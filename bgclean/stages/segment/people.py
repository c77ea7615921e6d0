"""Which tracks are people, where a lost one went, and which pixels beside a person are an animal's:
the rules the segmentation stage applies to its tracks."""

from __future__ import annotations

import logging

import numpy as np
import torch

from bgclean.ops import frame_unit
from bgclean.stages.segment.backends import PersonGate, SelfieNet
from bgclean.stages.segment.config import SegmentConfig
from bgclean.stages.segment.crops import (
    _box_window,
    _overlap,
    crop_place,
    padded_crop,
)
from bgclean.stages.segment.detector import PersonDetector, _area, _inside_share, best_match, box_iou
from bgclean.stages.segment.motion import (
    _in_boxes,
    _off_scene,
    _own_corners,
    small_grey,
    surroundings_motion,
)
from bgclean.stages.segment.tracking import BoxTracker, Track

log = logging.getLogger(__name__)


class _PeopleRules:
    """Part of ``SegmentStage``: the rules applied to each frame's tracks, with the state they read
    and keep (set by the stage) and their tuning constants."""

    cfg: SegmentConfig
    detector: PersonDetector | None  # None for the backends without one (the rules are not used then)
    tracker: BoxTracker
    person_net: SelfieNet | None  # the person-only network, where the backend has one
    _gate: PersonGate | None  # built when an animal first overlaps a person
    _since_animal: int  # frames since an animal was last seen
    _frame: int  # frames segmented since the last reset
    _grey: tuple | None  # the previous frame's small grey and its full size

    @property
    def _detector(self) -> PersonDetector:
        """The detector, which every rule on tracks consults (backends without one use none of them)."""
        if self.detector is None:
            raise RuntimeError("the rules on tracks need a person detector")
        return self.detector

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
        # her claim on a pixel of an animal's box does not count (her crop also takes a small dog
        # sitting against her legs)
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
                # her; more growth gives her more recall and masks more of the dog
                mx, my = self._OWN_GROWTH * (x1 - x0), self._OWN_GROWTH * (y1 - y0)
                own = (slice(None), *_box_window((x0 - mx, y0 - my, x1 + mx, y1 + my)))
                animal[own] = 0
                boxes[own] = 0
        animal.clamp_(0, 1)
        # what only the animal's crop or box claims stays out of her dilation; where she claims a
        # pixel too it leaves her map but stays reachable (a small dog's crop also takes the legs of
        # the woman it stands against: kept out of her mask, they would be left in the video)
        keep_out |= torch.maximum(animal, boxes).mul_(hers.mul_(soft.clamp(0, 1)).neg_().add_(1)) > 0.5
        soft.mul_(animal.neg_().add_(1))
        return dogs

    def _gate_animals(self, frames: torch.Tensor, tight: list, soft: torch.Tensor, keep_out: torch.Tensor) -> None:
        """Where an animal's box overlaps a person's grown box, a person-only segmenter (MediaPipe
        selfie, ``PersonGate``) run on her crop decides which pixels are hers: the others leave her
        map and are kept out of her mask. U²-Net is a salient-object network: in her crop it takes
        the dog at her feet as well, and in the dog's crop her legs; the selfie network covers
        nearly all of her and little of the dog (bench/RESULTS.md, "Segmentation")."""
        h, w = frames.shape[2:]
        for i, (people, animals) in enumerate(tight):
            for box in people:
                place = crop_place(box, self.cfg.box_margin, h, w)
                near = [a for a in animals if place and _overlap(place[4], a)]
                if not near:
                    continue
                if self._gate is None:
                    self._gate = PersonGate(net=self.person_net)
                gy0, gy1, gx0, gx1 = place[4]
                # the gate sees her with wide context: on her tight crop it takes the dog at her
                # feet as a person too
                Y0, Y1, X0, X1, _ = crop_place(box, self._GATE_CONTEXT, h, w)
                hers = self._gate(padded_crop(frames[i : i + 1], Y0, Y1, X0, X1))[0, 0]
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
        look scores low (below the start threshold) and a close look scores high."""
        h, w = img.shape[:2]
        known = np.array([t.box for t in self.tracker.tracks], np.float32).reshape(-1, 4)
        scores = scores.copy()
        for k, (box, score) in enumerate(zip(boxes, scores)):
            x0, y0, x1, y1 = box
            # walking in from a side: cut by the left or right edge, head inside (figures painted on
            # a wall that the detector takes for people hang from the top edge)
            at_edge = (x0 <= 2 or x1 >= w - 2) and y0 > 2
            if not (self.cfg.det_keep <= score < self.cfg.det_threshold and at_edge):
                continue
            if len(known) and box_iou(box[None], known).max() >= self.tracker.match_iou:
                continue
            person, _ = self._detector.verify(img, box)
            if person >= self.cfg.det_threshold:
                scores[k] = person
        return scores

    def _hold_merged(self, boxes: np.ndarray, animals: np.ndarray) -> np.ndarray:
        """``boxes`` where a detection of a surely seen person grew by over ``_MERGE_GROWTH`` x her
        box's area while at least half of it lies inside an animal's box replaced by her box: that
        detection is her and the animal in one (a big dog jumping up in front of her), and her
        track keeps its place and size, so her crop does not take the whole dog. A woman who really
        grows that fast beside a dog (bending, arms out) keeps her box for that frame: her margin
        still holds some of what she reached out."""
        strong = [t for t in self.tracker.tracks if t.strong]
        if not len(boxes) or not len(animals) or not strong:
            return boxes
        theirs = np.array([t.box for t in strong], np.float32)
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

    def _look_for_lost(self, img: np.ndarray, tracks: list[Track], animals: np.ndarray | None = None) -> None:
        """A surely seen person whom the whole-frame detector lost gets a zoomed-in look where her
        box was carried; found there (score >= ``det_keep``), her track follows the box found. A rider
        behind branches scores near zero on the whole frame and well above ``det_keep`` up close."""
        lost = sorted((t for t in tracks if t.missed and t.strong), key=lambda t: t.looked)
        for t in lost[: self._LOOKS_PER_FRAME]:  # the one looked for longest ago first
            t.looked = self._frame
            found, scores, _, _ = self._detector.look(img, t.box, grow=0.5)
            # she does not grow while hidden: a box over twice hers is something else she is in
            # front of (a painted figure's box behind a rider would take his track)
            scores = np.where(_area(found) > self._LOOK_GROWTH * _area(np.array([t.box])), 0, scores)
            best = best_match(t.box, found, scores, min_iou=self.tracker.match_iou)
            if best is not None and scores[best] >= self.cfg.det_keep:
                box = found[best]
                # she and an animal in one box, or the part of her the animal leaves in view (her head
                # above a jumping dog): she stays where she was
                if animals is not None and self._merged_with(box[None], np.array([t.box], np.float32), animals,
                                                             shrunk=True)[0] is not None:
                    box = np.array(t.box, np.float32)
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

    def carry_by_corners(self, tracks: list[Track], flow, camera, animals: np.ndarray, unit: float) -> None:
        """Tracks the detector lost this frame (carried at their last velocity by the tracker)
        moved instead by the corners of their last box that move against the scene (2 units or
        more off ``camera``'s homography), by their median motion, where at least 5 and a quarter
        of them do: a rider behind a tree, whose box shrank to the part left of the trunk, is
        otherwise carried off at that shrinking velocity while the camera keeps him in place.
        Corners inside an animal's box (``animals``, x0,y0,x1,y1, this frame) or another seen
        person's known to move are not hers: a dog jumping up in front of her would take her box
        along."""
        p0, p1 = flow
        for t in tracks:
            if not t.missed:
                continue
            vx, vy = t.velocity
            x0, y0, x1, y1 = t.box[0] - vx, t.box[1] - vy, t.box[2] - vx, t.box[3] - vy
            movers = [o.box for o in tracks if o is not t and not o.missed and o.moved]
            others = [(by0, by1, bx0, bx1) for bx0, by0, bx1, by1 in movers + [list(b) for b in animals]]
            inside = _in_boxes(p0, [(y0, y1, x0, x1)]) & ~_in_boxes(p1, others)
            own = _off_scene(p0[inside], p1[inside], camera[0], unit) >= 2
            if own.sum() < 5 or own.mean() < self._SCENERY_OWN:
                # hidden behind what moves with the scene (a rider behind a bush: his box's corners
                # are the bush's): her last velocity says more
                continue
            dx, dy = np.median(p1[inside][own] - p0[inside][own], axis=0)
            t.box = [float(x0 + dx), float(y0 + dy), float(x1 + dx), float(y1 + dy)]
            t.velocity = [float(dx), float(dy)]

    def is_scenery(self, track: Track, motion, patch: torch.Tensor, grown, frame: int, h: int, w: int,
                    greys=None) -> bool:
        """Whether a person's track is part of the scene: while the camera moved, her pixels moved
        with the scene for ``_SCENERY_PAIRS`` frames in a row, and never on their own. Updates the
        track's evidence from ``frame``'s ``motion``: (p0, p1) tracked corners (``corner_motion``),
        the scene's motion (``camera_motion``) and the grown boxes of the people known to move
        and their belongings. A painted figure on a wall, a poster: the detector and U²-Net take
        them for people, even up close, and their crops would erase the wall. A person moves against the scene; one
        who has moved once stays a person, and a still camera gives no evidence (a person standing
        still in front of it stays masked). A belonging's track is judged the same way. ``greys``:
        the previous and current frames' ``small_grey``, where a map holding under 5 of the
        frame's corners looks for its own (``_own_corners``)."""
        if track.moved:  # a person for good: no evidence can change that
            return False
        p0, p1, camera, moving = motion
        mine, unit = patch[0].cpu().numpy(), frame_unit(h, w)
        ev = surroundings_motion(p0, p1, mine, grown, camera, unit, moving)
        if ev is None and greys is not None and camera[1] >= self._SCENERY_CAMERA:
            # a smooth or blurred figure (a trunk out of focus) holds few of the frame's best
            # corners: its own best
            # ones, found in this frame inside its map and tracked back
            ev = surroundings_motion(*_own_corners(greys, mine, grown), mine, grown, camera, unit, moving)
        if ev is not None:
            follow, own, scene = ev
            if own >= self._SCENERY_OWN:
                track.moved = True
            elif scene < self._SCENERY_CAMERA:
                pass  # a still camera says nothing
            elif follow >= self._SCENERY_FOLLOW:
                track.still = track.still + 1
            elif not self._scenery_now(track):
                # scenery needs its frames in a row; once it is scenery only moving on its own
                # undoes that (a trunk at the frame's edge, scenery for many frames, has most of
                # its few corners follow and none move on its own: reset, it would be masked again)
                track.still = 0
            log.debug("frame %d, track at %s: %.2f of its corners follow the scene, %.2f move on their own, "
                      "the scene moved %.1f", frame, [round(v) for v in track.box], *ev)
        return self._scenery_now(track)

    def _scenery_now(self, track: Track) -> bool:
        """Whether the evidence so far makes ``track`` part of the scene (``is_scenery``)."""
        return self.cfg.scenery and not track.moved and track.still >= self._SCENERY_PAIRS

    def _among_others(self, track: Track, grown, people: list[Track]) -> bool:
        """Whether another person's box (not scenery) reaches ``track``'s grown box."""
        return any(o is not track and not self._scenery_now(o) and _overlap(grown, o.box) for o in people)

    def _is_person(self, img: np.ndarray, track: Track, tracks: list[Track]) -> bool:
        """Confirm a weak track by a zoomed-in second look, when it starts and every
        ``verify_every`` frames after; strong tracks need none. While the scene has animals, a weak
        track is a person only after two looks in a row confirmed it (the second comes two frames
        after the first), and it is looked at again every ``verify_every`` frames: up close the nano
        model still calls a dog a person now and then, for a single frame (a dog cut by the frame's
        edge, a small dog pressed against a woman)."""
        animals_near = self._since_animal <= self._ANIMAL_MEMORY
        if track.strong or track.score >= self.cfg.verify_below or self.cfg.verify_below == 0:
            # a person seen surely once stays one (a dog may hide her later)
            track.strong = track.person = True
            self.tracker.trust(track)  # her track is carried the full ``carry`` frames when lost
            return True
        if track.confirmed and not animals_near:
            track.person = True
            return True
        wait = 2 if track.confirmed and not track.person else self.cfg.verify_every
        if track.checked is None or track.age - track.checked >= wait:
            others = [t.box for t in tracks if t is not track and t.person]
            person, animal = self._detector.verify(img, track.box, others)
            before, track.confirmed = track.confirmed, person >= self.cfg.det_threshold
            track.animal = animal > person
            if animals_near:  # only a person confirmed twice in a row is masked
                track.person = track.confirmed and before
            else:  # unsure tracks stay (a person half hidden in a group) unless up close it looks like an animal
                track.person = track.confirmed or animal <= max(person, 0.1)
            track.checked = track.age
        return track.person
