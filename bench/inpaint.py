"""Inpainting quality where the truth is known: held-out photos with person-shaped holes.

    python bench/inpaint.py [--methods telea navier-stokes patchmatch learned auto] [--crops 2]

PSNR alone rewards blur on invented content, so three numbers inside the hole, each against the
photo itself: PSNR; low-pass PSNR (both blurred with a Gaussian of sigma 3 px: are colours and
structure right?); texture ratio = mean |Laplacian| of the fill / of the truth, measured at least
8 px inside the hole (1.0 = natural sharpness). Holes: real silhouettes (ground-truth masks of
schoolgirls, tennis, dogs_jump) scaled to cover about 5%, 15% and 30% of a 512x512 crop.
Also: seconds per 512x512 image.

HELD_OUT photos are never used for training (bgclean.train must exclude them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, inpaint_stage, machine, parse_args  # noqa: E402

HELD_OUT = [
    "lomiri-Dragonfly_by_Bolly.jpg", "lomiri-aitzgorri_by_Aitzol_Berasategi.jpg",
    "lomiri-life_by_Aitzol_Berasategi.jpg", "mate-Aqua.jpg", "mate-Garden.jpg", "mate-Storm.jpg",
    "plasma-BytheWater.jpg", "plasma-EveningGlow.jpg",
]
SIZES = {"5%": 0.05, "15%": 0.15, "30%": 0.30}


def silhouettes() -> list[np.ndarray]:
    from PIL import Image

    out = []
    for clip, idx, ids in (("schoolgirls", 40, None), ("tennis", 30, None), ("dogs_jump", 20, 3)):
        a = np.array(Image.open(data_dir() / "videos" / clip / "masks" / f"{idx:05d}.png"))
        m = (a == ids) if ids is not None else (a > 0)
        ys, xs = np.nonzero(m)
        out.append(m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    return out


def hole_for(sil: np.ndarray, frac: float, side: int, rng) -> np.ndarray:
    """The silhouette scaled so its area is ``frac`` of the image, placed at random, dilated 4 px."""
    import cv2

    s = np.sqrt(frac * side * side / max(sil.sum(), 1))
    h, w = max(4, int(sil.shape[0] * s)), max(4, int(sil.shape[1] * s))
    h, w = min(h, side - 2), min(w, side - 2)
    m = cv2.resize(sil.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    out = np.zeros((side, side), np.uint8)
    y, x = rng.integers(0, side - h), rng.integers(0, side - w)
    out[y : y + h, x : x + w] = m
    return cv2.dilate(out, np.ones((9, 9), np.uint8)) > 0


def crops(path: Path, n: int, side: int, rng):
    import cv2

    from bgclean import io

    img = io.read_image(path).rgb
    scale = 1024 / max(img.shape[:2])
    img = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    for _ in range(n):
        y, x = rng.integers(0, img.shape[0] - side), rng.integers(0, img.shape[1] - side)
        yield np.ascontiguousarray(img[y : y + side, x : x + side])


def held_out_cases(n_crops: int = 2, side: int = 512) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The benchmark's cases, always in the same order (seeded): (truth, hole, size label) for
    ``n_crops`` crops of each held-out photo and each hole size."""
    rng = np.random.default_rng(0)
    sils = silhouettes()
    cases = []
    for name in HELD_OUT:
        for truth in crops(data_dir() / "photos" / name, n_crops, side, rng):
            for label, frac in SIZES.items():
                cases.append((truth, hole_for(sils[len(cases) % len(sils)], frac, side, rng), label))
    return cases


def metrics(fill: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> tuple[float, float, float]:
    import cv2

    def psnr(a, b):
        mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
        return 10 * np.log10(255.0**2 / max(mse, 1e-12))

    blur = lambda a: cv2.GaussianBlur(a.astype(np.float32), (0, 0), 3)  # noqa: E731
    lap = lambda a: np.abs(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F))  # noqa: E731
    inner = cv2.erode(hole.astype(np.uint8), np.ones((17, 17), np.uint8)) > 0
    tex = lap(fill)[inner].mean() / max(lap(truth)[inner].mean(), 1e-6) if inner.any() else np.nan
    return psnr(fill[hole], truth[hole]), psnr(blur(fill)[hole], blur(truth)[hole]), tex


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["telea", "navier-stokes", "patchmatch", "learned", "auto"])
    ap.add_argument("--crops", type=int, default=2)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--sheet", metavar="PNG", help="also write a contact sheet truth | hole | each method")
    ap.add_argument("--sheet-cases", default="2,17,44", help="case indices on the sheet (comma-separated)")
    ap.add_argument("--sheet-only", action="store_true", help="run only the sheet's cases (no table)")
    args = parse_args(ap)

    import torch

    from bgclean.train.config import load_train_config

    for name in ("cpu", "gpu", "gpu-refine"):  # a benchmark photo a bundled recipe trains on measures nothing
        trained_on = set(HELD_OUT) - set(load_train_config(name, data=data_dir()).exclude)
        if trained_on:
            raise SystemExit(f"the bundled training config {name} does not exclude {sorted(trained_on)}")
    cases = held_out_cases(args.crops, args.side)
    picks = [int(i) for i in args.sheet_cases.split(",")] if args.sheet else []
    sheet_rows = {i: [cases[i][0], _show_hole(cases[i][0], cases[i][1])] for i in picks}
    if args.sheet_only:
        cases = [cases[i] for i in picks]
        picks, sheet_rows = list(range(len(picks))), {k: v for k, v in enumerate(sheet_rows.values())}
    print(f"# {machine()}; {len(cases)} cases: {len(HELD_OUT)} held-out photos x {args.crops} crops x 3 hole sizes,"
          f" {args.side}x{args.side}")
    print("| method | hole | PSNR (dB) | low-pass PSNR (dB) | texture ratio | s/image (this hole size) |")
    print("|---|---|---|---|---|---|")
    for method in args.methods:
        stage = inpaint_stage(method)
        res: dict[str, list] = {k: [] for k in SIZES}
        secs = {k: 0.0 for k in SIZES}
        for case, (truth, hole, label) in enumerate(cases):
            x = torch.from_numpy(truth).permute(2, 0, 1)[None].float() / 255
            m = torch.from_numpy(hole)[None, None].float()
            t0 = time.perf_counter()
            out = stage(x, m)
            secs[label] += time.perf_counter() - t0
            fill = (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            res[label].append(metrics(fill, truth, hole))
            if case in sheet_rows:
                sheet_rows[case].append(fill)
        for label, rows in res.items():
            if not rows:
                continue
            a = np.array(rows)
            print(f"| {method} | {label} | {np.mean(a[:, 0]):.2f} | {np.mean(a[:, 1]):.2f} | "
                  f"{np.nanmean(a[:, 2]):.2f} | {secs[label] / len(rows):.2f} |", flush=True)


    if args.sheet:
        from bgclean.pipeline.sheet import contact_sheet

        contact_sheet(list(sheet_rows.values()), ["truth", "hole", *args.methods], Path(args.sheet), max_width=1800)
        print(f"sheet: {args.sheet}")


def _show_hole(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
    from bgclean.pipeline.sheet import overlay_mask

    return overlay_mask(img, hole)


if __name__ == "__main__":
    main()
