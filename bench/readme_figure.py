"""The README's before/after picture, from `make demo`'s output:

    python bench/readme_figure.py [--frames 20 45] [--out docs/demo.png]

Input frame beside the cleaned frame, half size, one row per frame, 256-colour PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", nargs="+", type=int, default=[20, 45])
    ap.add_argument("--input", type=Path, default=ROOT / "samples" / "vtest_6s.mp4")
    ap.add_argument("--clean", type=Path, default=ROOT / "out" / "vtest_6s.clean.mp4")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "demo.png")
    args = ap.parse_args()

    import cv2
    from PIL import Image

    from bgclean import io

    def frames(path: Path) -> dict[int, np.ndarray]:
        return {f.index: f.rgb for f in io.read_frames(io.probe(path)) if f.index in args.frames}

    before, after = frames(args.input), frames(args.clean)
    rows = []
    for i in args.frames:
        pair = [cv2.resize(x[i], (x[i].shape[1] // 2, x[i].shape[0] // 2), interpolation=cv2.INTER_AREA)
                for x in (before, after)]
        gap = np.full((pair[0].shape[0], 6, 3), 255, np.uint8)
        rows.append(np.hstack([pair[0], gap, pair[1]]))
    sheet = np.vstack([np.vstack([r, np.full((6, r.shape[1], 3), 255, np.uint8)]) for r in rows])[:-6]
    Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"{args.out}: {sheet.shape[1]}x{sheet.shape[0]}, {args.out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
