"""A variable-frame-rate video keeps its own timing: every output frame at its input frame's time
(within 1 ms) and the audio's duration, instead of being re-timed to an average rate."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from conftest import ffmpeg


def _vfr_clip(folder: Path) -> Path:
    """0.6 s at 10 fps, then 0.8 s at 25 fps, joined without re-encoding, with 1.4 s of sound."""
    for name, rate, seconds in (("slow", 10, 0.6), ("fast", 25, 0.8)):
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=64x48:rate={rate}", "-t", str(seconds), "-pix_fmt", "yuv420p",
               "-c:v", "libx264", str(folder / f"{name}.mp4"))
    (folder / "list.txt").write_text("file slow.mp4\nfile fast.mp4\n")
    ffmpeg("-f", "concat", "-i", str(folder / "list.txt"), "-c", "copy", str(folder / "joined.mp4"))
    out = folder / "vfr.mp4"
    ffmpeg("-i", str(folder / "joined.mp4"), "-f", "lavfi", "-i", "sine=d=1.4:sample_rate=44100", "-map", "0:v",
           "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(out))
    return out


def test_variable_frame_rate_keeps_every_frames_time_and_the_audio(tmp_path, capsys):
    from bgclean import io
    from bgclean.cli import main

    src = _vfr_clip(tmp_path)
    before = io.frame_timestamps(src)
    assert io.variable_rate(before, io.probe(src).fps)  # the clip is what the test needs
    mask = np.zeros((48, 64), bool)
    mask[12:36, 20:44] = True
    io.write_mask_png(tmp_path / "m.png", mask)
    for ext in (".mp4", ".mkv", ".mov", ".webm"):
        out = tmp_path / f"out{ext}"
        assert main([str(src), "-o", str(out), "--masks", str(tmp_path / "m.png"), "--quiet"]) == 0, \
            capsys.readouterr().err
        after = io.frame_timestamps(out)
        assert len(after) == len(before)
        assert max(abs(a - b) for a, b in zip(after, before)) <= Fraction(1, 1000)
        assert abs(io.probe(out).duration - io.probe(src).duration) < 0.05
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_a_constant_rate_is_not_taken_for_a_variable_one(clip_with_audio):
    from bgclean import io

    info = io.probe(clip_with_audio)
    times = io.frame_timestamps(clip_with_audio)
    assert len(times) == io.count_video_frames(clip_with_audio) and not io.variable_rate(times, info.fps)
