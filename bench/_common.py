"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
_data: list[Path] = []


def parse_args(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """``ap``'s arguments plus ``--data DIR``, the benchmark data set (layout in bench/README.md;
    default: the ``BGCLEAN_BENCH_DATA`` environment variable)."""
    default = os.environ.get("BGCLEAN_BENCH_DATA")
    ap.add_argument("--data", type=Path, default=Path(default) if default else None, required=not default,
                    help="benchmark data folder (layout in bench/README.md; default: $BGCLEAN_BENCH_DATA)")
    args = ap.parse_args()
    if not args.data.is_dir():
        ap.error(f"benchmark data folder {args.data} not found: pass it with --data DIR")
    _data[:] = [args.data.expanduser().resolve()]
    return args


def data_dir() -> Path:
    """The benchmark data folder given to ``parse_args``."""
    if not _data:
        raise RuntimeError("call _common.parse_args first: it reads --data")
    return _data[0]


def machine() -> str:
    import torch

    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads{gpu}")


def cut_clip(src: Path, frames: int, dst: Path, start: int = 0) -> Path:
    """``frames`` frames of ``src`` from frame ``start`` as a near-lossless H.264 clip (for quick
    runs)."""
    import subprocess

    import imageio_ffmpeg

    trim = ["-vf", f"trim=start_frame={start},setpts=PTS-STARTPTS"] if start else []
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
                    *trim, "-frames:v", str(frames), "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p",
                    str(dst)], check=True)
    return dst


def inpaint_stage(method: str):
    """An InpaintStage from a benchmark method spec: a backend name, optionally with config fields
    after a colon, e.g. ``learned:tiles=2,passes=2``. ``checkpoint=PATH`` (learned only) evaluates a
    training checkpoint (``runs/.../last.pt``) instead of the registered weights."""
    import dataclasses

    import torch
    import yaml

    from bgclean.pipeline.config import InpaintConfig
    from bgclean.stages.inpaint import InpaintStage, LearnedFill

    name, _, opts = method.partition(":")
    fields = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in opts.split(",") if o)}
    checkpoint = fields.pop("checkpoint", None)
    cfg = InpaintConfig(backend="telea" if checkpoint else name, **fields)
    stage = InpaintStage(cfg)
    if checkpoint:
        from bgclean.models import build_model
        from bgclean.train.trainer import load_checkpoint

        ck = load_checkpoint(checkpoint)
        net = build_model(ck["architecture"])
        net.load_state_dict(ck["model"])
        stage.cfg = dataclasses.replace(cfg, backend="learned")
        stage.fill_fn = stage.still_fn = LearnedFill(stage.cfg, torch.device("cpu"), net=net)
    return stage
