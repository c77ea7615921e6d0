"""Side-by-side fills on DATA/images/places2_512_object (object-shaped masks over real
objects, so the original is NOT a truth): input with hole | each of our fills | MI-GAN's output
for the same pair (a network trained on millions of images: the high bar).

    python bench/places2_sheet.py [--methods telea patchmatch hybrid] [--count 8]

Writes bench/out/places2_<first>-<last>.png (Places2 photos: research use only, not committed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, data_dir, inpaint_stage, parse_args  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["telea", "patchmatch", "hybrid"])
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--start", type=int, default=1)
    args = parse_args(ap)

    import torch

    from bgclean import io
    from bgclean.pipeline.sheet import contact_sheet, overlay_mask

    root = data_dir() / "images" / "places2_512_object"
    stages = {m: inpaint_stage(m) for m in args.methods}
    rows, secs = [], {m: 0.0 for m in args.methods}
    ids = list(range(args.start, args.start + args.count))
    for i in ids:
        img = io.read_image(root / "images" / f"{i}.png").rgb
        hole = io.read_image(root / "masks" / f"{i}.png").rgb[:, :, 0] > 127
        migan = io.read_image(root / "migan" / f"{i}.png").rgb
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        m = torch.from_numpy(hole)[None, None].float()
        row = [overlay_mask(img, hole)]
        for name, stage in stages.items():
            t0 = time.perf_counter()
            out = stage(x, m)
            secs[name] += time.perf_counter() - t0
            row.append((out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        row.append(migan[: img.shape[0], : img.shape[1]])
        rows.append(row)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"places2_{ids[0]}-{ids[-1]}.png"
    contact_sheet(rows, ["input + hole", *args.methods, "MI-GAN"], path, max_width=1600)
    print(f"sheet: {path}; seconds per image: " + ", ".join(f"{k} {v / len(ids):.2f}" for k, v in secs.items()))


if __name__ == "__main__":
    main()
