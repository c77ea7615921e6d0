"""CPU cost per frame of propagation against segmentation on the real clips (the target:
propagation no dearer than the segmentation stage), default configuration, windows of 8 frames.

    python bench/stage_cost.py [--clips ...] [--repeat N]

Times ``Pipeline.hole_masks`` (segmentation + mask refinement) and the propagation stage on the same
windows of the same run; both numbers vary by about 15% from run to run on a shared machine, so
``--repeat`` runs each clip N times and reports the range.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, parse_args  # noqa: E402
from segmentation import CLIPS, load_clip  # noqa: E402

OVERRIDES: dict = {}  # config overrides (--set)


def clip_cost(clip: str, window: int = 8) -> tuple[float, float, bool]:
    """(segmentation + masks s/frame, propagation s/frame, still camera) for one run over ``clip``."""
    from bgclean.ops import to_tensor
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline

    frames, _, _ = load_clip(clip)
    pipe = Pipeline(load_config(None, {"runtime.device": "cpu", **OVERRIDES}))
    pipe.hole_masks(to_tensor(frames[:1], pipe.device))  # warm-up, then forget its state
    pipe.reset()
    seg = prop = 0.0
    for start in range(0, len(frames), window):
        x = to_tensor(frames[start : start + window], pipe.device)
        t0 = time.perf_counter()
        holes, movers = pipe.holes_and_movers(x)
        t1 = time.perf_counter()
        pipe.propagate(x, holes, movers=movers)
        seg, prop = seg + t1 - t0, prop + time.perf_counter() - t1
    return seg / len(frames), prop / len(frames), pipe.propagate_stage.static


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", nargs="+", default=CLIPS)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = parse_args(ap)
    import yaml

    OVERRIDES.update({k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)})
    print(f"# {machine()}")
    print("| clip | camera | segment + masks (s/frame) | propagate (s/frame) |")
    print("|---|---|---|---|")
    for clip in args.clips:
        runs = [clip_cost(clip) for _ in range(args.repeat)]
        seg, prop = [r[0] for r in runs], [r[1] for r in runs]
        span = lambda v: f"{min(v):.3f}" if len(v) == 1 else f"{min(v):.3f}-{max(v):.3f}"  # noqa: E731
        print(f"| {clip} | {'still' if runs[0][2] else 'moving'} | {span(seg)} | {span(prop)} |", flush=True)


if __name__ == "__main__":
    main()
