"""Inpainting quality where the truth is known: held-out photos with person-shaped and free-form holes.

    python bench/inpaint.py [--methods telea navier-stokes patchmatch learned auto] [--crops 2]
                            [--sides 256 512 1024] [--holes person freeform]

PSNR alone rewards blur on invented content, so three numbers inside the hole, each against the
photo itself: PSNR; low-pass PSNR (both blurred with a Gaussian of sigma 3 px: are colours and
structure right?); texture ratio = mean |Laplacian| of the fill / of the truth, measured at least
8 px inside the hole (1.0 = natural sharpness). Holes: real silhouettes (ground-truth masks of
schoolgirls, tennis, dogs_jump) scaled to cover about 5%, 15% and 30% of the crop; free-form:
thick random strokes (brush widths 4-12% of the side) until they cover 25%, 45% or 65% of it, the
large-hole masks of inpainting benchmarks. Crops are ``--sides`` px square, cut from the photo scaled
so its long side is twice the crop's (the same share of the scene at every size). Also: seconds
per image.

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
SIZES = {"5%": 0.05, "15%": 0.15, "30%": 0.30}  # person-shaped holes
FREEFORM = {"free 25%": 0.25, "free 45%": 0.45, "free 65%": 0.65}


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
    scale = 2 * side / max(img.shape[:2])
    img = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    for _ in range(n):
        y, x = rng.integers(0, img.shape[0] - side), rng.integers(0, img.shape[1] - side)
        yield np.ascontiguousarray(img[y : y + side, x : x + side])


def freeform_hole(side: int, frac: float, rng) -> np.ndarray:
    """Thick random strokes (each 3-6 segments, brush 4-12% of ``side``) added until they cover
    ``frac`` of the image (within a few percent)."""
    import cv2

    m = np.zeros((side, side), np.uint8)
    while m.mean() < frac:
        pts = [rng.integers(0, side, 2)]
        for _ in range(int(rng.integers(3, 7))):
            step = rng.normal(0, side / 4, 2)
            pts.append(np.clip(pts[-1] + step, 0, side - 1).astype(int))
        width = int(side * rng.uniform(0.04, 0.12))
        before = m.copy()
        cv2.polylines(m, [np.array(pts, np.int32).reshape(-1, 1, 2)], False, 1, width)
        if m.mean() > frac + 0.04:  # one stroke too many: keep the coverage near the label
            m = before
            break
    return m > 0


def held_out_cases(n_crops: int = 2, side: int = 512, kinds: tuple[str, ...] = ("person",),
                   ) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The benchmark's cases, always in the same order (seeded): (truth, hole, size label) for
    ``n_crops`` crops of each held-out photo and each hole size of each kind."""
    rng = np.random.default_rng(0)
    sils = silhouettes()
    cases = []
    for name in HELD_OUT:
        for truth in crops(data_dir() / "photos" / name, n_crops, side, rng):
            if "person" in kinds:
                for label, frac in SIZES.items():
                    cases.append((truth, hole_for(sils[len(cases) % len(sils)], frac, side, rng), label))
            if "freeform" in kinds:
                for label, frac in FREEFORM.items():
                    cases.append((truth, freeform_hole(side, frac, rng), label))
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
    ap.add_argument("--sides", type=int, nargs="+", default=[512], help="crop sizes, px")
    ap.add_argument("--holes", nargs="+", choices=["person", "freeform"], default=["person"])
    ap.add_argument("--sheet", metavar="PNG", help="also write a contact sheet truth | hole | each method "
                    "(one per side, named PNG_SIDE, when there are several)")
    ap.add_argument("--sheet-cases", default="2,17,44", help="case indices on the sheet (comma-separated)")
    ap.add_argument("--sheet-only", action="store_true", help="run only the sheet's cases (no table)")
    args = parse_args(ap)

    from bgclean.train.config import load_train_config

    for name in ("cpu", "gpu", "gpu-refine"):  # a benchmark photo a bundled recipe trains on measures nothing
        trained_on = set(HELD_OUT) - set(load_train_config(name, data=data_dir()).exclude)
        if trained_on:
            raise SystemExit(f"the bundled training config {name} does not exclude {sorted(trained_on)}")
    print(f"# {machine()}; {len(HELD_OUT)} held-out photos x {args.crops} crops x 3 hole sizes per kind "
          f"({', '.join(args.holes)})")
    print("| method | side | hole | PSNR (dB) | low-pass PSNR (dB) | texture ratio | s/image |")
    print("|---|---|---|---|---|---|---|")
    for side in args.sides:
        sheet = None
        if args.sheet:
            sheet = Path(args.sheet)
            if len(args.sides) > 1:
                sheet = sheet.with_name(f"{sheet.stem}_{side}{sheet.suffix}")
        run_side(args, side, sheet)


def run_side(args, side: int, sheet: Path | None) -> None:
    """Every method over the cases of one crop size: a table row per method and hole size."""
    import torch

    cases = held_out_cases(args.crops, side, tuple(args.holes))
    picks = [int(i) for i in args.sheet_cases.split(",")] if sheet else []
    sheet_rows = {i: [cases[i][0], _show_hole(cases[i][0], cases[i][1])] for i in picks}
    if args.sheet_only:
        cases = [cases[i] for i in picks]
        picks, sheet_rows = list(range(len(picks))), {k: v for k, v in enumerate(sheet_rows.values())}
    labels = [label for kind, sizes in (("person", SIZES), ("freeform", FREEFORM)) if kind in args.holes
              for label in sizes]
    for method in args.methods:
        stage = inpaint_stage(method)
        res: dict[str, list] = {k: [] for k in labels}
        secs = {k: 0.0 for k in labels}
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
            print(f"| {method} | {side} | {label} | {np.mean(a[:, 0]):.2f} | {np.mean(a[:, 1]):.2f} | "
                  f"{np.nanmean(a[:, 2]):.2f} | {secs[label] / len(rows):.2f} |", flush=True)
    if sheet:
        from bgclean.pipeline.sheet import contact_sheet

        contact_sheet(list(sheet_rows.values()), ["truth", "hole", *args.methods], sheet, max_width=1800)
        print(f"sheet: {sheet}")


def _show_hole(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
    from bgclean.pipeline.sheet import overlay_mask

    return overlay_mask(img, hole)


if __name__ == "__main__":
    main()
