"""No output path can resolve outside the output folder a user names, whatever a manifest says."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest


def _png(path: Path, seed: int) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8))


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def config():
    from bgclean.pipeline.config import load_config

    return load_config(None, {"segment.backend": "u2net.small", "runtime.device": "cpu"})


def test_dot_dot_in_a_manifest_writes_inside_the_output_folder(tmp_path, config):
    """A manifest line ``..`` named the item ``..``, and its output ``OUT/..``: the frames went
    beside the output folder and overwrote the user's own f1.png there. Now the item takes its
    folder's real name; a ``..`` that holds the output folder itself is refused for that item."""
    from bgclean.pipeline.batch import run_batch

    for k in (1, 2, 3):
        _png(tmp_path / "src" / "frames" / f"f{k}.png", k)
    (tmp_path / "src" / "frames" / "sub").mkdir()
    manifest = tmp_path / "src" / "frames" / "sub" / "jobs.txt"
    manifest.write_text("..\n")
    deep = tmp_path / "t" / "deep"
    _png(deep / "f1.png", 9)  # the user's own file beside the output folder
    _png(tmp_path / "t" / "x.png", 4)
    (deep / "jobs.txt").write_text("..\n")  # this ".." is t/, which holds the output folder
    outdir = deep / "cleaned"
    before = _tree(tmp_path)
    results = run_batch([f"@{manifest}", f"@{deep / 'jobs.txt'}"], outdir, config)
    assert [r.status for r in results] == ["ok", "failed"], results
    assert "inside the input folder" in results[1].error
    after = _tree(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("t/deep/cleaned/")} == before
    assert sorted(p.name for p in (outdir / "frames").iterdir()) == ["f1.png", "f2.png", "f3.png"]


def test_an_output_that_is_a_link_is_refused_for_that_item_only(tmp_path, config):
    from bgclean.pipeline.batch import run_batch

    _png(tmp_path / "in" / "a.png", 1)
    _png(tmp_path / "in" / "b.png", 2)
    elsewhere = tmp_path / "elsewhere.png"
    _png(elsewhere, 3)
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "a.png").symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    results = run_batch([str(tmp_path / "in" / "a.png"), str(tmp_path / "in" / "b.png")], outdir, config)
    assert [r.status for r in results] == ["failed", "ok"]
    assert "link" in results[0].error
    assert elsewhere.read_bytes() == before


def test_the_root_has_no_output_name(tmp_path):
    from bgclean.errors import InputError
    from bgclean.pipeline.batch import output_for

    with pytest.raises(InputError, match="no name"):
        output_for(Path("/"), tmp_path)
    assert output_for(tmp_path / "x" / "..", tmp_path / "o") == tmp_path / "o" / tmp_path.name
