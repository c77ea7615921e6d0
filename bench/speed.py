"""Throughput of each stage and end to end on vtest.avi at its native 768x576, default configuration.

    python bench/speed.py [--frames N] [--segmenters yolox+u2net.small yolox+mediapipe.selfie] [--device cpu]

Stage fps = frames / seconds spent in that stage over the run; decode is timed separately by
reading the clip alone. End-to-end fps includes decoding, all stages and encoding.
"""

from __future__ import annotations

import argparse
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import OUT, cut_clip, data_dir, machine, parse_args  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=100, help="frames of vtest to run (795 = all)")
    ap.add_argument("--segmenters", nargs="+", default=["yolox+u2net.small", "yolox+mediapipe.selfie"])
    ap.add_argument("--device", default="cpu")
    args = parse_args(ap)

    from bgclean import io
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline

    OUT.mkdir(parents=True, exist_ok=True)
    src = data_dir() / "videos" / "vtest.avi"
    clip = src if args.frames >= 795 else cut_clip(src, args.frames, OUT / f"vtest_{args.frames}.mp4")
    info = io.probe(clip)
    t0 = time.perf_counter()
    n = sum(1 for _ in io.read_frames(info))
    decode_fps = n / (time.perf_counter() - t0)

    print(f"# vtest {info.width}x{info.height}, {n} frames, device {args.device}; {machine()}")
    print(f"decode: {decode_fps:.1f} fps")
    print("| segmenter | segment fps | masks fps | propagate fps | inpaint fps | encode fps | end-to-end fps |")
    print("|---|---|---|---|---|---|---|")
    for seg in args.segmenters:
        cfg = load_config(None, {"segment.backend": seg, "runtime.device": args.device})
        pipe = Pipeline(cfg)
        _ = pipe.segment_stage  # weights loaded before timing
        report = pipe.run_file(clip, OUT / f"vtest_{n}_{seg}.mp4")
        st = report.stage_seconds
        fps = {k: report.frames / v for k, v in st.items() if v > 0}
        print(f"| {seg} | {fps['segment']:.2f} | {fps['masks']:.1f} | {fps.get('propagate', 0):.1f} | "
              f"{fps.get('inpaint', 0):.1f} | {fps['encode']:.1f} | {report.fps:.2f} |")


if __name__ == "__main__":
    main()
