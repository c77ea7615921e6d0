"""Files bgclean did not write are data, never code: a crafted checkpoint whose unpickling would run
a payload is refused with exit code 2 by every command that reads one, and the payload never runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch


class _Payload:
    """Unpickled with weights_only=False, this would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    net = {"w": torch.zeros(2)}
    torch.save({"architecture": "inpaint.unet.w8", "model": net, "payload": _Payload(marker)}, path)
    return path


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bgclean", *args], cwd=cwd, capture_output=True, text=True)


def test_export_refuses_a_checkpoint_that_would_run_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker)
    run = _cli("train", "--export", str(evil), str(tmp_path / "dest.pth"), cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "not a bgclean training checkpoint" in run.stderr
    assert "weights_only" not in run.stderr and "can still be loaded" not in run.stderr
    assert not marker.exists() and not (tmp_path / "dest.pth").exists()


@pytest.mark.parametrize("where", ["resume", "init"])
def test_training_refuses_a_checkpoint_that_would_run_code(tmp_path, where):
    from bgclean.errors import InputError
    from bgclean.train.config import load_train_config
    from bgclean.train.trainer import Trainer

    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    out.mkdir()
    photos = tmp_path / "photos"
    photos.mkdir()
    import cv2
    import numpy as np

    for k in range(2):
        cv2.imwrite(str(photos / f"p{k}.png"), np.random.default_rng(k).integers(0, 255, (96, 96, 3), dtype=np.uint8))
    overrides = {"arch": "unet", "width": 8, "residual": False, "photos": str(photos), "size": 64, "val_photos": 0,
                 "out": str(out), "steps": 1, "w_perceptual": 0.0, "eval_images": 1}
    if where == "resume":
        _evil_checkpoint(out / "last.pt", marker)
    else:
        overrides["init"] = str(_evil_checkpoint(tmp_path / "evil.pt", marker))
    with pytest.raises(InputError, match="not a bgclean training checkpoint"):
        Trainer(load_train_config(None, overrides))
    assert not marker.exists()


def test_a_plain_checkpoint_still_loads(tmp_path):
    from bgclean.train.trainer import load_checkpoint

    torch.save({"architecture": "a", "model": {"w": torch.ones(1)}, "step": 3, "config": {"masks": ({"path": "x"},)}},
               tmp_path / "ok.pt")
    assert load_checkpoint(tmp_path / "ok.pt")["step"] == 3
