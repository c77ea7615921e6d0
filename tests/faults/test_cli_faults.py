"""Bad input, odd media and faults, through the command line as a user meets them. Each case: the
command, the exit code and the message it must print, and the state after it: no output or staged
file left, the inputs unchanged."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE


def _png(path: Path, seed: int = 0, size=(48, 64)) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8))
    return path


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@dataclass
class Case:
    name: str
    setup: Callable[[Path], list[str]]  # makes the inputs under tmp, returns the arguments
    code: int
    message: str  # a piece of what stderr must say
    absent: tuple[str, ...] = ()  # paths (relative to tmp) that must not exist afterwards


def _sample(tmp: Path) -> Path:
    (tmp / "in").mkdir(exist_ok=True)
    dst = tmp / "in" / "clip.mp4"
    if not dst.exists():
        dst.write_bytes(SAMPLE.read_bytes())
    return dst


def _frames(tmp: Path, names=("f1.png", "f2.png", "f3.png")) -> Path:
    for k, n in enumerate(names):
        _png(tmp / "in" / "frames" / n, k)
    return tmp / "in" / "frames"


CASES = [
    Case("a dilation of 10^8 px is refused up front",
         lambda t: [str(_sample(t)), "-o", str(t / "out.mp4"), "--dilate", "100000000px"],
         2, "masks.dilate_px must be in [0, 2000]", ("out.mp4",)),
    Case("a negative memory ceiling is refused up front",
         lambda t: [str(_sample(t)), "-o", str(t / "out.mp4"), "--memory", "-1"],
         2, "runtime.memory_gb must be >= 0", ("out.mp4",)),
    Case("an output under /proc is refused up front",
         lambda t: [str(_sample(t)), "-o", "/proc/bgclean-x/x.mp4"], 2, "cannot write output /proc/bgclean-x/x.mp4"),
    Case("--save-masks under /proc is refused up front",
         lambda t: [str(_sample(t)), "-o", str(t / "out.mp4"), "--save-masks", "/proc/bgclean-x"],
         2, "cannot write --save-masks /proc/bgclean-x", ("out.mp4",)),
    Case("--save-masks under a file is refused up front",
         lambda t: [str(_sample(t)), "-o", str(t / "out.mp4"), "--save-masks", str(_png(t / "in" / "file.png") / "m")],
         2, "is not a directory", ("out.mp4",)),
    Case("--save-masks equal to the output folder is refused",
         lambda t: [str(_frames(t)), "-o", str(t / "out"), "--save-masks", str(t / "out")],
         2, "is the output", ("out",)),
    Case("an ffconcat script named .mp4 is not followed",
         lambda t: [str(_concat(t)), "-o", str(t / "out.mp4")], 2, "concat script or playlist", ("out.mp4",)),
    Case("an HLS playlist named .mp4 is not followed",
         lambda t: [str(_hls(t)), "-o", str(t / "out.mp4")], 2, "is not a readable video", ("out.mp4",)),
    Case("two frames that differ only in extension are refused, not merged",
         lambda t: [str(_frames(t, ("a.png", "a.jpg", "b.png"))), "-o", str(t / "out")],
         2, "would both be written as a.png", ("out",)),
    Case("an output folder holding an older run's extra frame is refused",
         lambda t: [str(_frames(t)), "-o", str(_png(t / "out" / "f99.png").parent)],
         2, "already holds f99.png"),
    Case("an output folder holding other files is refused",
         lambda t: [str(_frames(t)), "-o", str(_notes(t / "out"))], 2, "already holds notes.txt"),
    Case("a frame of another size mid-way leaves no output and no masks",
         lambda t: [str(_odd_frame(t)), "-o", str(t / "out"), "--save-masks", str(t / "masks"),
                    "--segmenter", "u2net.small"],
         2, "all frames of a folder must have one size", ("out", "masks")),
]


def _file(t: Path, name: str, data: bytes) -> Path:
    (t / "in").mkdir(exist_ok=True)
    (t / "in" / name).write_bytes(data)
    return t / "in" / name


def _truncated(t: Path) -> Path:
    return _file(t, "trunc.mp4", _sample(t).read_bytes()[:150_000])


def _audio_only(t: Path) -> Path:
    from conftest import ffmpeg

    (t / "in").mkdir(exist_ok=True)
    ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(t / "in" / "audio.mp4"))
    return t / "in" / "audio.mp4"


def _float_tiff(t: Path) -> Path:
    import cv2

    (t / "in").mkdir(exist_ok=True)
    cv2.imwrite(str(t / "in" / "float.tiff"), np.zeros((20, 20, 3), np.float32))
    return t / "in" / "float.tiff"


def _yaml(t: Path, text: str) -> Path:
    (t / "conf.yaml").write_text(text)
    return t / "conf.yaml"


def _no_frames(t: Path) -> Path:
    (t / "in" / "nofr").mkdir(parents=True)
    (t / "in" / "nofr" / "a.txt").write_text("x")
    return t / "in" / "nofr"


def _same_names(t: Path) -> list[str]:
    return [str(_png(t / "in" / "x" / "a.png", 1)), str(_png(t / "in" / "y" / "a.png", 2))]


def _run(t: Path, *extra: str) -> list[str]:
    return [str(_sample(t)), "-o", str(t / "out.mp4"), *extra]


CASES += [
    # inputs
    Case("a missing input", lambda t: [str(t / "nothere.mp4")], 2, "does not exist"),
    Case("an empty video file", lambda t: [str(_file(t, "empty.mp4", b""))], 2, "is empty (0 bytes)"),
    Case("random bytes named .mp4", lambda t: [str(_file(t, "noise.mp4", bytes(range(256)) * 20))],
         2, "is not a readable video"),
    Case("a truncated video", lambda t: [str(_truncated(t)), "-o", str(t / "out.mp4")],
         2, "truncated or corrupt", ("out.mp4",)),
    Case("text named .png", lambda t: [str(_file(t, "text.png", b"hello\n")), "-o", str(t / "out.png")],
         2, "is not a readable image", ("out.png",)),
    Case("a folder without frames", lambda t: [str(_no_frames(t)), "-o", str(t / "out")], 2, "contains no image frames",
         ("out",)),
    Case("an audio-only file", lambda t: [str(_audio_only(t)), "-o", str(t / "out.mp4")], 2, "contains no video frames",
         ("out.mp4",)),
    Case("a float TIFF", lambda t: [str(_float_tiff(t)), "-o", str(t / "out.tiff")], 2, "float32 images are not supported",
         ("out.tiff",)),
    # outputs
    Case("the output is the input", lambda t: [str(_sample(t)), "-o", str(_sample(t))], 2, "is the input"),
    Case("an unknown output extension", lambda t: _run(t)[:1] + ["-o", str(t / "x.xyz")], 2, "unknown extension '.xyz'"),
    Case("a video format bgclean does not write", lambda t: _run(t)[:1] + ["-o", str(t / "x.mpg")],
         2, "cannot write .mpg video"),
    Case("an image output for a video", lambda t: _run(t)[:1] + ["-o", str(t / "x.png")], 2,
         "is an image but the input is a video", ("x.png",)),
    Case("an output folder inside the input folder", lambda t: [str(_frames(t)), "-o", str(t / "in" / "frames" / "o")],
         2, "inside the input folder", ("in/frames/o",)),
    Case("an output under a file", lambda t: _run(t)[:1] + ["-o", str(_file(t, "f.txt", b"x") / "x.mp4")],
         2, "is not a directory"),
    # options
    Case("a window of 0 frames", lambda t: _run(t, "--window", "0"), 2, "runtime.window must be >= 1", ("out.mp4",)),
    Case("a negative batch size", lambda t: _run(t, "--batch-size", "-1"), 2, "segment.batch_size must be >= 0"),
    Case("an unknown segmenter", lambda t: _run(t, "--segmenter", "nope"), 2, "segment.backend must be one of yolox+"),
    Case("an unknown inpainter", lambda t: _run(t, "--inpainter", "nope"), 2, "argument --inpainter: invalid choice"),
    Case("0 passes", lambda t: _run(t, "--passes", "0"), 2, "inpaint.passes must be in [1, 8]"),
    Case("an unknown super-resolution model", lambda t: _run(t, "--sr", "nope"), 2, "superres.model must be"),
    Case("an upscale of 0", lambda t: _run(t, "--upscale", "0"), 2, "superres.upscale must be in [1, 16]"),
    Case("a negative fill size", lambda t: _run(t, "--inpaint-size", "-5"), 2, "inpaint.max_side must be"),
    Case("a missing config file", lambda t: _run(t, "--config", str(t / "missing.yaml")), 2, "does not exist"),
    Case("an unknown config section", lambda t: _run(t, "--config", str(_yaml(t, "key: 1\n"))), 2, "unknown key 'key'"),
    Case("an unknown config key", lambda t: _run(t, "--config", str(_yaml(t, "segment:\n  backend_x: 1\n"))),
         2, "unknown key segment.'backend_x'"),
    Case("a config that is not YAML", lambda t: _run(t, "--config", str(_yaml(t, "segment: [\n"))), 2, "not valid YAML"),
    # masks
    Case("missing masks", lambda t: _run(t, "--masks", str(t / "nomasks")), 2, "do not exist", ("out.mp4",)),
    Case("a mask folder without images", lambda t: _run(t, "--masks", str(_no_frames(t))), 2, "contains no images"),
    Case("fewer masks than frames", lambda t: _run(t, "--masks", str(_frames(t).parent / "frames")), 2,
         "give one mask per frame", ("out.mp4",)),
    Case("a mask video of another size", lambda t: [str(_frames(t)), "-o", str(t / "out"), "--masks", str(_sample(t))],
         2, "masks must match the frame size", ("out",)),
    Case("a mask that is not an image", lambda t: _run(t, "--masks", str(_file(t, "m.png", b"no"))), 2,
         "is not a readable image"),
    Case("a frames output that is an existing file",
         lambda t: [str(_frames(t)), "-o", str(_file(t, "noext", b"x"))], 2, "exists and is not a folder"),
    Case("an image output for three frames", lambda t: [str(_frames(t)), "-o", str(t / "one.png")], 2,
         "is an image but the input has 3 frames", ("one.png",)),
    Case("no input at all", lambda t: [], 2, ""),
    Case("an unknown flag", lambda t: _run(t, "--nope"), 2, "", ("out.mp4",)),
    Case("a mask of another size in a mask folder",
         lambda t: [str(_frames(t)), "-o", str(t / "out"), "--masks", str(_masks_one_wrong(t))], 2,
         "must match the frame size", ("out",)),
    Case("--version", lambda t: ["--version"], 0, ""),
    Case("--help", lambda t: ["--help"], 0, ""),
    Case("a mask video for a folder of frames",
         lambda t: [str(_frames(t)), "-o", str(t / "out"), "--masks", str(_mask_video(t))], 0, ""),
    # batch
    Case("a manifest with comments and blank lines",
         lambda t: ["batch", f"@{_manifest(t)}", "-o", str(t / "o"), "--segmenter", "u2net.small"], 0, ""),
    Case("a batch manifest that does not exist", lambda t: ["batch", f"@{t / 'missing.txt'}", "-o", str(t / "o")],
         2, "manifest", ("o",)),
    Case("a batch glob that matches nothing", lambda t: ["batch", str(t / "zz*.mp4"), "-o", str(t / "o")],
         2, "matches nothing", ("o",)),
    Case("two batch inputs with one name", lambda t: ["batch", *_same_names(t), "-o", str(t / "o")],
         2, "would both write"),
    # training
    Case("train without a config", lambda t: ["train"], 2, "needs --config"),
    Case("train with an unknown config", lambda t: ["train", "--config", "nope"], 2, "not found (bundled: cpu"),
    Case("train --set without =", lambda t: ["train", "--config", "cpu", "--set", "x"], 2, "--set expects KEY=VALUE"),
    Case("train a bundled recipe without --data", lambda t: ["train", "--config", "cpu"], 2, "--data DIR"),
    Case("export a missing checkpoint", lambda t: ["train", "--export", str(t / "missing.pt"), str(t / "d.pth")],
         2, "does not exist", ("d.pth",)),
]


def _mask_video(t: Path) -> Path:
    from conftest import ffmpeg

    ffmpeg("-f", "lavfi", "-i", "color=white:s=64x48:r=10", "-frames:v", "3", "-pix_fmt", "yuv420p",
           str(t / "m.mp4"))
    return t / "m.mp4"


def _manifest(t: Path) -> Path:
    _frames(t)
    (t / "in" / "jobs.txt").write_text("# today's shots\n\nframes   # the three frames\n")
    return t / "in" / "jobs.txt"


def _masks_one_wrong(t: Path) -> Path:
    from bgclean import io

    folder = t / "masks_in"
    folder.mkdir()
    for k in range(3):
        io.write_mask_png(folder / f"m{k}.png", np.ones((48, 64) if k != 1 else (40, 64), bool))
    return folder


def _concat(t: Path) -> Path:
    _sample(t)
    (t / "in" / "evil.mp4").write_text("ffconcat version 1.0\nfile clip.mp4\n")
    return t / "in" / "evil.mp4"


def _hls(t: Path) -> Path:
    _sample(t)
    (t / "in" / "list.mp4").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\nclip.mp4\n#EXT-X-ENDLIST\n")
    return t / "in" / "list.mp4"


def _notes(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("mine")
    return folder


def _odd_frame(t: Path) -> Path:
    frames = _frames(t, [f"f{k:02d}.png" for k in range(12)])
    _png(frames / "f10.png", 10, size=(40, 64))
    return frames


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_fault(case: Case, tmp_path, capsys):
    from bgclean.cli import main

    argv = case.setup(tmp_path)
    before = _hashes(tmp_path / "in") if (tmp_path / "in").exists() else {}
    handler = signal.getsignal(signal.SIGTERM)
    try:
        code = main(argv + ["--quiet"])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == case.code, err
    assert case.message in err, err
    assert "internal error" not in err
    assert signal.getsignal(signal.SIGTERM) is handler  # the caller's own handling comes back
    for rel in case.absent:
        assert not (tmp_path / rel).exists(), rel
    assert not [p for p in tmp_path.rglob("*") if ".partial" in p.name]  # nothing staged left behind
    after = _hashes(tmp_path / "in") if (tmp_path / "in").exists() else {}
    assert after == before  # inputs unchanged


def test_sigterm_discards_the_staged_output_with_a_message(tmp_path):
    """What kill, systemd, docker stop and schedulers send: exit 143, a message, nothing left."""
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "bgclean", str(SAMPLE), "-o", str(out), "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.mp4.*.partial.mp4")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.glob(".out.mp4.*.partial.mp4")), "the run never started writing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_killed_runs_staged_file_is_swept_by_the_next_run_of_that_output_only(tmp_path):
    """SIGKILL cannot be caught: the staged file stays until the next run of the same output, which
    removes it only when its owner no longer runs; another output's files and live runs' stay."""
    from bgclean import io

    out = tmp_path / "clip.mp4"
    host_pid = io.staging_prefix(out)[len(".clip.mp4."):-1]
    host = host_pid.rsplit("-", 1)[0]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    files = {
        "dead": tmp_path / f".clip.mp4.{host}-{dead.pid}.abc123.partial.mp4",
        "live": tmp_path / f".clip.mp4.{host}-{os.getpid()}.def456.partial.mp4",
        "other host": tmp_path / f".clip.mp4.elsewhere-{dead.pid}.ghi789.partial.mp4",
        "other output": tmp_path / f".clip.jpg.{host}-{dead.pid}.jkl012.partial.jpg",
        "same stem": tmp_path / f".clip.mkv.{host}-{dead.pid}.mno345.partial.mkv",
    }
    for p in files.values():
        p.write_bytes(b"x")
    assert io.sweep_stale_partials(out) == [files["dead"]]
    assert [k for k, p in files.items() if p.exists()] == ["live", "other host", "other output", "same stem"]


def test_an_atomic_write_sweeps_what_a_killed_writer_of_that_file_left(tmp_path):
    """A batch killed while it rewrote its summary leaves the summary's temp file: the next write of
    the summary removes it (and only it: a live writer's stays)."""
    from bgclean import io

    summary = tmp_path / "bgclean-summary.json"
    host = io.staging_prefix(summary)[len(".bgclean-summary.json."):-1].rsplit("-", 1)[0]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".bgclean-summary.json.{host}-{dead.pid}.abc123.partial.json"
    live = tmp_path / f".bgclean-summary.json.{host}-{os.getpid()}.def456.partial.json"
    for p in (stale, live):
        p.write_bytes(b"{")
    io.write_bytes_atomic(summary, b"{}")
    assert summary.read_bytes() == b"{}" and not stale.exists() and live.exists()


def test_batch_records_are_readable_by_others_like_the_outputs(tmp_path):
    from bgclean.pipeline.batch import STATE_DIR, SUMMARY, run_batch
    from bgclean.pipeline.config import load_config

    _png(tmp_path / "in" / "a.png")
    old = os.umask(0o022)
    try:
        run_batch([str(tmp_path / "in" / "a.png")], tmp_path / "out",
                  load_config(None, {"segment.backend": "u2net.small"}))
    finally:
        os.umask(old)
    for p in [tmp_path / "out" / SUMMARY, *(tmp_path / "out" / STATE_DIR).iterdir(), tmp_path / "out" / "a.png"]:
        assert p.stat().st_mode & 0o777 == 0o644, p
