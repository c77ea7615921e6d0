"""What a video, frame folder or image is: probing it (size, rate, rotation, audio, timestamps) with
ffmpeg, and the records frames travel in."""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from bgclean.errors import InputError

log = logging.getLogger(__name__)


VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}


IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


WRITABLE_VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


DEFAULT_FOLDER_FPS = Fraction(25)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def natural_key(name: str) -> list:
    """Sort key so that frame2.png comes before frame10.png."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class Frame:
    """One decoded frame. ``rgb`` is (H,W,3) uint8 or uint16 in RGB order."""

    index: int
    name: str
    rgb: np.ndarray
    alpha: np.ndarray | None = None  # (H,W), same dtype as rgb, passed through untouched
    gray: bool = False  # the source was single-channel: write it back as such


@dataclass
class MediaInfo:
    """What ``probe`` learned about an input. Sizes are after rotation."""

    kind: str  # "video" | "frames" | "image"
    path: Path
    width: int
    height: int
    fps: Fraction | None = None
    frame_count: int | None = None  # exact for frames/images, estimated for video
    has_audio: bool = False
    audio_codec: str | None = None
    rotation: int = 0
    duration: float | None = None
    files: list[Path] = field(default_factory=list)  # frame folders and images


_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: (Video|Audio): (.*)")


_SIZE_RE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")


_FPS_RE = re.compile(r"([\d.]+)(k?) fps")


_TBR_RE = re.compile(r"([\d.]+)(k?) tbr")


_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")


_ROTATION_RE = re.compile(r"rotation of (-?[\d.]+) degrees", re.IGNORECASE)


def exact_fps(text: str) -> Fraction:
    """ffmpeg prints rates rounded (29.97); snap NTSC-style rates back to N*1000/1001."""
    value = float(text)
    ntsc = value * 1.001
    if abs(value - round(value)) > 1e-3 and abs(ntsc - round(ntsc)) < 0.006:
        return Fraction(round(ntsc) * 1000, 1001)
    return Fraction(text).limit_denominator(1001)


def _parse_probe(text: str) -> dict:
    out: dict = {"video": None, "audio": None, "rotation": 0, "duration": None}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _STREAM_RE.search(line)
        if m and m.group(1) == "Video" and out["video"] is None and "attached pic" not in line:
            desc = m.group(2)
            size = _SIZE_RE.search(desc)
            rate = _FPS_RE.search(desc) or _TBR_RE.search(desc)
            fps = None
            if rate:
                fps = exact_fps(rate.group(1)) * (1000 if rate.group(2) else 1)
            out["video"] = {"codec": desc.split()[0], "size": size, "fps": fps}
            for follow in lines[i + 1 : i + 8]:
                if _STREAM_RE.search(follow):
                    break
                r = _ROTATION_RE.search(follow)
                if r:
                    out["rotation"] = int(round(float(r.group(1)))) % 360
        elif m and m.group(1) == "Audio" and out["audio"] is None:
            out["audio"] = m.group(2).split()[0].rstrip(",")
        d = _DURATION_RE.search(line)
        if d and out["duration"] is None:
            out["duration"] = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3))
    return out


def probe(path: str | Path) -> MediaInfo:
    """Inspect an input path: a video file, a folder of frames or a single image."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    if path.is_dir():
        return _probe_folder(path)
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS:
        from bgclean.io.reading import (
            read_image,  # reading needs these records: imported when used
        )

        first = read_image(path)
        h, w = first.rgb.shape[:2]
        return MediaInfo("image", path, w, h, frame_count=1, files=[path])
    return _probe_video(path)


def _probe_folder(path: Path) -> MediaInfo:
    files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise InputError(
            f"folder {path} contains no image frames ({', '.join(sorted(IMAGE_EXTS))}); "
            "give a folder of frames, a video file or an image"
        )
    from bgclean.io.reading import read_image

    first = read_image(files[0])
    h, w = first.rgb.shape[:2]
    return MediaInfo("frames", path, w, h, fps=DEFAULT_FOLDER_FPS, frame_count=len(files), files=files)


_INPUT_FORMAT_RE = re.compile(r"^Input #0, ([\w,]+), from", re.MULTILINE)


# demuxers that open other files or network addresses named inside the input (ffmpeg picks them by
# content, whatever the file's extension): a file is read for its own media only
_REFERENCING_FORMATS = {"concat", "hls", "dash", "sdp", "rtsp", "rtp", "image2", "imf", "ffmetadata",
                        "webm_dash_manifest", "hds", "smil", "mpegdash", "tee", "lavfi"}


def _probe_video(path: Path) -> MediaInfo:
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                          capture_output=True, text=True, errors="replace")
    fmt = _INPUT_FORMAT_RE.search(proc.stderr)
    if fmt and _REFERENCING_FORMATS & set(fmt.group(1).split(",")):
        raise InputError(f"{path} is a {fmt.group(1)} script or playlist, not a media file: it names other files "
                         "or addresses for ffmpeg to open, which bgclean does not follow; give the video itself")
    info = _parse_probe(proc.stderr)
    if info["video"] is None and "Input #0" in proc.stderr:
        raise InputError(f"{path} contains no video frames (no video stream); give a video with frames")
    if info["video"] is None:
        reason = _last_error_line(proc.stderr)
        raise InputError(
            f"{path} is not a readable video ({reason}); supported inputs are video files "
            f"({', '.join(sorted(VIDEO_EXTS))}), folders of frames and images"
        )
    video = info["video"]
    if video["size"] is None:
        raise InputError(f"{path}: could not read the video's frame size")
    w, h = int(video["size"].group(1)), int(video["size"].group(2))
    if info["rotation"] in (90, 270):
        w, h = h, w  # ffmpeg rotates while decoding
    fps = video["fps"] or Fraction(25)
    duration = info["duration"]
    count = int(round(duration * fps)) if duration else None
    return MediaInfo("video", path, w, h, fps=fps, frame_count=count, has_audio=info["audio"] is not None,
                     audio_codec=info["audio"], rotation=info["rotation"], duration=duration)


def _last_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines()
             if ln.strip() and not ln.startswith("At least one output file")]
    return lines[-1] if lines else "ffmpeg found no video stream"


_TB_RE = re.compile(r"^#tb 0: (\d+)/(\d+)", re.MULTILINE)


def frame_timestamps(path: Path) -> list[Fraction] | None:
    """Each video frame's presentation time in seconds from the first, in display order, read
    from the container's packets (no decoding); None where a packet has no timestamp."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
         "-c", "copy", "-f", "framecrc", "-"],
        capture_output=True, text=True, errors="replace",
    )
    tb = _TB_RE.search(proc.stdout)
    if proc.returncode != 0 or tb is None:
        return None
    unit = Fraction(int(tb.group(1)), int(tb.group(2)))
    pts = []
    for line in proc.stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 3 or not fields[2].lstrip("-").isdigit():
            return None
        pts.append(int(fields[2]))
    if not pts:
        return None
    pts.sort()
    return [(p - pts[0]) * unit for p in pts]


def variable_rate(times: list[Fraction], fps: Fraction) -> bool:
    """True where frame times stray from a constant ``fps`` by more than a millisecond: written
    at that constant rate, frames would move."""
    return any(abs(t - i / fps) > Fraction(1, 1000) for i, t in enumerate(times))


def count_video_frames(path: Path) -> int:
    """Number of video frames in a file, counted by demuxing (no decoding)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy",
         "-f", "null", "-"],
        capture_output=True, text=True, errors="replace",
    )
    found = re.findall(r"frame=\s*(\d+)", proc.stderr)
    if proc.returncode != 0 or not found:
        raise InputError(f"{path}: could not count frames ({_last_error_line(proc.stderr)})")
    return int(found[-1])
