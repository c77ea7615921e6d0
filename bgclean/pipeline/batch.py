"""Batch jobs: many videos, frame folders and images into one output folder, resumably.

Each input keeps its name inside the output folder. A finished item is recorded under a key made of
its content hash and the configuration's hash, and skipped on a rerun while its output exists.
Outputs are written atomically (by the single-input writers). Per-item failures are collected, never
stop the batch, and ``OUTDIR/bgclean-summary.json`` lists every item (rewritten after each one, so a
killed run still leaves an accurate summary).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bgclean.errors import InputError, stop_on_sigterm
from bgclean.pipeline.config import PipelineConfig
from bgclean.tuning import tune_process

SUMMARY = "bgclean-summary.json"
STATE_DIR = ".bgclean-done"
MANIFEST_EXTS = {".txt", ".lst", ".list"}


@dataclass
class ItemResult:
    input: str
    output: str
    status: str  # "ok" | "failed" | "skipped"
    error: str | None = None
    seconds: float = 0.0
    worker: str | None = None  # pid@host of the process that ran it


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Paths, globs and manifest files (``@list.txt`` or a .txt/.lst file: one path per line,
    relative to the manifest; # comments) → the items, in order, without duplicates."""
    items: list[Path] = []
    for raw in inputs:
        manifest = raw[1:] if raw.startswith("@") else (raw if Path(raw).suffix.lower() in MANIFEST_EXTS else None)
        if manifest is not None:
            mpath = Path(manifest)
            if not mpath.is_file():
                raise InputError(f"manifest {mpath} does not exist")
            for line in mpath.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    p = Path(line)
                    items.append(p if p.is_absolute() else mpath.parent / p)
        elif any(ch in raw for ch in "*?["):
            found = sorted(glob.glob(raw))
            if not found:
                raise InputError(f"pattern {raw!r} matches nothing")
            items.extend(Path(f) for f in found)
        else:
            items.append(Path(raw))
    unique, seen = [], set()
    for p in items:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def output_for(item: Path, outdir: Path) -> Path:
    """The item's output inside ``outdir``, keeping its name (a folder stays a folder). Every
    output is a direct child of ``outdir``: a name that is not one plain file name (``..``, the
    root) or a link that leads elsewhere is refused with an InputError."""
    name = item.name if item.name not in ("", ".", "..") else item.resolve().name
    if name in ("", ".", "..", SUMMARY, STATE_DIR) or "/" in name or "\\" in name:
        raise InputError(f"{item} has no name an output can take inside {outdir}; name the file or folder itself")
    out = outdir / name
    if out.is_symlink():
        raise InputError(f"{out} is a link; bgclean does not write through links in the output folder")
    return out


def content_hash(path: Path) -> str:
    """sha256 over a file's bytes, or over a folder's file names and bytes."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if f != path else b"")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def config_hash(cfg: PipelineConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()


def _record_path(outdir: Path, key: str) -> Path:
    return outdir / STATE_DIR / f"{key}.json"


def _write_json_atomic(path: Path, data) -> None:
    from bgclean.io import write_bytes_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, json.dumps(data, indent=2).encode())


# one Pipeline per worker process, built by the pool initializer
_worker_pipeline = None


def _in_pool_worker() -> bool:
    """True in a process that multiprocessing started (a local batch worker)."""
    import multiprocessing as mp

    return mp.parent_process() is not None


def _init_worker(cfg: PipelineConfig) -> None:
    global _worker_pipeline
    from bgclean.pipeline.runner import Pipeline

    if _in_pool_worker():
        stop_on_sigterm()  # a worker process of ours: a pool's terminate() discards its staged output
        tune_process()  # and one that runs bgclean only

    if _worker_pipeline is None or _worker_pipeline.config != cfg:
        _worker_pipeline = Pipeline(cfg)


def _ray_item(cfg: PipelineConfig, item: str, output: str) -> dict:
    """A Ray task: Ray reuses its worker processes, so each builds its pipeline once."""
    tune_process()  # a Ray worker process runs these tasks only
    _init_worker(cfg)
    return asdict(_process((item, output)))


def _process(args: tuple[str, str]) -> ItemResult:
    """Clean one item with this worker's pipeline; failures become results, not exceptions."""
    import socket

    item, output = args
    worker = f"{os.getpid()}@{socket.gethostname()}"
    t0 = time.perf_counter()
    try:
        if _worker_pipeline is None:
            raise RuntimeError("the worker's pipeline was not built (_init_worker)")
        _worker_pipeline.run_file(item, output)
        return ItemResult(item, output, "ok", seconds=time.perf_counter() - t0, worker=worker)
    except Exception as exc:  # one bad item must not stop the batch
        return ItemResult(item, output, "failed", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0, worker)


def run_batch(inputs: list[str], outdir: str | Path, cfg: PipelineConfig, jobs: int = 1,
              on_item: Callable[[ItemResult], None] | None = None, engine: str = "local",
              ray_address: str | None = None) -> list[ItemResult]:
    """Process every input into ``outdir``; returns one result per item (also in the summary).

    ``engine="ray"`` runs the items as Ray tasks (one GPU each when the cluster has GPUs) on the
    cluster at ``ray_address``, or on a local Ray runtime; inputs and ``outdir`` must then be paths
    that every node sees (shared storage)."""
    if engine not in ("local", "ray"):
        raise InputError(f"unknown engine {engine!r}; use local or ray")
    outdir = Path(outdir)
    items = expand_inputs(inputs)
    if not items:
        raise InputError("no inputs given")
    outdir.mkdir(parents=True, exist_ok=True)
    results: dict[int, ItemResult] = {}
    outputs: list[Path] = []
    names: dict[str, Path] = {}
    for n, i in enumerate(items):
        try:
            o = output_for(i, outdir)
        except InputError as exc:  # this item fails; the others run
            o = outdir / "-"
            results[n] = ItemResult(str(i), "", "failed", str(exc))
        else:
            if o.name in names:
                raise InputError(f"{i} and {names[o.name]} would both write {o}; rename one or use two batches")
            names[o.name] = i
        outputs.append(o)
    chash = config_hash(cfg)

    todo: list[tuple[int, str, str, str | None]] = []
    for n, (item, out) in enumerate(zip(items, outputs)):
        if n in results:
            continue
        try:
            key = hashlib.sha256((content_hash(item) + chash).encode()).hexdigest() if item.exists() else None
        except OSError as exc:
            key = None
            results[n] = ItemResult(str(item), str(out), "failed", f"cannot read: {exc}")
            continue
        if key is not None and _record_path(outdir, key).is_file() and out.exists():
            results[n] = ItemResult(str(item), str(out), "skipped")
        else:
            todo.append((n, str(item), str(out), key))

    def finish(n: int, key: str | None, res: ItemResult) -> None:
        results[n] = res
        if res.status == "ok" and key is not None:
            _write_json_atomic(_record_path(outdir, key), asdict(res))
        _write_summary(outdir, items, outputs, results)
        if on_item:
            on_item(res)

    for n in list(results):
        if on_item:
            on_item(results[n])
    _write_summary(outdir, items, outputs, results)
    if engine == "ray":
        _run_ray(todo, cfg, ray_address, finish)
    elif jobs <= 1 or len(todo) <= 1:
        _init_worker(cfg)
        for n, source, dest, key in todo:
            finish(n, key, _process((source, dest)))
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # torch and fork do not mix
        with ctx.Pool(min(jobs, len(todo)), initializer=_init_worker, initargs=(cfg,)) as pool:
            pending = {pool.apply_async(_process, ((item, out),)): (n, key) for n, item, out, key in todo}
            while pending:
                for fut in [f for f in pending if f.ready()]:
                    n, key = pending.pop(fut)
                    finish(n, key, fut.get())
                time.sleep(0.05)
    return [results[n] for n in range(len(items))]


def _run_ray(todo, cfg: PipelineConfig, address: str | None, finish) -> None:
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'bgclean[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_gpus=gpus, num_cpus=1)(_ray_item)
        cfg_ref = ray.put(cfg)
        pending = {task.remote(cfg_ref, item, out): (n, key) for n, item, out, key in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                n, key = pending.pop(ref)
                finish(n, key, ItemResult(**ray.get(ref)))
    finally:
        if started:
            ray.shutdown()


def _write_summary(outdir: Path, items, outputs, results: dict[int, ItemResult]) -> None:
    rows = [asdict(results[n]) if n in results else asdict(ItemResult(str(i), str(o), "pending"))
            for n, (i, o) in enumerate(zip(items, outputs))]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "skipped", "pending")}
    _write_json_atomic(outdir / SUMMARY, {"items": rows, "counts": counts})
