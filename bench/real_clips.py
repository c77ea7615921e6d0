"""Propagation on real footage with the clips' own person masks: flicker and contact sheets.

    python bench/real_clips.py [--clips tennis bmx-trees schoolgirls]

No clean truth exists for these clips, so flicker is measured against the footage itself: for each
pair of consecutive frames, the camera motion is estimated from the background (as the pipeline does),
the previous output is warped onto the current one, and the mean |difference| is taken inside the
hole ("in-hole") and outside every hole ("background": what warping and sensor noise alone give).
in-hole / background = 1.0 means the fill is as steady as the real background around it.
Sheets: bench/out/real_<clip>.png (input + mask | per-frame Telea | propagation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, machine, parse_args  # noqa: E402
from segmentation import load_clip  # noqa: E402


def run(frames, masks, propagate: bool, window: int = 8, inpainter: str = "auto"):
    import torch

    from bgclean.ops import to_arrays, to_tensor
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline

    pipe = Pipeline(load_config(None, {"propagate.enabled": propagate, "runtime.device": "cpu",
                                      "inpaint.backend": inpainter}))
    pipe.reset()
    out, holes = [], []
    for s in range(0, len(frames), window):
        cleaned, h = pipe.process(to_tensor(frames[s : s + window], pipe.device),
                                  torch.from_numpy(masks[s : s + window, None]).float())
        out.extend(to_arrays(cleaned, np.uint8))
        holes.append(h[:, 0].numpy() > 0)
    return out, np.concatenate(holes)


def flicker(frames, out, holes):
    import cv2

    from bgclean.stages.propagate import estimate_homography

    inside, outside = [], []
    h, w = holes.shape[1:]
    for t in range(1, len(out)):
        g0 = cv2.cvtColor(frames[t - 1], cv2.COLOR_RGB2GRAY)
        g1 = cv2.cvtColor(frames[t], cv2.COLOR_RGB2GRAY)
        m = estimate_homography(g0, g1, ~holes[t - 1], ~holes[t])
        m = np.eye(3) if m is None else m
        prev = cv2.warpPerspective(out[t - 1], m, (w, h)).astype(float)
        valid = cv2.warpPerspective(np.ones((h, w), np.uint8), m, (w, h)) > 0
        valid[:6], valid[-6:], valid[:, :6], valid[:, -6:] = False, False, False, False
        diff = np.abs(out[t].astype(float) - prev).mean(axis=2)
        prev_hole = cv2.warpPerspective(holes[t - 1].astype(np.uint8), m, (w, h)) > 0
        sel_in = holes[t] & prev_hole & valid
        sel_out = ~holes[t] & ~prev_hole & valid
        if sel_in.any():
            inside.append(diff[sel_in].mean())
        outside.append(diff[sel_out].mean())
    return float(np.mean(inside)), float(np.mean(outside))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", nargs="+", default=["tennis", "bmx-trees", "schoolgirls"])
    args = parse_args(ap)

    from bgclean.pipeline.sheet import contact_sheet, overlay_mask

    OUT.mkdir(parents=True, exist_ok=True)
    print(f"# {machine()}")
    print("| clip | method | in-hole flicker (levels) | background flicker (levels) | ratio |")
    print("|---|---|---|---|---|")
    for clip in args.clips:
        frames, truth, _ = load_clip(clip)
        outs = {}
        for name, prop, inpainter in (("per-frame telea", False, "telea"), ("per-frame learned", False, "learned"),
                                      ("propagation", True, "auto")):
            out, holes = run(frames, truth, prop, inpainter=inpainter)
            fi, fo = flicker(frames, out, holes)
            outs[name] = out
            print(f"| {clip} | {name} | {fi:.2f} | {fo:.2f} | {fi / fo:.2f} |", flush=True)
        picks = np.linspace(0, len(frames) - 1, 3).round().astype(int)
        rows = [[overlay_mask(frames[i], holes[i]), outs["per-frame telea"][i], outs["per-frame learned"][i],
                 outs["propagation"][i]] for i in picks]
        contact_sheet(rows, ["input + hole", "per-frame telea", "per-frame learned", "propagation"],
                      OUT / f"real_{clip}.png",
                      max_width=1300)


if __name__ == "__main__":
    main()
