"""Segmentation quality of the final mask the pipeline uses, on real clips with ground truth.

    python bench/segmentation.py [--segmenters ...] [--clips ...] [--size WxH] [--set KEY=VALUE ...]

Clips (videos/ of the data folder): schoolgirls (every id > 0 is person: girls and backpacks), tennis
(binary, already dilated, includes the shadow), bmx-trees (rider and bike), dogs_jump (id 3 = the
woman; ids 1 and 2 are dogs that must stay). Per clip and segmenter:
- recall: ground-truth person pixels inside the final mask, pooled over frames (target >= 0.98);
- min frame recall: the worst frame;
- dogs: fraction of dog pixels masked (dogs_jump; target <= 0.10);
- area: final mask area / ground-truth person area (target <= 2.5);
- stability: mean frame-to-frame IoU of the final masks divided by that of the ground truth (1.0 =
  as stable as the truth; lower = flicker);
- fps: segmentation + mask refinement, frames per second on this machine.
A contact sheet per clip and segmenter goes to bench/out/seg_<clip>_<segmenter>.png.
``--size 1280x720`` resizes the clips (and their ground truth) first: the GPU target is set at
1280x720 (``--set runtime.device=cuda``, batches of ``--window`` frames; the clips themselves are
432x240).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, data_dir, machine, parse_args  # noqa: E402

CLIPS = ["schoolgirls", "tennis", "bmx-trees", "dogs_jump"]


def load_clip(name: str, size: tuple[int, int] | None = None):
    """(frames list of (H,W,3) uint8 RGB, person masks (T,H,W) bool, dog masks (T,H,W) bool or None);
    with ``size`` (width, height) all resized to it (frames bicubic, masks nearest)."""
    import cv2
    from PIL import Image

    from bgclean import io

    root = data_dir() / "videos" / name
    src = root / f"{name}.mp4" if (root / f"{name}.mp4").exists() else root / "frames"
    frames = [f.rgb.copy() for f in io.read_frames(io.probe(src))]
    ids = np.stack([np.array(Image.open(p)) for p in sorted((root / "masks").glob("*.png"), key=lambda p: p.name)])
    ids = ids[: len(frames)]
    if size is not None:
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames]
        ids = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) for m in ids])
    if name == "dogs_jump":
        return frames, ids == 3, (ids == 1) | (ids == 2)
    return frames, ids > 0, None


def frame_iou(m: np.ndarray) -> float:
    inter = (m[1:] & m[:-1]).sum(axis=(1, 2))
    union = np.maximum((m[1:] | m[:-1]).sum(axis=(1, 2)), 1)
    return float(np.mean(inter / union))


def evaluate(segmenter: str, clip: str, window: int = 8, overrides: dict | None = None,
             size: tuple[int, int] | None = None):
    import torch

    from bgclean.ops import to_tensor
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline
    from bgclean.pipeline.sheet import contact_sheet, overlay_mask

    frames, truth, dogs = load_clip(clip, size)
    pipe = Pipeline(load_config(None, {"segment.backend": segmenter, "runtime.device": "cpu", **(overrides or {})}))
    _ = pipe.segment_stage
    pipe.hole_masks(to_tensor(frames[:1], pipe.device))  # warm-up, then forget its state
    pipe.reset()
    finals = []
    seconds = 0.0  # segmentation + mask refinement only (propagation is timed by bench/video_fill.py)
    for start in range(0, len(frames), window):
        x = to_tensor(frames[start : start + window], pipe.device)
        t0 = time.perf_counter()
        holes, movers = pipe.holes_and_movers(x)
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()  # the time of the work, not of its queueing
        seconds += time.perf_counter() - t0
        if pipe.config.propagate.enabled:  # shadows found by propagation join the final mask
            _, _, holes = pipe.propagate(x, holes, movers=movers)
        finals.append(holes[:, 0].cpu().numpy() > 0)
    final = np.concatenate(finals)
    inter = (final & truth).sum(axis=(1, 2))
    gt_area = truth.sum(axis=(1, 2))
    valid = gt_area > 0
    row = {
        "recall": inter.sum() / truth.sum(),
        "min_recall": float((inter[valid] / gt_area[valid]).min()),
        "dogs": float((final & dogs).sum() / dogs.sum()) if dogs is not None else None,
        "area": final.sum() / truth.sum(),
        "stability": frame_iou(final) / frame_iou(truth),
        "fps": len(frames) / seconds,
    }
    picks = np.linspace(0, len(frames) - 1, 4).round().astype(int)
    rows = []
    for i in picks:
        gt_view = overlay_mask(frames[i], truth[i], (0, 200, 0))
        if dogs is not None:
            gt_view = overlay_mask(gt_view, dogs[i], (0, 120, 255))
        rows.append([gt_view, overlay_mask(frames[i], final[i])])
    contact_sheet(rows, ["ground truth (green person, blue dogs)", f"final mask: {segmenter}"],
                  OUT / f"seg_{clip}_{segmenter.replace(':', '-')}.png", max_width=900)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segmenters", nargs="+", default=["u2net.full", "u2net.small"])
    ap.add_argument("--clips", nargs="+", default=CLIPS)
    ap.add_argument("--size", metavar="WxH", help="resize the clips first, e.g. 1280x720")
    ap.add_argument("--window", type=int, default=8, help="frames per batch (the pipeline's window)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="after the table, the N functions that took the most time of all (cProfile)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config overrides, e.g. propagate.shadows=static")
    args = parse_args(ap)
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"# {machine()}")
    print("| clip | segmenter | recall | min frame recall | dogs masked | area / truth | stability | fps |")
    print("|---|---|---|---|---|---|---|---|")
    profile = None
    if args.profile:
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    for clip in args.clips:
        for seg in args.segmenters:
            r = evaluate(seg, clip, args.window, overrides=overrides, size=size)
            dogs = "-" if r["dogs"] is None else f"{r['dogs']:.3f}"
            print(f"| {clip} | {seg} | {r['recall']:.3f} | {r['min_recall']:.3f} | {dogs} | {r['area']:.2f} | "
                  f"{r['stability']:.2f} | {r['fps']:.2f} |", flush=True)
    if profile is not None:  # loading, warm-up and propagation included: read the fps above for speed
        import pstats

        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
