"""How much of each ground-truth person the produced mask covers, on schoolgirls (every id > 0 is
person: the girls and their backpacks).

    python bench/mask_recall.py [--segmenters u2net.full u2net.small]

recall = |produced ∩ truth| / |truth| over all frames (pixel-weighted); also the per-frame minimum,
the produced area relative to the truth, and IoU of the thresholded (undilated) map, for reference.
Writes a contact sheet per segmenter into bench/out/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, SHARED, machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segmenters", nargs="+", default=["u2net.full", "u2net.small"])
    ap.add_argument("--clip", default="schoolgirls")
    args = ap.parse_args()

    import torch
    from PIL import Image

    from bgclean.pipeline import io
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline, _to_tensor
    from bgclean.pipeline.sheet import contact_sheet, overlay_mask

    clip_dir = SHARED / "videos" / args.clip
    info = io.probe(clip_dir / f"{args.clip}.mp4")
    frames = [f.rgb for f in io.read_frames(info)]
    truth = np.stack([np.array(Image.open(clip_dir / "masks" / f"{i:05d}.png")) > 0 for i in range(len(frames))])
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"# {args.clip} {info.width}x{info.height}, {len(frames)} frames; {machine()}")
    print("| segmenter | recall (final mask) | min per-frame recall | area / truth | IoU (raw threshold) | segment fps |")
    print("|---|---|---|---|---|---|")
    for seg in args.segmenters:
        pipe = Pipeline(load_config(None, {"segment.backend": seg, "runtime.device": "cpu"}))
        finals, raws = [], []
        t0 = time.perf_counter()
        seg_time = 0.0
        for start in range(0, len(frames), 16):
            x = _to_tensor(frames[start : start + 16], pipe.device)
            t = time.perf_counter()
            soft = pipe.segment_stage(x)
            seg_time += time.perf_counter() - t
            raws.append((soft[:, 0] > pipe.config.masks.threshold).numpy())
            finals.append((pipe.mask_stage(soft)[:, 0] > 0).numpy())
        final, raw = np.concatenate(finals), np.concatenate(raws)
        inter = (final & truth).sum(axis=(1, 2))
        per_frame = inter / np.maximum(truth.sum(axis=(1, 2)), 1)
        recall = inter.sum() / truth.sum()
        area = final.sum() / truth.sum()
        iou = (raw & truth).sum() / (raw | truth).sum()
        print(f"| {seg} | {recall:.3f} | {per_frame.min():.3f} | {area:.2f} | {iou:.3f} | "
              f"{len(frames) / seg_time:.2f} |")
        picks = np.linspace(0, len(frames) - 1, 4).round().astype(int)
        rows = [[frames[i], overlay_mask(frames[i], truth[i], (0, 200, 0)), overlay_mask(frames[i], final[i])]
                for i in picks]
        contact_sheet(rows, ["frame", "ground truth", f"final mask ({seg})"], OUT / f"masks_{args.clip}_{seg}.png")


if __name__ == "__main__":
    main()
