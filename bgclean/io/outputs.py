"""Where output goes: its kind from its path, its default beside the input, and the checks made before
anything is written."""

from __future__ import annotations

import os
import re
from pathlib import Path

from bgclean.errors import InputError
from bgclean.io.media import IMAGE_EXTS, VIDEO_EXTS, WRITABLE_VIDEO_EXTS, MediaInfo
from bgclean.io.staging import check_writable


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
