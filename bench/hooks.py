"""The motion-imitation hooks: time per call, and a before/after sheet.

    python bench/hooks.py [--data DIR] [--device cpu|cuda] [--repeat 3] [--sheet FILE]

Source frames: schoolgirls (frames 0, 20, 40, 60), a 240 px square around the girls scaled to
256 or 512 px, with the ground-truth person masks grown as impersonator grows its body mask
(``bg_ks`` = 13 px square). Times ``impersonator.BGNet`` (its call: ``bgnet(img, masks=body_mask,
only_x=True)``) and ``ipercore.BGNet`` (``bg_net(cat([img * bg_mask, bg_mask], 1))``) for batches
of 1 and 4 at both sizes, and iPERCore's preprocessing ``run_inpainting`` on one 512 px image, each
the median of ``--repeat`` calls after one warm-up call (which loads the weights). ``--sheet FILE``
writes source | body mask | impersonator's background | iPERCore's preprocessed background, one
row per frame, at 512 px.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import data_dir, machine, parse_args  # noqa: E402

FRAMES = (0, 20, 40, 60)


def sources(size: int, count: int):
    """``count`` source frames as impersonator holds them: (N,3,S,S) in [-1,1], and body masks
    (N,1,S,S), 1 = body, grown by a 13 px square."""
    import cv2
    import torch
    import torch.nn.functional as F

    from bgclean import io

    clip = data_dir() / "videos" / "schoolgirls"
    wanted = FRAMES[:count]
    rgbs = {f.index: f.rgb for f in io.read_frames(io.probe(clip / "schoolgirls.mp4")) if f.index in wanted}
    imgs, masks = [], []
    for i in wanted:
        m = cv2.imread(str(clip / "masks" / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE) > 0
        imgs.append(cv2.resize(np.ascontiguousarray(rgbs[i][:, 96:336]), (size, size), interpolation=cv2.INTER_AREA))
        masks.append(cv2.resize(m[:, 96:336].astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST))
    img = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1
    body = F.max_pool2d(torch.from_numpy(np.stack(masks))[:, None].float(), 13, stride=1, padding=6)
    return img, body


def timed(fn, repeat: int) -> float:
    fn()  # weights loaded, buffers sized
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sheet", type=Path, help="write the before/after sheet (PNG) here")
    args = parse_args(ap)
    import torch

    from bgclean.hooks import impersonator, ipercore

    dev = torch.device(args.device)
    imp, iper = impersonator.BGNet().to(dev).eval(), ipercore.BGNet().to(dev).eval()
    print(f"# {machine()}, device {dev}")
    print("| call | size | batch | ms per call | ms per image |")
    print("|---|---|---|---|---|")
    for size in (256, 512):
        for batch in (1, 4):
            img, body = (t.to(dev) for t in sources(size, batch))
            bg_mask = 1 - body
            bg_inputs = torch.cat([img * bg_mask, bg_mask], 1)
            for name, call in (("impersonator BGNet", lambda: imp(img, masks=body, only_x=True)),
                               ("iPERCore bg_net", lambda: iper(bg_inputs))):
                with torch.no_grad():
                    s = timed(call, args.repeat)
                print(f"| {name} | {size} | {batch} | {s * 1000:.0f} | {s * 1000 / batch:.0f} |", flush=True)
    img, body = sources(512, 1)
    bgr = ((img[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)[..., ::-1].copy()
    person = (body[0, 0].numpy() > 0).astype(np.uint8) * 255
    inpaintor = ipercore.BackgroundInpaintor(device=dev)
    s = timed(lambda: inpaintor.run_inpainting(bgr, person, dilate_kernel_size=19, dilate_iter_num=3), args.repeat)
    print(f"| iPERCore run_inpainting | 512 | 1 | {s * 1000:.0f} | {s * 1000:.0f} |")
    if args.sheet:
        write_sheet(args.sheet, imp, inpaintor, dev)


def write_sheet(path: Path, imp, inpaintor, dev) -> None:
    import cv2
    import torch

    img, body = sources(512, 2)
    with torch.no_grad():
        bg = imp(img.to(dev), masks=body.to(dev), only_x=True).cpu()
    rows = []
    for k in range(img.shape[0]):
        src = ((img[k].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        mask = np.repeat((body[k, 0].numpy() > 0).astype(np.uint8)[..., None] * 255, 3, axis=2)
        out = ((bg[k].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        person = (body[k, 0].numpy() > 0).astype(np.uint8) * 255
        pre = inpaintor.run_inpainting(np.ascontiguousarray(src[..., ::-1]), person, 19, 3)[0][..., ::-1]
        rows.append(np.concatenate([src, mask, out, pre], axis=1))
    sheet = np.concatenate(rows, axis=0)
    sheet = cv2.resize(sheet, (sheet.shape[1] // 2, sheet.shape[0] // 2), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(sheet[..., ::-1]))
    print(f"sheet: {path}")


if __name__ == "__main__":
    main()
