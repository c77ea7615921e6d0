"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"


def machine() -> str:
    import os

    import torch

    return f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"


def cut_clip(src: Path, frames: int, dst: Path) -> Path:
    """The first ``frames`` frames of ``src`` as a near-lossless H.264 clip (for quick runs)."""
    import subprocess

    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
                    "-frames:v", str(frames), "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p", str(dst)],
                   check=True)
    return dst
