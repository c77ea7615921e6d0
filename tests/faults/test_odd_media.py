"""Odd but valid media, through the command line with a given mask (no segmentation, so each case
takes a second or two): the run succeeds, every frame comes out, the audio keeps its duration, the
frame rate and size are kept, nothing staged is left and the input is unchanged."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import ffmpeg


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _mask(path: Path, h: int, w: int) -> Path:
    from bgclean import io

    m = np.zeros((h, w), bool)
    m[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = True
    io.write_mask_png(path, m)
    return path


def _video(t: Path, name: str, *extra: str, size="64x48", rate="10", frames=10, audio=False) -> Path:
    src = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        src += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    out = t / "in" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg(*src, "-frames:v", str(frames), *(["-shortest"] if audio else []), *extra, str(out))
    return out


def _images(t: Path, names, shape=(48, 64, 3), dtype=np.uint8) -> Path:
    import cv2

    folder = t / "in" / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    top = 65535 if dtype == np.uint16 else 255
    for k, n in enumerate(names):
        img = (np.random.default_rng(k).random(shape) * top).astype(dtype)
        cv2.imwrite(str(folder / n), img)
    return folder


@dataclass
class Media:
    name: str
    make: Callable[[Path], Path]  # the input under tmp/in
    output: str  # the output's name under tmp
    frames: int
    size: tuple[int, int] = (48, 64)  # (h, w) of the frames as decoded
    fps: Fraction | None = None
    audio: bool = False


MEDIA = [
    Media("H.264 mp4", lambda t: _video(t, "a.mp4", "-pix_fmt", "yuv420p"), "out.mp4", 10, fps=Fraction(10)),
    Media("mp4 with AAC audio", lambda t: _video(t, "a.mp4", "-pix_fmt", "yuv420p", "-c:a", "aac", audio=True),
          "out.mp4", 10, fps=Fraction(10), audio=True),
    Media("mov to mkv", lambda t: _video(t, "a.mov", "-pix_fmt", "yuv420p"), "out.mkv", 10, fps=Fraction(10)),
    Media("mkv with Opus audio to webm",
          lambda t: _video(t, "a.mkv", "-pix_fmt", "yuv420p", "-c:a", "libopus", audio=True),
          "out.webm", 10, fps=Fraction(10), audio=True),
    Media("webm VP9 to mp4", lambda t: _video(t, "a.webm", "-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p"), "out.mp4",
          10, fps=Fraction(10)),
    Media("MPEG-4 part 2 avi to avi", lambda t: _video(t, "a.avi", "-c:v", "mpeg4"), "out.avi", 10, fps=Fraction(10)),
    Media("an odd frame size to PNG frames (exact size)",
          lambda t: _video(t, "odd.mp4", "-vf", "scale=65:49", "-pix_fmt", "yuv444p"), "outdir", 10, size=(49, 65)),
    Media("an NTSC rate", lambda t: _video(t, "ntsc.mp4", "-pix_fmt", "yuv420p", rate="30000/1001"), "out.mp4", 10,
          fps=Fraction(30000, 1001)),
    Media("60 fps", lambda t: _video(t, "fast.mp4", "-pix_fmt", "yuv420p", rate="60", frames=12), "out.mp4", 12,
          fps=Fraction(60)),
    Media("one frame of video", lambda t: _video(t, "one.mp4", "-pix_fmt", "yuv420p", frames=1), "out.mp4", 1,
          fps=Fraction(10)),
    Media("a video to a folder of frames", lambda t: _video(t, "a.mp4", "-pix_fmt", "yuv420p"), "outdir", 10),
    Media("a file name with spaces and accents", lambda t: _video(t, "été à la plage.mp4", "-pix_fmt", "yuv420p"),
          "sortie propre.mp4", 10, fps=Fraction(10)),
    Media("a file name starting with a dash", lambda t: _video(t, "-i.mp4", "-pix_fmt", "yuv420p"), "-out.mp4", 10,
          fps=Fraction(10)),
    Media("PNG frames, natural order", lambda t: _images(t, ["f1.png", "f2.png", "f10.png"]), "outdir", 3),
    Media("grey PNG frames", lambda t: _images(t, ["a.png", "b.png"], shape=(48, 64)), "outdir", 2),
    Media("RGBA PNG frames", lambda t: _images(t, ["a.png", "b.png"], shape=(48, 64, 4)), "outdir", 2),
    Media("16-bit PNG frames", lambda t: _images(t, ["a.png", "b.png"], dtype=np.uint16), "outdir", 2),
    Media("JPEG frames to a video", lambda t: _images(t, ["a.jpg", "b.jpg", "c.jpg"]), "out.mp4", 3),
    Media("16-bit TIFF frames", lambda t: _images(t, ["a.tif", "b.tif"], dtype=np.uint16), "outdir", 2),
    Media("BMP and WebP frames", lambda t: _images(t, ["a.bmp", "b.webp"]), "outdir", 2),
    Media("rotation metadata", lambda t: _rotated(t), "out.mp4", 10, size=(64, 48), fps=Fraction(10)),
    Media("VP8 webm to webm", lambda t: _video(t, "a.webm", "-c:v", "libvpx", "-pix_fmt", "yuv420p"), "out.webm", 10,
          fps=Fraction(10)),
    Media("mkv to mov", lambda t: _video(t, "a.mkv", "-pix_fmt", "yuv420p"), "out.mov", 10, fps=Fraction(10)),
    Media("an animated GIF to mp4", lambda t: _video(t, "a.gif"), "out.mp4", 10, fps=Fraction(10)),
    Media("upper-case extensions", lambda t: _images(t, ["A.PNG", "B.JPG"]), "outdir", 2),
    Media("hidden and other files beside the frames are not frames",
          lambda t: _with_clutter(_images(t, ["a.png", "b.png"])), "outdir", 2),
    Media("one image to a JPEG", lambda t: _images(t, ["a.png"]) / "a.png", "out.jpg", 1),
    Media("one image to a TIFF", lambda t: _images(t, ["a.png"]) / "a.png", "out.tif", 1),
    Media("one image to a folder", lambda t: _images(t, ["a.png"]) / "a.png", "outdir", 1),
]


def _rotated(t: Path) -> Path:
    plain = _video(t, "plain.mp4", "-pix_fmt", "yuv420p")
    ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(t / "in" / "rot.mp4"))
    return t / "in" / "rot.mp4"


def _with_clutter(folder: Path) -> Path:
    (folder / ".DS_Store").write_bytes(b"\0\1")
    (folder / "notes.txt").write_text("shot 3")
    return folder


def _count(path: Path) -> int:
    from bgclean import io

    if path.is_dir():
        return len([p for p in path.iterdir() if not p.name.startswith(".")])
    info = io.probe(path)
    return 1 if info.kind == "image" else io.count_video_frames(path)


@pytest.mark.parametrize("media", MEDIA, ids=[m.name for m in MEDIA])
def test_odd_media_come_out_whole(media: Media, tmp_path, capsys):
    from bgclean import io
    from bgclean.cli import main

    src = media.make(tmp_path)
    mask = _mask(tmp_path / "mask.png", *media.size)
    before = _digest(tmp_path / "in")
    out = tmp_path / media.output
    code = main([str(src), "-o", str(out), "--masks", str(mask), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert _count(out) == media.frames
    if out.is_dir():
        import cv2

        assert all(cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape[:2] == media.size for p in out.iterdir())
    if media.fps is not None:
        got = io.probe(out)
        assert got.fps == media.fps and (got.height, got.width) == media.size
    if media.audio:
        a, b = io.probe(src), io.probe(out)
        assert b.has_audio and abs(a.duration - b.duration) < 0.1
    assert not [p for p in tmp_path.rglob("*") if ".partial" in p.name]
    assert _digest(tmp_path / "in") == before
