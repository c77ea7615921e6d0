"""Shared fixtures. Every test runs from the repository alone: real clips live in tests/data/
(see its README for sources and licences), natural photos come from the scikit-image wheel, and
short clips are generated with ffmpeg at test time. The suite runs with its own BGCLEAN_HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SAMPLE = ROOT / "samples" / "vtest_6s.mp4"


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def data(rel: str) -> Path:
    """A file or folder of tests/data; a missing one is an error, never a skip."""
    p = DATA / rel
    if not p.exists():
        raise FileNotFoundError(f"test data {p} is missing from the checkout")
    return p


def photo(name: str) -> np.ndarray:
    """A natural photo without people from the scikit-image wheel (``skimage.data.<name>``), RGB uint8."""
    from skimage import data as skdata

    img = getattr(skdata, name)()
    if isinstance(img, tuple):  # stereo pairs: the left view
        img = img[0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _user_cache_before_the_suite() -> Path:
    from bgclean.weights.store import bgclean_home

    return bgclean_home()


_SUITE_HOME = pytest.StashKey[tuple[Path, "str | None"]]()  # the suite's BGCLEAN_HOME, the one before it


def pytest_configure(config):
    """The suite's own BGCLEAN_HOME, for this process and the CLIs it starts. Weights already in
    the user's cache are copied in once (read, never written), so a run does not download them
    again; tests that corrupt or replace cached files touch only the copies."""
    import tempfile

    user = _user_cache_before_the_suite()
    home = Path(tempfile.mkdtemp(prefix="bgclean-test-home-"))
    for sub in ("weights", "converted"):
        if (user / sub).is_dir() and user.resolve() != home.resolve():
            shutil.copytree(user / sub, home / sub, dirs_exist_ok=True)
    config.stash[_SUITE_HOME] = (home, os.environ.get("BGCLEAN_HOME"))
    os.environ["BGCLEAN_HOME"] = str(home)
    os.environ.pop("BGCLEAN_WEIGHTS_PATH", None)


def pytest_unconfigure(config):
    if _SUITE_HOME not in config.stash:
        return
    home, before = config.stash[_SUITE_HOME]
    if before is None:
        os.environ.pop("BGCLEAN_HOME", None)
    else:
        os.environ["BGCLEAN_HOME"] = before
    shutil.rmtree(home, ignore_errors=True)


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
    import cv2

    from bgclean import io

    src = data("schoolgirls/schoolgirls.mp4")
    base = tmp_path_factory.mktemp("schoolgirls")
    frames, masks = base / "frames", base / "masks"
    frames.mkdir()
    masks.mkdir()
    for f in io.read_frames(io.probe(src)):
        if f.index >= 6:
            break
        cv2.imwrite(str(frames / f"frame{f.index}.png"), f.rgb[:, :, ::-1])
        io.write_mask_png(masks / f"frame{f.index}.png", gt_person_mask("schoolgirls", f.index))
    return frames, masks


def mask_ids(clip: str, index: int) -> np.ndarray:
    """The ground-truth id map of a clip's frame, (H,W) uint8 (0 = background)."""
    from PIL import Image

    return np.array(Image.open(data(f"{clip}/masks/{index:05d}.png")))


def gt_person_mask(clip: str, index: int) -> np.ndarray:
    """Ground-truth mask of a frame, every id > 0, (H,W) bool."""
    return mask_ids(clip, index) > 0


def silhouettes() -> list[np.ndarray]:
    """Real person silhouettes cut to their bounding boxes: schoolgirls frame 40 (four girls and
    their backpacks) and the woman of dogs_jump frame 20."""
    out = []
    for clip, idx, person in (("schoolgirls", 40, None), ("dogs_jump", 20, 3)):
        a = mask_ids(clip, idx)
        m = (a == person) if person is not None else (a > 0)
        ys, xs = np.nonzero(m)
        out.append(m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    return out


def person_hole(side: int, frac: float = 0.15, seed: int = 1, which: int = 0) -> np.ndarray:
    """A silhouette scaled so its area is ``frac`` of a ``side`` px square, placed at random
    (seeded), dilated 4 px; (side,side) bool."""
    import cv2

    sil = silhouettes()[which]
    rng = np.random.default_rng(seed)
    s = np.sqrt(frac * side * side / max(sil.sum(), 1))
    h, w = min(max(4, int(sil.shape[0] * s)), side - 2), min(max(4, int(sil.shape[1] * s)), side - 2)
    m = cv2.resize(sil.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    out = np.zeros((side, side), np.uint8)
    y, x = rng.integers(0, side - h), rng.integers(0, side - w)
    out[y : y + h, x : x + w] = m
    return cv2.dilate(out, np.ones((9, 9), np.uint8)) > 0


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: skipped on CPU machines with the reason shown (-ra)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (pytest -m gpu on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


_SKIPPED: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and "gpu" not in report.keywords:
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """A skipped test that needs no GPU is a test that never runs: the suite fails on it."""
    if _SKIPPED and exitstatus == 0:
        session.exitstatus = 1
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"FAILED: {len(_SKIPPED)} test(s) skipped without needing a GPU:", red=True)
            for nodeid in _SKIPPED:
                reporter.write_line(f"  {nodeid}")
