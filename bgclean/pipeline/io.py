"""Reading and writing videos, frame folders and images; reading external masks.

This is the only module that sees BGR channel order, uint8/uint16 arrays and ffmpeg. Frames leave it
as ``Frame`` records holding RGB arrays (H,W,3) of uint8 or uint16; alpha and grayscale are carried
on the side so the writer can restore them. Video goes through ffmpeg pipes (the binary that the
imageio-ffmpeg wheel ships), with commands built by ffmpeg-python as argument lists.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
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


# ---------------------------------------------------------------- probing

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


# ---------------------------------------------------------------- reading

def read_image(path: Path) -> Frame:
    """Read one image file as a Frame (RGB, 8 or 16 bit; alpha and grayscale preserved on the side)."""
    import cv2

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


# ---------------------------------------------------------------- output paths

def output_kind(output: Path) -> str:
    """'video', 'image' or 'frames', from the output path as the CLI documents."""
    ext = output.suffix.lower()
    if output.is_dir():
        return "frames"
    if ext in VIDEO_EXTS:
        if ext not in WRITABLE_VIDEO_EXTS:
            raise InputError(f"cannot write {ext} video; use one of {', '.join(sorted(WRITABLE_VIDEO_EXTS))}")
        return "video"
    if ext in IMAGE_EXTS:
        return "image"
    if ext == "":
        return "frames"
    raise InputError(
        f"output {output}: unknown extension {ext!r}; use a video ({', '.join(sorted(WRITABLE_VIDEO_EXTS))}), "
        f"an image ({', '.join(sorted(IMAGE_EXTS))}) or a folder"
    )


def default_output(info: MediaInfo) -> Path:
    """``clip.mp4`` → ``clip.clean.mp4``; ``photo.jpg`` → ``photo.clean.jpg``; ``frames/`` → ``frames.clean/``."""
    p = info.path
    if info.kind == "frames":
        return p.with_name(p.name.rstrip("/") + ".clean")
    if info.kind == "image":
        return p.with_name(f"{p.stem}.clean{p.suffix}")
    ext = p.suffix.lower() if p.suffix.lower() in WRITABLE_VIDEO_EXTS - {".avi"} else ".mp4"
    return p.with_name(f"{p.stem}.clean{ext}")


def check_output(output: Path, info: MediaInfo, kind: str, what: str = "output") -> None:
    """Refuse outputs that would overwrite the input or cannot be written, before any work starts.
    ``what`` names the output in messages (``--save-masks`` for the masks folder)."""
    out_r, in_r = output.resolve(), info.path.resolve()
    if out_r == in_r or (output.exists() and in_r.exists() and os.path.samefile(out_r, in_r)):
        raise InputError(f"output {output} is the input; choose another output path (-o)")
    if info.kind == "frames" and kind == "frames" and in_r in out_r.parents:
        raise InputError(f"output folder {output} is inside the input folder; choose another (-o)")
    if kind == "frames" and output.exists() and not output.is_dir():
        raise InputError(f"output {output} exists and is not a folder")
    if kind == "image" and info.kind == "video" and (info.frame_count or 0) > 1:
        raise InputError(
            f"output {output} is an image but the input is a video of about {info.frame_count} frames; "
            "write a video (e.g. out.mp4) or a folder of frames"
        )
    if kind == "image" and info.kind == "frames" and info.frame_count != 1:
        raise InputError(
            f"output {output} is an image but the input has {info.frame_count} frames; "
            "write a video or a folder of frames"
        )
    if kind == "frames":
        names = frame_output_names(info)  # refuses two frames that would take one name
        if output.is_dir():
            _check_leftovers(output, set(names).__contains__ if names is not None else _VIDEO_FRAME_NAME.match)
    check_writable(output.parent, f"{what} {output}")


_VIDEO_FRAME_NAME = re.compile(r"^\d{5,}\.png$")  # a video's frames written as a folder


def frame_output_names(info: MediaInfo) -> list[str] | None:
    """The PNG names a folder output takes: each input frame's (or the image's) stem + .png, or
    None for a video (frames numbered as they come). Two frames whose names differ only in
    extension (a.png, a.jpg) would take one name: refused, so that no frame is lost."""
    if info.kind == "video":
        return None
    files = info.files if info.kind == "frames" else [info.path]
    names = [Path(f.name).stem + ".png" for f in files]
    seen: dict[str, str] = {}
    for f, n in zip(files, names):
        if n in seen:
            raise InputError(f"frames {seen[n]} and {f.name} in {info.path} would both be written as {n}; "
                             "rename one of them")
        seen[n] = f.name
    return names


def _check_leftovers(output: Path, ours) -> None:
    """An existing output folder may only hold files this run writes again (``ours(name)``): an
    older run's extra frame (f99.png of a longer input) would stay beside the new ones. Hidden
    files (staging folders among them) are not looked at."""
    foreign = sorted(p.name for p in output.iterdir()
                     if not p.name.startswith(".") and (p.is_dir() or not ours(p.name)))
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise InputError(f"output folder {output} already holds {', '.join(foreign[:3])}{more}, which this run "
                         "does not write; choose a new or empty folder (-o), or remove them")


def check_writable(folder: Path, what: str) -> None:
    """Refuse, before any work, a destination whose nearest existing folder cannot take a new file
    (missing, not a folder, no permission, a read-only or virtual file system such as /proc)."""
    probe_dir = folder
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise InputError(f"cannot write {what}: {probe_dir} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".bgclean-probe.", dir=probe_dir)
    except OSError as exc:
        raise InputError(f"cannot write {what}: {probe_dir} does not take new files ({exc.strerror})") from None
    os.close(fd)
    os.unlink(tmp)
    if probe_dir != folder:
        try:  # the folders still to make: /proc takes no new folder although it tells root it is writable
            d = Path(tempfile.mkdtemp(prefix=".bgclean-probe.", dir=probe_dir))
            d.rmdir()
        except OSError as exc:
            raise InputError(f"cannot write {what}: cannot make folders in {probe_dir} ({exc.strerror})") from None


# ---------------------------------------------------------------- writing

class _Writer:
    """Common commit/abort protocol: nothing appears at the output path until ``commit``."""

    frames_written = 0

    def write(self, frame: Frame) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def commit(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def _encode_image(frame: Frame, ext: str) -> bytes:
    import cv2

    rgb, alpha = frame.rgb, frame.alpha
    lossy8 = ext in (".jpg", ".jpeg", ".bmp", ".webp")
    if lossy8 and rgb.dtype == np.uint16:
        log.warning("%s cannot hold 16-bit samples; writing 8-bit", ext)
        rgb = (rgb.astype(np.float32) / 257.0).round().astype(np.uint8)
        alpha = None if alpha is None else (alpha.astype(np.float32) / 257.0).round().astype(np.uint8)
    if frame.gray:
        img = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    else:
        img = rgb[:, :, ::-1]
        if alpha is not None and ext not in (".jpg", ".jpeg", ".bmp"):
            img = np.dstack([img, alpha])
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(img))
    if not ok:
        raise InputError(f"could not encode a {ext} image")
    return buf.tobytes()


_PARTIAL = ".partial"


def _owner() -> str:
    """This process, as staged files name it: host (dots and dashes replaced) and pid."""
    import socket

    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def staging_prefix(output: Path) -> str:
    """Temp files and folders for ``output`` are named ``.<output name>.<host>-<pid>.<random>.partial*``:
    the exact output they belong to and the process that owns them."""
    return f".{output.name}.{_owner()}."


_staged: set[Path] = set()  # staged files and folders of this process, neither committed nor discarded


def _stage(path: Path) -> Path:
    _staged.add(path)
    return path


def _discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
    _staged.discard(path)


def discard_staged() -> None:
    """Remove whatever this process still has staged. For the command line after Ctrl-C or SIGTERM:
    the signal can land between a staged file's creation and the code that would discard it."""
    for path in list(_staged):
        _discard(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_partials(output: Path) -> list[Path]:
    """Remove what killed runs left staged for exactly ``output``: temp files and folders of
    processes on this host that no longer run. A live run's files, another host's (a shared
    folder) and other outputs' are never touched. Returns what was removed."""
    import glob

    host, _ = _owner().rsplit("-", 1)
    pattern = re.compile(rf"^\.{re.escape(output.name)}\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[^.]*\.partial")
    removed = []
    for p in output.parent.glob(f".{glob.escape(output.name)}.*{_PARTIAL}*"):
        m = pattern.match(p.name)
        if m is None or m["host"] != host or _alive(int(m["pid"])):
            continue
        _discard(p)
        removed.append(p)
    return removed


def _umask_mode(base: int) -> int:
    """``base`` permissions less the process umask (temp files are created 0600/0700)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``data`` into ``path`` through a staged file renamed into place, with the permissions a plain
    file would get (the user's umask), so other users of a shared folder read it as they read the
    outputs."""
    fd, tmp = tempfile.mkstemp(prefix=staging_prefix(path), suffix=_PARTIAL + path.suffix, dir=path.parent)
    _stage(Path(tmp))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _umask_mode(0o666))
        os.replace(tmp, path)
        _staged.discard(Path(tmp))
    except BaseException:
        _discard(Path(tmp))
        raise


class ImageWriter(_Writer):
    def __init__(self, output: Path):
        self.output = output
        self._frame: Frame | None = None

    def write(self, frame: Frame) -> None:
        if self._frame is not None:
            raise InputError(f"output {self.output} is an image but the input has more than one frame")
        self._frame = frame
        self.frames_written = 1

    def commit(self) -> None:
        if self._frame is None:
            raise InputError("no frame to write")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.output, _encode_image(self._frame, self.output.suffix.lower()))

    def abort(self) -> None:
        self._frame = None


class FolderWriter(_Writer):
    """PNG frames into a staging folder beside the output, moved into place on commit."""

    def __init__(self, output: Path, names: list[str] | None = None):
        self.output = output
        self.names = names
        output.parent.mkdir(parents=True, exist_ok=True)
        self.staging = _stage(Path(tempfile.mkdtemp(prefix=staging_prefix(output), suffix=_PARTIAL,
                                                    dir=output.parent)))
        os.chmod(self.staging, _umask_mode(0o777))

    def name_for(self, frame: Frame) -> str:
        if self.names is not None and frame.index < len(self.names):
            return Path(self.names[frame.index]).stem + ".png"
        return f"{frame.index:05d}.png"

    def write(self, frame: Frame) -> None:
        self.write_png(self.name_for(frame), _encode_image(frame, ".png"))
        self.frames_written += 1

    def write_png(self, name: str, data: bytes) -> None:
        (self.staging / name).write_bytes(data)

    def commit(self) -> None:
        if not self.output.exists():
            os.replace(self.staging, self.output)
            _staged.discard(self.staging)
            return
        written = {p.name for p in self.staging.iterdir()}
        _check_leftovers(self.output, written.__contains__)  # a video's frame count is known only now
        for name in sorted(written):
            os.replace(self.staging / name, self.output / name)
        _discard(self.staging)

    def abort(self) -> None:
        _discard(self.staging)


_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}
_WEBM_AUDIO = {"opus", "vorbis"}
_AVI_AUDIO = {"mp3", "ac3", "pcm_s16le"}


def _audio_codec_for(ext: str, source_codec: str | None) -> str:
    """'copy' when the container accepts the source's audio as it is, else an encoder."""
    if ext == ".mkv":
        return "copy"
    if ext == ".webm":
        return "copy" if source_codec in _WEBM_AUDIO else "libopus"
    if ext == ".avi":
        return "copy" if source_codec in _AVI_AUDIO else "libmp3lame"
    return "copy" if source_codec in _MP4_AUDIO else "aac"


class VideoWriter(_Writer):
    """H.264 yuv420p (VP9 for .webm) through an ffmpeg pipe, at the source's exact frame rate, with
    the source's audio copied when there is one. Odd sizes are padded by one replicated row/column
    (yuv420p needs even sizes)."""

    def __init__(self, output: Path, width: int, height: int, fps: Fraction,
                 audio_from: Path | None = None, audio_codec: str | None = None,
                 crf: int = 18, preset: str = "medium", timestamps: list[Fraction] | None = None):
        import ffmpeg

        self.output = output
        self.width, self.height = width, height
        self.pad_w, self.pad_h = width % 2, height % 2
        if self.pad_w or self.pad_h:
            log.warning("frame size %dx%d is odd; H.264 yuv420p needs even sizes, padding to %dx%d",
                        width, height, width + self.pad_w, height + self.pad_h)
        ext = output.suffix.lower()
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=staging_prefix(output), suffix=_PARTIAL + ext, dir=output.parent)
        os.close(fd)
        self.tmp = _stage(Path(tmp))
        os.chmod(tmp, _umask_mode(0o666))
        size = f"{width + self.pad_w}x{height + self.pad_h}"
        video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=size,
                             framerate=f"{fps.numerator}/{fps.denominator}")
        streams = [video.video]
        opts: dict = {"pix_fmt": "yuv420p", "r": f"{fps.numerator}/{fps.denominator}"}
        self.cmds: Path | None = None
        if timestamps is not None:
            # variable frame rate: frame i leaves the filter graph at the source's own time, set by
            # a command sendcmd gives setpts as the frame (at nominal time i / fps) passes
            fd, cmds = tempfile.mkstemp(prefix=staging_prefix(output), suffix=_PARTIAL + ".cmd", dir=output.parent)
            self.cmds = _stage(Path(cmds))
            with os.fdopen(fd, "w") as f:
                for i, t in enumerate(timestamps):
                    f.write(f"{float((i - Fraction(1, 4)) / fps) if i else 0:.6f} setpts expr {round(t * 1_000_000)};\n")
            streams[0] = (video.video.filter("sendcmd", f=str(self.cmds)).filter("settb", "1/1000000")
                          .filter("setpts", "PTS"))
            del opts["r"]
            opts.update(fps_mode="passthrough", enc_time_base="1/1000000")
        if ext == ".webm":
            opts.update(vcodec="libvpx-vp9", crf=crf, **{"b:v": 0})
        else:
            opts.update(vcodec="libx264", crf=crf, preset=preset)
        if ext in (".mp4", ".mov", ".m4v"):
            opts["movflags"] = "+faststart"
        if audio_from is not None:
            streams.append(ffmpeg.input(str(audio_from)).audio)
            opts["acodec"] = _audio_codec_for(ext, audio_codec)
        muxer = {".mkv": "matroska", ".webm": "webm", ".avi": "avi", ".mov": "mov"}.get(ext, "mp4")
        args = (
            ffmpeg.output(*streams, str(self.tmp), format=muxer, **opts)
            .global_args("-nostdin", "-hide_banner", "-loglevel", "error")
            .compile(cmd=ffmpeg_exe(), overwrite_output=True)
        )
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self._drain = _StderrDrain(self.proc.stderr)

    def write(self, frame: Frame) -> None:
        rgb = frame.rgb
        if rgb.dtype == np.uint16:
            rgb = (rgb.astype(np.float32) / 257.0).round().astype(np.uint8)
        if self.pad_w or self.pad_h:
            rgb = np.pad(rgb, ((0, self.pad_h), (0, self.pad_w), (0, 0)), mode="edge")
        try:
            self.proc.stdin.write(np.ascontiguousarray(rgb).tobytes())
        except BrokenPipeError:
            self.proc.wait()
            raise InputError(f"the encoder stopped: {_last_error_line(self._drain.text())}") from None
        self.frames_written += 1

    def commit(self) -> None:
        self.proc.stdin.close()
        rc = self.proc.wait()
        if rc != 0:
            msg = _last_error_line(self._drain.text())
            self.abort()
            raise InputError(f"encoding {self.output} failed: {msg}")
        counted = count_video_frames(self.tmp)
        if counted != self.frames_written:
            self.abort()
            raise InputError(
                f"encoder wrote {counted} frames but {self.frames_written} were sent; output discarded"
            )
        os.replace(self.tmp, self.output)
        _staged.discard(self.tmp)
        if self.cmds is not None:
            _discard(self.cmds)

    def abort(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        _discard(self.tmp)
        if self.cmds is not None:
            _discard(self.cmds)


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


def open_writer(output: Path, kind: str, info: MediaInfo, crf: int = 18, preset: str = "medium",
                size: tuple[int, int] | None = None) -> _Writer:
    """A writer for ``output`` of ``kind`` ('video' | 'frames' | 'image') matching the input;
    ``size`` = (width, height) of the frames that will be written (default: the input's)."""
    width, height = size or (info.width, info.height)
    if kind == "image":
        return ImageWriter(output)
    if kind == "frames":
        return FolderWriter(output, frame_output_names(info))
    fps = info.fps or DEFAULT_FOLDER_FPS
    timestamps = frame_timestamps(info.path) if info.kind == "video" else None
    if timestamps is not None and info.frame_count and abs(len(timestamps) - info.frame_count) > 0.1 * info.frame_count:
        timestamps = None  # packets are not frames here (fields coded apart): keep the constant rate
    if timestamps is not None and not variable_rate(timestamps, fps):
        timestamps = None  # a constant rate: the plain encoder settings give the same times
    if timestamps is not None and output.suffix.lower() == ".avi":
        log.warning("%s has a variable frame rate, which AVI cannot hold: its frames are written at a constant "
                    "%.3f fps; write .mp4, .mkv, .mov or .webm to keep their times", info.path, float(fps))
        timestamps = None
    return VideoWriter(
        output, width, height, fps,
        audio_from=info.path if info.has_audio else None, audio_codec=info.audio_codec,
        crf=crf, preset=preset, timestamps=timestamps,
    )


def mask_png(mask: np.ndarray) -> bytes:
    """A (H,W) bool mask as a 0/255 8-bit PNG."""
    import cv2

    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise InputError("could not encode a mask as PNG")
    return buf.tobytes()


def write_mask_png(path: Path, mask: np.ndarray) -> None:
    """Write a (H,W) bool mask as a 0/255 8-bit PNG, atomically."""
    write_bytes_atomic(path, mask_png(mask))
