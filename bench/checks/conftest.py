"""Checks on the benchmark clips that may not ship with the repository (tennis and bmx-trees,
non-commercial licences). They take the benchmark data folder as an argument and fail, never
skip, where it lacks a clip:

    python -m pytest bench/checks --data PATH/TO/DATA

The folder holds ``videos/tennis/{frames,masks}`` and ``videos/bmx-trees/{frames,masks}`` (see
bench/README.md for where each clip comes from)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

_DATA: list[Path] = []


def pytest_addoption(parser):
    parser.addoption("--data", required=True, help="the benchmark data folder (holds videos/tennis, videos/bmx-trees)")


def pytest_configure(config):
    _DATA[:] = [Path(config.getoption("--data")).expanduser()]


def clip(rel: str) -> Path:
    """A path under the benchmark data folder; missing is an error."""
    p = _DATA[0] / rel
    if not p.exists():
        raise FileNotFoundError(f"{p} is missing: pass the benchmark data folder with --data")
    return p


def gt_person_mask(name: str, index: int) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(clip(f"videos/{name}/masks/{index:05d}.png"))) > 0


@pytest.fixture(autouse=True, scope="session")
def _own_home(tmp_path_factory):
    """Weights go to a temporary cache, as in the test suite."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BGCLEAN_HOME", str(tmp_path_factory.mktemp("home")))
    yield
    mp.undo()
