"""Group stills with automatic masks, at the sizes motion-imitation systems use.

    python bench/stills.py [--data DIR] [--sides 256 512] [--frames 0 20 40 60] [--sheet FILE]

Each listed schoolgirls frame (four girls with backpacks, ground-truth ids: girls 1, 3, 5, 7,
backpacks 2, 4, 6) scaled so its long side is ``--sides`` px and cleaned as one still by the hooks'
cleaner (no mask given: the people are found). Per person: recall = the share of her
ground-truth pixels inside the hole; per frame, the worst girl's and the worst backpack's.
``--sheet`` writes still | hole | cleaned, one row per frame, at the first side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, machine, parse_args  # noqa: E402

GIRLS, BACKPACKS = (1, 3, 5, 7), (2, 4, 6)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sides", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--frames", type=int, nargs="+", default=[0, 20, 40, 60])
    ap.add_argument("--sheet", type=Path)
    args = parse_args(ap)
    import cv2
    import torch
    from PIL import Image

    from bgclean import io
    from bgclean.hooks.stills import StillCleaner

    clip = data_dir() / "videos" / "schoolgirls"
    frames = {f.index: f.rgb for f in io.read_frames(io.probe(clip / "schoolgirls.mp4")) if f.index in args.frames}
    cleaner = StillCleaner()
    print(f"# {machine()}")
    print("| side | frame | girls 1 / 3 / 5 / 7 | backpacks 2 / 4 / 6 | worst girl |")
    print("|---|---|---|---|---|")
    rows = []
    for side in args.sides:
        worst = []
        for index in args.frames:
            rgb = frames[index]
            s = side / max(rgb.shape[:2])
            size = (round(rgb.shape[1] * s), round(rgb.shape[0] * s))
            img = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            ids = cv2.resize(np.array(Image.open(clip / "masks" / f"{index:05d}.png")), size,
                             interpolation=cv2.INTER_NEAREST)
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
            fill, holes = cleaner(x)
            hole = holes[0, 0].numpy()
            recall = {i: float(hole[ids == i].mean()) if (ids == i).any() else float("nan") for i in GIRLS + BACKPACKS}
            worst.append(min(recall[i] for i in GIRLS))
            print(f"| {side} | {index} | {' / '.join(f'{recall[i]:.2f}' for i in GIRLS)} | "
                  f"{' / '.join(f'{recall[i]:.2f}' for i in BACKPACKS)} | {worst[-1]:.2f} |", flush=True)
            if side == args.sides[0]:
                out = torch.where(holes, fill, x)
                rows.append([img, np.where(hole[..., None], np.uint8(255), img),
                             (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)])
        print(f"| {side} | all | | | {min(worst):.2f} |")
    if args.sheet:
        from bgclean.pipeline.sheet import contact_sheet

        contact_sheet(rows, ["still", "hole", "cleaned"], args.sheet, max_width=1200)
        print(f"sheet: {args.sheet}")


if __name__ == "__main__":
    main()
