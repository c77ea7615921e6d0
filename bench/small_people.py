"""Small people over moving footage: does the mask find a person 20-40 px tall?

    python bench/small_people.py [--data DIR] [--heights 20 30 40] [--motions pan shake zoom]
                                 [--frames 40] [--size 640x360] [--sheet FILE]

Clips made from the held-out photos (``inpaint.HELD_OUT``: never trained on) that have ground to
stand on, with the synthetic camera motions of ``video_fill.py``; a real girl (schoolgirls id 7: her pixels and ground-truth mask from
successive frames, so she moves her limbs) scaled to the given height walks across. Per clip:
recall = the share of her pixels inside the pipeline's hole masks (segmentation and mask stage,
default configuration), over all frames, and the worst frame's; area = hole pixels over hers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, machine, parse_args  # noqa: E402
from inpaint import HELD_OUT  # noqa: E402
from video_fill import camera_views  # noqa: E402

# the held-out photos where a person can stand: a meadow, a stream's rocks, a road, a beach
PHOTOS = [HELD_OUT[1], HELD_OUT[2], HELD_OUT[5], HELD_OUT[7]]


def sprites(n: int):
    """The girl (id 7 of schoolgirls) in frames 0..n-1: (rgb, mask) cut to her box."""
    from PIL import Image

    from bgclean import io

    clip = data_dir() / "videos" / "schoolgirls"
    out = []
    for f in io.read_frames(io.probe(clip / "schoolgirls.mp4")):
        if len(out) == n:
            break
        m = np.array(Image.open(clip / "masks" / f"{f.index:05d}.png")) == 7
        if m.sum() < 200:
            continue
        ys, xs = np.nonzero(m)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        out.append((f.rgb[box].copy(), m[box]))
    return out


def place(frame: np.ndarray, girl, height: int, x0: int, feet: int) -> np.ndarray:
    """Paste ``girl`` (rgb, mask) scaled to ``height`` px into ``frame`` (in place), her left edge
    at ``x0`` and her feet at row ``feet``; returns her mask (H,W) bool."""
    import cv2

    rgb, sil = girl
    size = (max(2, round(sil.shape[1] * height / sil.shape[0])), height)
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    sil = cv2.resize(sil.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    y0 = feet - height
    person = np.zeros(frame.shape[:2], bool)
    person[y0:feet, x0 : x0 + size[0]] = sil
    frame[y0:feet, x0 : x0 + size[0]][sil] = rgb[sil]
    return person


def make_clip(photo: Path, motion: str, height: int, n: int, w: int, h: int, girls):
    frames = camera_views(photo, motion, n, w, h)
    truth = [place(frame, girls[t % len(girls)], height, int(w * 0.15 + t * w * 0.6 / max(1, n - 1)), int(h * 0.8))
             for t, frame in enumerate(frames)]  # her feet on the lower part of the picture
    return frames, np.stack(truth)


def holes(frames, window: int = 16):
    import torch

    from bgclean.ops import to_tensor
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline

    pipe = Pipeline(load_config(None, {"runtime.device": "cpu"}))
    pipe.reset()
    out = []
    with torch.inference_mode():
        for s in range(0, len(frames), window):
            hole, _ = pipe.holes_and_movers(to_tensor(frames[s : s + window], pipe.device))
            out.append(hole[:, 0].numpy() > 0)
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heights", type=int, nargs="+", default=[20, 30, 40])
    ap.add_argument("--motions", nargs="+", default=["pan", "shake", "zoom"])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--sheet", type=Path, help="a frame of each height's first clip: frame | hole")
    args = parse_args(ap)
    w, h = (int(v) for v in args.size.split("x"))
    girls = sprites(args.frames)
    print(f"# {machine()}; {args.frames} frames at {w}x{h}, photos {', '.join(PHOTOS)}")
    print(f"| height (px) | motion | recall ({len(PHOTOS)} clips) | worst frame | area / person |")
    print("|---|---|---|---|---|")
    rows = []
    for height in args.heights:
        for motion in args.motions:
            recalls, worst, areas = [], [], []
            for photo in PHOTOS:
                frames, person = make_clip(data_dir() / "photos" / photo, motion, height, args.frames, w, h, girls)
                hole = holes(frames)
                per_frame = [(hl & p).sum() / max(p.sum(), 1) for hl, p in zip(hole, person)]
                recalls.append((hole & person).sum() / person.sum())
                worst.append(min(per_frame))
                areas.append(hole.sum() / person.sum())
                if motion == args.motions[0] and photo == PHOTOS[0]:
                    k = args.frames // 2
                    rows.append([frames[k], np.where(hole[k][..., None], np.uint8(255), frames[k])])
            print(f"| {height} | {motion} | {' / '.join(f'{r:.3f}' for r in recalls)} | {min(worst):.2f} | "
                  f"{np.mean(areas):.1f} |", flush=True)
    if args.sheet:
        from bgclean.pipeline.sheet import contact_sheet

        contact_sheet(rows, ["frame", "hole"], args.sheet, max_width=1400)
        print(f"sheet: {args.sheet}")


if __name__ == "__main__":
    main()
