"""Writing images, frame folders and videos (ffmpeg, with the source's rate, timestamps and audio),
each staged until committed."""

from __future__ import annotations

import os
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from bgclean.errors import InputError
from bgclean.io.media import (
    DEFAULT_FOLDER_FPS,
    Frame,
    MediaInfo,
    _last_error_line,
    count_video_frames,
    ffmpeg_exe,
    frame_timestamps,
    log,
    variable_rate,
)
from bgclean.io.outputs import _check_leftovers, frame_output_names
from bgclean.io.reading import _StderrDrain
from bgclean.io.staging import (
    _PARTIAL,
    _umask_mode,
    committed,
    discard,
    own_process,
    release_process,
    stage,
    staging_prefix,
    write_bytes_atomic,
)


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


def encode_image(frame: Frame, ext: str) -> bytes:
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
        write_bytes_atomic(self.output, encode_image(self._frame, self.output.suffix.lower()))

    def abort(self) -> None:
        self._frame = None


class FolderWriter(_Writer):
    """PNG frames into a staging folder beside the output, moved into place on commit."""

    def __init__(self, output: Path, names: list[str] | None = None):
        self.output = output
        self.names = names
        output.parent.mkdir(parents=True, exist_ok=True)
        self.staging = stage(Path(tempfile.mkdtemp(prefix=staging_prefix(output), suffix=_PARTIAL,
                                                    dir=output.parent)))
        os.chmod(self.staging, _umask_mode(0o777))

    def name_for(self, frame: Frame) -> str:
        if self.names is not None and frame.index < len(self.names):
            return Path(self.names[frame.index]).stem + ".png"
        return f"{frame.index:05d}.png"

    def write(self, frame: Frame) -> None:
        self.write_png(self.name_for(frame), encode_image(frame, ".png"))
        self.frames_written += 1

    def write_png(self, name: str, data: bytes) -> None:
        (self.staging / name).write_bytes(data)

    def commit(self) -> None:
        if not self.output.exists():
            os.replace(self.staging, self.output)
            committed(self.staging)
            return
        written = {p.name for p in self.staging.iterdir()}
        _check_leftovers(self.output, written.__contains__)  # a video's frame count is known only now
        for name in sorted(written):
            os.replace(self.staging / name, self.output / name)
        discard(self.staging)

    def abort(self) -> None:
        discard(self.staging)


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
        self.tmp = stage(Path(tmp))
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
            self.cmds = stage(Path(cmds))
            with os.fdopen(fd, "w") as f:
                for i, t in enumerate(timestamps):
                    at = float((i - Fraction(1, 4)) / fps) if i else 0
                    f.write(f"{at:.6f} setpts expr {round(t * 1_000_000)};\n")
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
        self.proc = own_process(subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE))
        assert self.proc.stdin is not None  # piped above
        self._stdin = self.proc.stdin
        self._drain = _StderrDrain(self.proc.stderr)

    def write(self, frame: Frame) -> None:
        rgb = frame.rgb
        if rgb.dtype == np.uint16:
            rgb = (rgb.astype(np.float32) / 257.0).round().astype(np.uint8)
        if self.pad_w or self.pad_h:
            rgb = np.pad(rgb, ((0, self.pad_h), (0, self.pad_w), (0, 0)), mode="edge")
        try:
            self._stdin.write(np.ascontiguousarray(rgb).tobytes())
        except BrokenPipeError:
            self.proc.wait()
            raise InputError(f"the encoder stopped: {_last_error_line(self._drain.text())}") from None
        self.frames_written += 1

    def commit(self) -> None:
        self._stdin.close()
        rc = self.proc.wait()
        release_process(self.proc)
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
        committed(self.tmp)
        if self.cmds is not None:
            discard(self.cmds)

    def abort(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        release_process(self.proc)
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        discard(self.tmp)
        if self.cmds is not None:
            discard(self.cmds)


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
