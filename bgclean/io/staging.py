"""Atomic outputs: every output is written under a staging name owned by this process and renamed into
place when complete; a signal or an error discards it, and a later run sweeps what a killed one
left."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from bgclean.errors import InputError


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


_processes: list[subprocess.Popen] = []  # encoders of this process writing staged files
_staged: set[Path] = set()  # staged files and folders of this process, neither committed nor discarded


def stage(path: Path) -> Path:
    """Record ``path`` as staged by this process (until ``committed`` or discarded)."""
    _staged.add(path)
    return path


def committed(path: Path) -> None:
    """``path`` was renamed into place: no longer this process's to discard."""
    _staged.discard(path)


def discard(path: Path) -> None:
    """Remove a staged file or folder."""
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)
    _staged.discard(path)


def own_process(proc: subprocess.Popen) -> subprocess.Popen:
    """Record an encoder writing a staged file (until ``release_process``): ``discard_staged``
    stops it before removing its file, which it could otherwise write again by name (an mp4's
    faststart pass reopens it when its input closes)."""
    _processes.append(proc)
    return proc


def release_process(proc: subprocess.Popen) -> None:
    """The encoder has exited (or was stopped): no longer this process's to stop."""
    if proc in _processes:
        _processes.remove(proc)


def discard_staged() -> None:
    """Stop this process's encoders and remove whatever it still has staged. For the command line
    after Ctrl-C or SIGTERM: the signal can land between a staged file's creation and the code that
    would discard it."""
    for proc in list(_processes):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        release_process(proc)
    for path in list(_staged):
        discard(path)


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
        discard(p)
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
    outputs. A temp file a killed writer of ``path`` left behind is removed first (a batch killed
    while it rewrote its summary)."""
    sweep_stale_partials(path)
    fd, tmp = tempfile.mkstemp(prefix=staging_prefix(path), suffix=_PARTIAL + path.suffix, dir=path.parent)
    stage(Path(tmp))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _umask_mode(0o666))
        os.replace(tmp, path)
        _staged.discard(Path(tmp))
    except BaseException:
        discard(Path(tmp))
        raise
