"""Shared fixtures: real clips from ../shared/data, short clips generated with ffmpeg at test time."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BGCLEAN_SHARED") or ROOT.parent / "shared" / "data")  # BGCLEAN_SHARED: elsewhere
SAMPLE = ROOT / "samples" / "vtest_6s.mp4"


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def shared(rel: str) -> Path:
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"shared data {p} is not present")
    return p


@pytest.fixture(scope="session")
def clip_with_audio(tmp_path_factory) -> Path:
    """2 s, 320x240, 30000/1001 fps H.264 with an AAC sine tone."""
    out = tmp_path_factory.mktemp("clips") / "tone.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30000/1001", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=44100", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-shortest", str(out))
    return out


@pytest.fixture(scope="session")
def schoolgirls_frames(tmp_path_factory):
    """The first 6 frames of schoolgirls as a PNG folder, and their ground-truth person masks."""
    from bgclean.pipeline import io

    src = shared("videos/schoolgirls/schoolgirls.mp4")
    mask_dir = shared("videos/schoolgirls/masks")
    base = tmp_path_factory.mktemp("schoolgirls")
    frames, masks = base / "frames", base / "masks"
    frames.mkdir()
    masks.mkdir()
    info = io.probe(src)
    for f in io.read_frames(info):
        if f.index >= 6:
            break
        io._atomic_write_bytes(frames / f"frame{f.index}.png", io._encode_image(f, ".png"))
        gt = np.array(_palette_png(mask_dir / f"{f.index:05d}.png")) > 0
        io.write_mask_png(masks / f"frame{f.index}.png", gt)
    return frames, masks


def _palette_png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(path))


def gt_person_mask(clip: str, index: int) -> np.ndarray:
    """Ground-truth person mask (every id > 0) of schoolgirls, (H,W) bool."""
    return _palette_png(shared(f"videos/{clip}/masks/{index:05d}.png")) > 0


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: skipped on CPU machines with the reason shown (-ra)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (pytest -m gpu on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
