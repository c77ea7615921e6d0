"""Real-ESRGAN cost and look.

    python bench/superres.py [--frames 30]

1. Per-call CPU time of our torch models against the ncnn runtime (same weights, same input, same
   machine, same run; ratio = torch / ncnn).
2. Fill mode on vtest (768x576): the fill is made at --inpaint-size and restored to native with
   bicubic or Real-ESRGAN; time of the restore against the rest of the pipeline, and a contact sheet
   (crop around the holes: input | bicubic restore | Real-ESRGAN restore).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, ROOT, cut_clip, data_dir, machine, parse_args  # noqa: E402


def bench_vs_ncnn(repeats: int = 3) -> None:
    import ncnn
    import skimage.data
    import torch

    from bgclean.models import build_model
    from bgclean.weights import store
    from bgclean.weights.registry import REGISTRY

    print("| model | input | torch s/call | ncnn s/call | torch / ncnn |")
    print("|---|---|---|---|---|")
    for name, (h, w) in [("realesrgan.animevideov3", (144, 192)), ("realesrgan.x4plus.ncnn", (72, 96))]:
        spec = REGISTRY.get(name)
        model = build_model(spec.architecture)
        model.load_state_dict(store.load_state_dict(spec))
        model = model.eval().to(memory_format=torch.channels_last)  # as the SR stage runs it
        img = np.ascontiguousarray(skimage.data.astronaut()[100 : 100 + h, 100 : 100 + w].transpose(2, 0, 1),
                                   dtype=np.float32) / 255
        x = torch.from_numpy(img)[None].contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            model(x)
            t0 = time.perf_counter()
            for _ in range(repeats):
                model(x)
            t_torch = (time.perf_counter() - t0) / repeats
        net = ncnn.Net()
        net.opt.num_threads = torch.get_num_threads()
        for opt in ("use_vulkan_compute",):
            setattr(net.opt, opt, False)
        net.load_param(str(store.resolve(spec.companion)))
        net.load_model(str(store.resolve(spec)))
        arr = np.ascontiguousarray(img)
        mat = ncnn.Mat(arr)

        def run():
            ex = net.create_extractor()
            ex.input("data", mat)
            return ex.extract("output")

        run()
        t0 = time.perf_counter()
        for _ in range(repeats):
            run()
        t_ncnn = (time.perf_counter() - t0) / repeats
        print(f"| {name} | {w}x{h} | {t_torch:.3f} | {t_ncnn:.3f} | {t_torch / t_ncnn:.2f} |")


def bench_fill_mode(frames: int, size: int) -> None:
    from bgclean import io
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline
    from bgclean.pipeline.sheet import contact_sheet

    clip = cut_clip(data_dir() / "videos" / "vtest.avi", frames, OUT / f"vtest_{frames}.mp4")
    results = {}
    print(f"\nfill mode on vtest 768x576, {frames} frames, fill made at long side {size} (telea), u2net.small masks")
    print("| restore | segment s | masks s | inpaint s | restore (superres) s | restore / rest of pipeline | end-to-end fps |")
    print("|---|---|---|---|---|---|---|")
    for sr in ("none", "realesrgan.animevideov3", "realesrgan.x4plus"):
        cfg = load_config(None, {"segment.backend": "u2net.small", "inpaint.max_side": size, "superres.model": sr,
                                 "runtime.device": "cpu"})
        pipe = Pipeline(cfg)
        _ = pipe.segment_stage
        out = OUT / f"fill_{sr.replace('.', '_')}"
        rep = pipe.run_file(clip, out, save_masks=OUT / "fill_masks")
        st = rep.stage_seconds
        rest = rep.seconds - st.get("superres", 0.0)
        print(f"| {sr} | {st['segment']:.1f} | {st['masks']:.1f} | {st['inpaint']:.1f} | {st.get('superres', 0):.1f} | "
              f"{st.get('superres', 0) / rest:.2f} | {rep.fps:.2f} |")
        results[sr] = out
    # contact sheet: crops around the first frames' holes
    rows = []
    src = {f.index: f.rgb for f in io.read_frames(io.probe(clip)) if f.index in (5, frames // 2, frames - 5)}
    for idx in sorted(src):
        mask = io.read_image(sorted((OUT / "fill_masks").glob("*.png"))[idx]).rgb[:, :, 0] > 0
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            continue
        cy, cx = int(ys.mean()), int(xs.mean())
        y0, x0 = max(0, min(576 - 192, cy - 96)), max(0, min(768 - 256, cx - 128))
        crop = lambda a: a[y0 : y0 + 192, x0 : x0 + 256]  # noqa: E731
        outs = {k: io.read_image(sorted(v.glob("*.png"))[idx]).rgb for k, v in results.items()}
        rows.append([crop(src[idx]), crop(outs["none"]), crop(outs["realesrgan.animevideov3"]),
                     crop(outs["realesrgan.x4plus"])])
    contact_sheet(rows, ["input", "bicubic restore", "animevideov3 restore", "x4plus restore"],
                  ROOT / "bench" / "superres_fill_vtest.png", max_width=1400)
    print("sheet: bench/superres_fill_vtest.png")


def bench_oracle_fill(size: int) -> None:
    """What fill mode buys on a textured fill: vtest's static camera gives the true background (a
    temporal median of 200 frames). That plate, shrunk to the fill resolution, plays a perfect
    low-resolution inpainter; each restore is scored inside real person masks against the native
    plate (PSNR, and texture ratio = mean |Laplacian| of the restore / of the truth)."""
    import cv2
    import torch

    from bgclean import io
    from bgclean.pipeline.config import SuperResConfig
    from bgclean.pipeline.sheet import contact_sheet
    from bgclean.stages.superres import SuperResStage

    frames = [f.rgb for f in io.read_frames(io.probe(data_dir() / "videos" / "vtest.avi")) if f.index % 4 == 0][:200]
    plate = np.median(np.stack(frames), axis=0).astype(np.uint8)
    masks = sorted((OUT / "fill_masks").glob("*.png"))
    h, w = plate.shape[:2]
    s = size / max(h, w)
    small = cv2.resize(plate, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255
    lap = lambda a: np.abs(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F))  # noqa: E731
    print(f"\noracle fill (true background at long side {size}) restored to 768x576 inside the masks of "
          f"{len(masks)} frames")
    print("| restore | PSNR in mask (dB) | texture ratio | seconds/frame |")
    print("|---|---|---|---|")
    rows, row_imgs = {}, {}
    for model in ("none", "realesrgan.animevideov3", "realesrgan.x4plus"):
        stage = SuperResStage(SuperResConfig(model=model))
        psnrs, tex, secs = [], [], 0.0
        for mp in masks:
            hole = torch.from_numpy(io.read_image(mp).rgb[:, :, 0] > 0)[None, None].float()
            if hole.sum() == 0:
                continue
            t0 = time.perf_counter()
            out = stage.restore_fill(x, hole)
            secs += time.perf_counter() - t0
            img = (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            m = hole[0, 0].numpy() > 0
            mse = np.mean((img[m].astype(float) - plate[m].astype(float)) ** 2)
            psnrs.append(10 * np.log10(255**2 / max(mse, 1e-9)))
            inner = cv2.erode(m.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
            tex.append(lap(img)[inner].mean() / max(lap(plate)[inner].mean(), 1e-6))
            row_imgs.setdefault(mp.name, {})[model] = img
        rows[model] = (np.mean(psnrs), np.mean(tex), secs / max(1, len(psnrs)))
        print(f"| {model} | {rows[model][0]:.2f} | {rows[model][1]:.2f} | {rows[model][2]:.2f} |")
    sheet_rows = []
    for name in list(row_imgs)[:: max(1, len(row_imgs) // 3)][:3]:
        m = io.read_image(OUT / "fill_masks" / name).rgb[:, :, 0] > 0
        ys, xs = np.nonzero(m)
        cy, cx = int(ys.mean()), int(xs.mean())
        y0, x0 = max(0, min(h - 144, cy - 72)), max(0, min(w - 192, cx - 96))
        crop = lambda a: a[y0 : y0 + 144, x0 : x0 + 192]  # noqa: E731
        imgs = row_imgs[name]
        sheet_rows.append([crop(plate), crop(imgs["none"]), crop(imgs["realesrgan.animevideov3"]),
                           crop(imgs["realesrgan.x4plus"])])
    contact_sheet(sheet_rows, ["true background", f"bicubic from {size}px", "animevideov3", "x4plus"],
                  ROOT / "bench" / "superres_oracle_vtest.png", max_width=1400)
    print("sheet: bench/superres_oracle_vtest.png")


def bench_gpu(repeats: int = 5) -> None:
    """GPU fps (fp16, channels_last): fill mode at 1280x720 and 1920x1080 (one person-sized hole,
    fill made at long side 512), and whole-frame x4 at 640x360."""
    import torch

    from bgclean.pipeline.config import SuperResConfig
    from bgclean.stages.superres import SuperResStage

    if not torch.cuda.is_available():
        print("\nGPU: skipped (no CUDA device on this machine)")
        return
    dev = torch.device("cuda")
    print(f"\nGPU: {torch.cuda.get_device_name(dev)}")
    print("| model | workload | fps |")
    print("|---|---|---|")

    def timed(fn):
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize()
        return repeats / (time.perf_counter() - t0)

    for model in ("realesrgan.animevideov3", "realesrgan.x4plus"):
        stage = SuperResStage(SuperResConfig(model=model, tile=512), dev)
        for h, w in ((720, 1280), (1080, 1920)):
            s = 512 / w
            fill = torch.rand(1, 3, round(h * s), 512, device=dev)
            holes = torch.zeros(1, 1, h, w, device=dev)
            holes[:, :, h // 4 : h - h // 8, w // 3 : w // 3 + w // 6] = 1
            print(f"| {model} | fill mode {w}x{h} | {timed(lambda: stage.restore_fill(fill, holes)):.1f} |")
        frame = torch.rand(1, 3, 360, 640, device=dev)
        print(f"| {model} | whole frame x4 640x360 | {timed(lambda: stage.resize(frame, (1440, 2560))):.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--inpaint-size", type=int, default=256)
    args = parse_args(ap)
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"# {machine()}")
    bench_vs_ncnn()
    bench_fill_mode(args.frames, args.inpaint_size)
    bench_oracle_fill(args.inpaint_size)
    bench_gpu()


if __name__ == "__main__":
    main()
