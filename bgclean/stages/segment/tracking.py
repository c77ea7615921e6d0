"""Boxes tracked from frame to frame: hysteresis on the score, a lost box carried at its last velocity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bgclean.stages.segment.detector import box_iou

if TYPE_CHECKING:
    from bgclean.stages.segment.crops import Keyframe


@dataclass(eq=False)  # a track is itself, whatever its values: compared by identity
class Track:
    """One tracked box. ``BoxTracker`` keeps the first six fields; the segmentation stage keeps
    what it learns about the track in the others."""

    box: list[float]  # x0, y0, x1, y1
    score: float  # of the last detection matched
    carry: int  # frames it is carried once lost
    missed: int = 0  # frames since it was last matched
    age: int = 0  # frames since it started
    velocity: list[float] = field(default_factory=lambda: [0.0, 0.0])  # its centre's, px a frame
    seen: bool = False  # matched in the frame being tracked
    widths: list[float] | None = None  # a rigid thing's: the widths of its last boxes
    strong: bool = False  # scored at least ``verify_below`` once: surely a person
    person: bool = False  # the verdict of its last look
    confirmed: bool = False  # its last zoomed-in look found a person
    animal: bool = False  # its last zoomed-in look found an animal rather than a person
    checked: int | None = None  # its age at its last zoomed-in look
    looked: int = -1  # the frame it was last looked for while lost
    moved: bool = False  # seen moving on its own: a person for good
    still: int = 0  # frames in a row its pixels moved with the scene
    rides: int = -(1 << 30)  # the frame it was last seen on a ridden thing
    key: Keyframe | None = None  # its latest keyframe (the map it was last segmented with)


def _velocity(track: Track, new) -> list[float]:
    """A track's velocity once its box moves to ``new``: its centre's, smoothed over the matches. A
    box that jumps or shrinks once (a rider half behind a branch) must not send a carried box off,
    and moving the four sides apart can turn a carried box inside out."""
    old = track.box
    step = [(new[0] + new[2] - old[0] - old[2]) / 2, (new[1] + new[3] - old[1] - old[3]) / 2]
    return step if track.age == 0 else [(v + d) / 2 for v, d in zip(track.velocity, step)]


def _rigid_box(track: Track, new: list[float], memory: int = 8, shrink: float = 0.85) -> list[float]:
    """``new`` (a rigid thing's matched box) at least ``shrink`` of the width of the widest of the
    track's last ``memory`` boxes seen, grown to that width on the side that moved most from the
    track's box (``BoxTracker``, ``rigid``). Keeps the widths in ``track.widths``. Only the
    width: holding the height too gained no recall and masked more of the background."""
    old = track.box
    if track.widths is None:
        track.widths = [old[2] - old[0]]  # from its first box on
    widths = track.widths
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
    that moved most since the last frame: the part passing behind something is still there (a
    bike's front wheel behind a trunk would otherwise leave its crop and stay as a ghost wheel). A
    racket swung and turned is not held: its box really does narrow.

    Why merge: while her track is carried, the detector finds her again and a second track starts on
    her; the two then share her detections, each is lost every other frame and carried off at its own
    stale velocity, and parts of her are missed.
    """

    def __init__(self, start: float, keep: float, carry: int, match_iou: float = 0.3, weak_carry: int | None = None,
                 merge_iou: float = 0.5, rigid: bool = False):
        self.start, self.keep, self.carry, self.match_iou, self.merge_iou = start, keep, carry, match_iou, merge_iou
        self.rigid = rigid
        self.weak_carry = carry if weak_carry is None else weak_carry
        self.reset()

    def reset(self) -> None:
        self.tracks: list[Track] = []

    def update(self, boxes: np.ndarray, scores: np.ndarray) -> list[tuple[float, float, float, float]]:
        return [(t.box[0], t.box[1], t.box[2], t.box[3]) for t in self.update_tracks(boxes, scores)]

    def trust(self, track: Track) -> None:
        """A caller sure that ``track`` is a person: carried the full ``carry`` frames when lost."""
        track.carry = self.carry

    def recover(self, track: Track, box, score: float) -> None:
        """A lost ``track`` found again by a closer look this frame: at ``box``, seen."""
        new = [float(v) for v in box]
        track.velocity = _velocity(track, new)
        track.box, track.missed, track.score = new, 0, score

    def update_tracks(self, boxes: np.ndarray, scores: np.ndarray, rigid: np.ndarray | None = None) -> list[Track]:
        """Like ``update``, returning the live tracks (``Track``): ``box``, ``score`` (of the last
        detection matched), ``age`` (frames since the track started) and ``missed``; callers may keep
        their own keys in them. ``rigid`` (bool per box, with a ``rigid`` tracker): which boxes are
        of rigid things (default: all)."""
        cand = boxes[scores >= self.keep]
        cand_scores = scores[scores >= self.keep]
        cand_rigid = np.ones(len(cand), bool) if rigid is None else np.asarray(rigid)[scores >= self.keep]
        used = np.zeros(len(cand), bool)
        if self.tracks and len(cand):
            iou = box_iou(np.array([t.box for t in self.tracks]), cand)
            for ti, ci in sorted(np.argwhere(iou >= self.match_iou).tolist(), key=lambda tc: -iou[tc[0], tc[1]]):
                track = self.tracks[ti]
                if used[ci] or track.seen:
                    continue
                new = cand[ci].tolist()
                if self.rigid and cand_rigid[ci]:
                    new = _rigid_box(track, new)
                track.velocity = _velocity(track, new)
                track.box, track.missed, track.seen, track.score = new, 0, True, float(cand_scores[ci])
                used[ci] = True
        for track in self.tracks:
            track.age += 1
            seen, track.seen = track.seen, False
            if not seen:
                track.missed += 1
                # a lost person keeps moving as she did, at her last size (occlusion by a tree, motion blur)
                vx, vy = track.velocity
                track.box = [track.box[0] + vx, track.box[1] + vy, track.box[2] + vx, track.box[3] + vy]
        self.tracks = [t for t in self.tracks if t.missed <= t.carry]
        for fresh in np.flatnonzero(~used & (cand_scores >= self.start)):
            self.tracks.append(Track(box=cand[fresh].tolist(), score=float(cand_scores[fresh]), carry=self.weak_carry))
        self.tracks = self.merged(self.tracks)
        return self.tracks

    def merged(self, tracks: list[Track]) -> list[Track]:
        """``tracks`` without the younger of any two overlapping by ``merge_iou`` or more; the older
        takes the younger's box, score and velocity when the younger was seen more recently, and the
        longer carry of the two."""
        if len(tracks) < 2:
            return tracks
        kept: list[Track] = []
        for t in sorted(tracks, key=lambda t: -t.age):
            same = [k for k in kept if box_iou(np.array([k.box]), np.array([t.box]))[0, 0] >= self.merge_iou]
            if not same:
                kept.append(t)
            else:
                same[0].carry = max(same[0].carry, t.carry)
                if same[0].missed > t.missed:
                    same[0].box, same[0].missed, same[0].score, same[0].velocity = t.box, t.missed, t.score, t.velocity
        return [t for t in tracks if any(t is k for k in kept)]
