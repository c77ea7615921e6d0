"""Reading frames (videos through an ffmpeg pipe, folders, images) and external person masks."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bgclean.errors import InputError
from bgclean.io.media import (
    IMAGE_EXTS,
    Frame,
    MediaInfo,
    _last_error_line,
    count_video_frames,
    ffmpeg_exe,
    log,
    natural_key,
    probe,
)


def read_image(path: str | Path) -> Frame:
    """Read one image file as a Frame (RGB, 8 or 16 bit; alpha and grayscale preserved on the side)."""
    import cv2

    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise InputError(f"{path} is not a readable image")
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path}: {img.dtype} images are not supported; use 8- or 16-bit images")
    if img.ndim == 2:
        return Frame(0, path.name, np.repeat(img[:, :, None], 3, axis=2), gray=True)
    if img.shape[2] == 4:
        return Frame(0, path.name, np.ascontiguousarray(img[:, :, 2::-1]), alpha=img[:, :, 3].copy())
    if img.shape[2] == 3:
        return Frame(0, path.name, np.ascontiguousarray(img[:, :, ::-1]))
    raise InputError(f"{path}: images with {img.shape[2]} channels are not supported")


def read_frames(info: MediaInfo) -> Iterator[Frame]:
    """Stream the input's frames in order. Raises InputError on undecodable or inconsistent input."""
    if info.kind == "video":
        yield from _read_video(info)
        return
    for i, p in enumerate(info.files):
        f = read_image(p)
        if f.rgb.shape[:2] != (info.height, info.width):
            raise InputError(
                f"frame {p.name} is {f.rgb.shape[1]}x{f.rgb.shape[0]} but the first frame is "
                f"{info.width}x{info.height}; all frames of a folder must have one size"
            )
        yield Frame(i, p.name, f.rgb, f.alpha, f.gray)


class _StderrDrain:
    """Collects a subprocess's stderr on a thread so the pipe never fills and blocks ffmpeg."""

    def __init__(self, stream) -> None:
        self.chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream) -> None:
        for chunk in iter(lambda: stream.read(4096), b""):
            self.chunks.append(chunk)

    def text(self) -> str:
        self._thread.join(timeout=5)
        return b"".join(self.chunks).decode(errors="replace")


def _read_video(info: MediaInfo) -> Iterator[Frame]:
    import ffmpeg

    args = (
        ffmpeg.input(str(info.path))
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough", map="0:v:0",
                enc_time_base="1/1000000")  # variable-rate sources: no two frames on one tick
        .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
        .compile(cmd=ffmpeg_exe())
    )
    frame_bytes = info.width * info.height * 3
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None  # piped above
    drain = _StderrDrain(proc.stderr)
    count = 0
    try:
        while True:
            buf = proc.stdout.read(frame_bytes)
            if not buf:
                break
            if len(buf) != frame_bytes:
                raise InputError(f"{info.path}: the last frame is incomplete; the file is truncated or corrupt")
            rgb = np.frombuffer(buf, np.uint8).reshape(info.height, info.width, 3)
            yield Frame(count, f"{count:05d}", rgb)
            count += 1
        rc = proc.wait()
        errors = drain.text().strip()
        if rc != 0:
            raise InputError(f"{info.path}: decoding failed ({_last_error_line(errors)})")
        if count == 0:
            raise InputError(f"{info.path} contains no video frames")
        expected = info.frame_count
        if errors and expected and count < 0.95 * expected:
            raise InputError(
                f"{info.path}: decoded only {count} of about {expected} frames "
                f"({_last_error_line(errors)}); the file is truncated or corrupt"
            )
        if errors:
            log.warning("%s: the decoder reported: %s", info.path, _last_error_line(errors))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


class MaskSource:
    """External masks matched to the frames by order, as (H,W) bool arrays (True = person).

    ``path`` is a folder of mask images (natural sort; their count must equal the frame count), a
    mask video (pixels above mid-grey are person, since video compression adds noise), or one mask
    image (used for every frame). In mask images any nonzero pixel is person.
    """

    def __init__(self, path: str | Path, info: MediaInfo):
        self.path = Path(path)
        self.info = info
        self.files: list[Path] = []
        self.video: MediaInfo | None = None
        if not self.path.exists():
            raise InputError(f"masks {self.path} do not exist")
        if self.path.is_dir():
            self.files = sorted((p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS),
                                key=lambda p: natural_key(p.name))
            if not self.files:
                raise InputError(f"mask folder {self.path} contains no images")
            n, expected = len(self.files), info.frame_count
            # a video's count is an estimate from its duration until decoded: allow it a little slack
            slack = 0 if info.kind != "video" else max(2, int(0.02 * (expected or 0)))
            if expected is not None and abs(n - expected) > slack:
                about = "about " if info.kind == "video" else ""
                raise InputError(
                    f"mask folder {self.path} has {n} masks but the input has {about}{expected} frames; "
                    "give one mask per frame"
                )
            self._check(read_image(self.files[0]).rgb.max(axis=2) > 0, self.files[0].name)
        elif self.path.suffix.lower() in IMAGE_EXTS:
            self.files = [self.path]
            self._single = self._check(read_image(self.path).rgb.max(axis=2) > 0, self.path.name)
        else:
            self.video = probe(self.path)
            if (self.video.width, self.video.height) != (info.width, info.height):
                raise InputError(
                    f"mask video {self.path} is {self.video.width}x{self.video.height} but the frames are "
                    f"{info.width}x{info.height}; masks must match the frame size"
                )

    @property
    def repeats(self) -> bool:
        """One mask image for every frame."""
        return self.video is None and not self.path.is_dir()

    def _check(self, mask: np.ndarray, name: str) -> np.ndarray:
        if mask.shape != (self.info.height, self.info.width):
            raise InputError(
                f"mask {name} is {mask.shape[1]}x{mask.shape[0]} but the frames are "
                f"{self.info.width}x{self.info.height}; masks must match the frame size"
            )
        return mask

    def __iter__(self) -> Iterator[np.ndarray]:
        self._used = 0
        if self.repeats:
            while True:
                self._used += 1
                yield self._single
        if self.video is not None:
            for f in _read_video(self.video):
                self._used += 1
                yield self._check(f.rgb.max(axis=2) > 127, f"{self.path.name} frame {f.index}")
        else:
            for p in self.files:
                self._used += 1
                yield self._check(read_image(p).rgb.max(axis=2) > 0, p.name)
        raise InputError(f"masks {self.path} has {self._used} masks but the input has more frames")

    def check_exhausted(self, frames: int) -> None:
        """After the last frame: more masks than frames is a mismatch too."""
        if self.repeats:
            return
        total = len(self.files) if self.video is None else count_video_frames(self.path)
        if total != frames:
            raise InputError(f"masks {self.path} has {total} masks but the input has {frames} frames")
