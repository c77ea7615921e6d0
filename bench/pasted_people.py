"""A person pasted over real footage: the footage is the truth, depth and real camera motion included.

    python bench/pasted_people.py [--data DIR] [--clips tennis bmx-trees schoolgirls dogs_jump]

Into each clip a real girl (schoolgirls id 7: her pixels and mask from successive frames) about 45%
of the frame tall walks across the lower part of the picture. The pipeline (default configuration)
gets masks for her and for the clip's own people; only her hole, away from the clip's own people
(whose background nobody knows), is measured against the footage: PSNR, and flicker = the mean
|frame-to-frame change| inside it after aligning consecutive frames with the background's
homography, for the output and for the footage itself ("truth's"), with the same alignment.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, parse_args  # noqa: E402
from real_clips import run  # noqa: E402
from segmentation import load_clip  # noqa: E402
from small_people import place, sprites  # noqa: E402


def paste(frames, girls, height_share: float = 0.45):
    """The frames with the girl walking across, and her masks (T,H,W) bool."""
    h, w = frames[0].shape[:2]
    height, n = int(h * height_share), len(frames)
    out, masks = [], []
    for t, frame in enumerate(frames):
        girl = girls[t % len(girls)]
        width = max(2, round(girl[1].shape[1] * height / girl[1].shape[0]))
        out.append(frame.copy())
        masks.append(place(out[-1], girl, height, int(w * 0.1 + t * (w * 0.7 - width) / max(1, n - 1)), int(h * 0.95)))
    return out, np.stack(masks)


def measure(truth, out, holes, region):
    """PSNR inside ``region`` over all frames; flicker of output and truth inside it."""
    import cv2

    from bgclean.stages.propagate import estimate_homography

    err = np.concatenate([(o.astype(float) - t.astype(float))[r] for o, t, r in zip(out, truth, region)])
    psnr = 10 * np.log10(255.0**2 / max(float(np.mean(err**2)), 1e-12))
    h, w = region.shape[1:]
    fo, ft = [], []
    for t in range(1, len(out)):
        g0 = cv2.cvtColor(truth[t - 1], cv2.COLOR_RGB2GRAY)
        g1 = cv2.cvtColor(truth[t], cv2.COLOR_RGB2GRAY)
        m = estimate_homography(g0, g1, ~holes[t - 1], ~holes[t])
        m = np.eye(3) if m is None else m
        prev_r = cv2.warpPerspective(region[t - 1].astype(np.uint8), m, (w, h)) > 0
        sel = region[t] & prev_r
        sel[:6], sel[-6:], sel[:, :6], sel[:, -6:] = False, False, False, False
        if not sel.any():
            continue
        for series, store in ((out, fo), (truth, ft)):
            prev = cv2.warpPerspective(series[t - 1], m, (w, h)).astype(float)
            store.append(np.abs(series[t].astype(float) - prev).mean(axis=2)[sel].mean())
    return psnr, float(np.mean(fo)), float(np.mean(ft))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", nargs="+", default=["tennis", "bmx-trees", "schoolgirls", "dogs_jump"])
    args = parse_args(ap)
    import cv2

    print(f"# {machine()}")
    print("| clip | PSNR in her hole (dB) | flicker (levels) | truth's flicker | difference |")
    print("|---|---|---|---|---|")
    for clip in args.clips:
        truth, people, dogs = load_clip(clip)
        girls = sprites(len(truth))
        frames, her = paste(truth, girls)
        others = people if dogs is None else people | dogs
        out, holes = run(frames, her | others, propagate=True)
        near_others = np.stack([cv2.dilate(o.astype(np.uint8), np.ones((31, 31), np.uint8)) > 0 for o in others])
        grown = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0 for m in her])
        region = grown & holes & ~near_others
        psnr, f_out, f_truth = measure(truth, out, holes, region)
        print(f"| {clip} | {psnr:.2f} | {f_out:.2f} | {f_truth:.2f} | {f_out - f_truth:+.2f} |", flush=True)


if __name__ == "__main__":
    main()
