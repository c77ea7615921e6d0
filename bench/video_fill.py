"""Video fill against ground truth: clean clips made from DATA/photos with synthetic camera
motion, a real person silhouette (schoolgirls ground truth) walking across as the hole; the clean
clip is the truth.

    python bench/video_fill.py [--frames 24] [--photos 3] [--size 432x240]

Motions: static, pan, zoom, shake, and pan+exposure (a pan during which the exposure drifts by up
to 20%). Methods: propagation (then Telea for what no frame saw) — the pipeline's default — and per-frame
Telea. Reported inside the hole: PSNR over the pixels some frame saw ("seen"), PSNR over all hole
pixels, and flicker = mean |frame-to-frame change| of the filled pixels (after undoing the known
camera motion) divided by the truth's own (1.0 = as steady as the truth).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, machine, parse_args  # noqa: E402


def camera(kind: str, t: int, n: int, w: int, h: int) -> np.ndarray:
    """3x3 map from output pixels to the big photo's pixels at time t."""
    a = t / max(1, n - 1)
    m = np.eye(3)
    if kind.startswith("pan"):
        m[0, 2] = -40 + 80 * a
    elif kind == "zoom":
        s = 1.0 - 0.15 * a
        m[0, 0] = m[1, 1] = s
        m[0, 2], m[1, 2] = (1 - s) * w / 2, (1 - s) * h / 2
    elif kind == "shake":
        rng = np.random.default_rng(t)
        m[0, 2], m[1, 2] = rng.normal(0, 2.5, 2)
    return m


def camera_views(photo: Path, kind: str, n: int, w: int, h: int) -> list[np.ndarray]:
    """``n`` (h,w,3) frames of ``photo`` (scaled to w + 120 px wide) seen by the ``kind`` camera."""
    import cv2

    from bgclean import io

    img = io.read_image(photo).rgb
    big = cv2.resize(img, (w + 120, int(round(img.shape[0] * (w + 120) / img.shape[1]))), interpolation=cv2.INTER_AREA)
    oy, ox = (big.shape[0] - h) // 2, 60
    views = []
    for t in range(n):
        m = camera(kind, t, n, w, h)
        m = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]]) @ m
        frame = cv2.warpPerspective(big, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        if kind.endswith("+exposure"):  # auto-exposure drifting by up to 20% while the camera pans
            gain = 1 + 0.2 * np.sin(2 * np.pi * t / n)
            frame = np.clip(frame.astype(np.float32) * gain, 0, 255).round().astype(np.uint8)
        views.append(frame)
    return views


def make_clip(photo: Path, kind: str, n: int, w: int, h: int):
    import cv2

    truth = camera_views(photo, kind, n, w, h)
    sil = np.array(__import__("PIL.Image", fromlist=["Image"]).open(
        data_dir() / "videos/schoolgirls/masks/00000.png"))[:, 90:170] > 0
    sil = cv2.resize(sil.astype(np.uint8), (int(80 * h / 240), h), interpolation=cv2.INTER_NEAREST) > 0
    person = np.zeros((n, h, w), bool)
    for t in range(n):
        x0 = int(20 + t * (w - sil.shape[1] - 40) / max(1, n - 1))
        person[t, :, x0 : x0 + sil.shape[1]] = sil
    # the hole is the person dilated, as the pipeline's masks are: its feathered edge is background
    masks = np.stack([cv2.dilate(p.astype(np.uint8), np.ones((13, 13), np.uint8)) > 0 for p in person])
    frames = [np.where(p[:, :, None], np.uint8(25), f) for f, p in zip(truth, person)]
    return truth, frames, masks


def run(method: str, frames, masks, window: int = 8, overrides: dict | None = None):
    import torch

    from bgclean.ops import to_arrays, to_tensor
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline

    # "propagate": the pipeline's default (propagation, then its inpainter for what no frame saw);
    # any other name: that inpainter alone, frame by frame (per-frame baselines)
    per_frame = {} if method == "propagate" else {"inpaint.backend": method}
    pipe = Pipeline(load_config(None, {"propagate.enabled": method == "propagate", "masks.dilate_px": 0,
                                      "runtime.device": "cpu", **per_frame, **(overrides or {})}))
    pipe.reset()
    out, t0 = [], time.perf_counter()
    for s in range(0, len(frames), window):
        x = to_tensor(frames[s : s + window], pipe.device)
        m = torch.from_numpy(masks[s : s + window, None]).float()
        cleaned, _ = pipe.process(x, m)
        out.extend(to_arrays(cleaned, np.uint8))
    return out, time.perf_counter() - t0


def seen_mask(frames, masks):
    import torch

    from bgclean.pipeline.config import PropagateConfig
    from bgclean.stages.propagate import PropagateStage

    st = PropagateStage(PropagateConfig())
    rem = []
    for s in range(0, len(frames), 8):
        x = torch.from_numpy(np.stack(frames[s : s + 8])).permute(0, 3, 1, 2).float() / 255
        _, r, _ = st(x, torch.from_numpy(masks[s : s + 8, None]).float())
        rem.append(r[:, 0].numpy() > 0)
    return masks & ~np.concatenate(rem)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def flicker(out, truth, masks, kind, w, h):
    """Mean |change| (grey levels) of hole pixels between consecutive frames, after mapping frame
    t-1 onto t with the known camera motion: (output's, truth's)."""
    import cv2

    num = den = 0.0
    for t in range(1, len(out)):
        m = np.linalg.inv(camera(kind, t, len(out), w, h)) @ camera(kind, t - 1, len(out), w, h)
        prev_o = cv2.warpPerspective(out[t - 1], m, (w, h))
        prev_t = cv2.warpPerspective(truth[t - 1], m, (w, h))
        sel = masks[t] & masks[t - 1]
        sel[:8], sel[-8:], sel[:, :8], sel[:, -8:] = False, False, False, False
        if sel.sum() == 0:
            continue
        num += np.abs(out[t].astype(float) - prev_o)[sel].mean()
        den += np.abs(truth[t].astype(float) - prev_t)[sel].mean()
    n = max(1, len(out) - 1)
    return num / n, den / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--photos", type=int, default=3)
    ap.add_argument("--size", default="432x240")
    ap.add_argument("--motions", nargs="+", default=["static", "pan", "zoom", "shake"])
    ap.add_argument("--methods", nargs="+", default=["propagate", "telea", "learned"])
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = parse_args(ap)
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    w, h = (int(v) for v in args.size.split("x"))
    photos = sorted((data_dir() / "photos").glob("*.jpg"))[:: max(1, 36 // args.photos)][: args.photos]
    print(f"# {machine()}; {args.frames} frames at {w}x{h}, photos: {', '.join(p.name for p in photos)}")
    print("| motion | method | PSNR seen (dB) | PSNR whole hole (dB) | PSNR whole frame (dB) | flicker (levels) | truth's flicker | s/frame |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in args.motions:
        acc = {}
        for photo in photos:
            truth, frames, masks = make_clip(photo, kind, args.frames, w, h)
            seen = seen_mask(frames, masks)
            for method in args.methods:
                out, secs = run(method, frames, masks, overrides=overrides)
                o, tr = np.stack(out), np.stack(truth)
                r = acc.setdefault(method, [[], [], [], [], [], 0.0])
                r[0].append(psnr(o[seen], tr[seen]) if seen.any() else np.nan)
                r[1].append(psnr(o[masks], tr[masks]))
                r[2].append(psnr(o, tr))
                fo, ft = flicker(out, truth, masks, kind, w, h)
                r[3].append(fo)
                r[4].append(ft)
                r[5] += secs / len(out) / len(photos)
        for method, (s, a, f, fl, ftr, secs) in acc.items():
            print(f"| {kind} | {method} | {np.nanmean(s):.2f} | {np.mean(a):.2f} | {np.mean(f):.2f} | "
                  f"{np.mean(fl):.2f} | {np.mean(ftr):.2f} | {secs:.3f} |", flush=True)


if __name__ == "__main__":
    main()
