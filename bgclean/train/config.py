"""Training configuration: one frozen dataclass, loaded from YAML (unknown keys are errors).

Data paths (``photos``, ``masks``, ``videos``) may start with ``{data}``: the data folder given
with ``--data`` (``bgclean train``) or ``data=`` (``load_train_config``). The bundled configs name
their data that way, so they work wherever the data lives. Other relative data paths in a config
file are read from the file's folder; those given as overrides (``--set photos=...``), from the
current directory. ``out`` is always read from the current directory: a run never writes into the
installed package, where the bundled configs live.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgclean.errors import ConfigError


@dataclass(frozen=True)
class MaskFolder:
    path: str  # folder of ground-truth mask PNGs
    ids: tuple[int, ...] = ()  # which values are people (empty: any nonzero)


@dataclass(frozen=True)
class VideoSource:
    path: str  # a video file or a folder of frames
    masks: str  # its person masks: a folder of PNGs, one per frame
    ids: tuple[int, ...] = ()  # which mask values are people (empty: any nonzero)


@dataclass(frozen=True)
class TrainConfig:
    # network
    arch: str = "ffc"  # one of bgclean.models.inpaint.ARCHITECTURES
    width: int = 32
    residual: bool = True  # correct a classical fill (starts at its quality) instead of inventing
    scale: int = 2  # residual models: the inner network runs at 1/scale resolution
    classical: str = "telea"  # the residual model's input fill: telea | navier-stokes | structure
    # data
    photos: str = ""  # folder of training photos (*.jpg, *.png)
    exclude: tuple[str, ...] = ()  # file names never to train on (the benchmark's held-out photos)
    masks: tuple[MaskFolder, ...] = ()  # silhouettes for person-shaped holes
    videos: tuple[VideoSource, ...] = ()  # person-free regions of these frames are training images too
    video_share: float = 0.2  # share of samples drawn from the videos' frames
    size: int = 128  # training crop side, px
    scale_range: tuple[float, float] = (0.15, 0.6)  # photo rescale before cropping (photos are ~2048 px)
    rect_prob: float = 0.25  # share of holes from the rectangles + scribbles recipe
    hole_area: tuple[float, float] = (0.03, 0.4)
    max_holes: int = 3
    # optimisation
    batch: int = 8
    steps: int = 2000
    lr: float = 2e-4
    lr_disc: float = 2e-4
    seed: int = 0
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    time_limit_min: float = 0  # stop (and checkpoint) after this many minutes; 0 = no limit
    threads: int = 0  # torch CPU threads; 0 = torch's default
    workers: int = 0  # processes making batches ahead of the step; -1 = one per CPU core but one (at most 16)
    # losses
    w_hole: float = 6.0  # L1 inside the hole
    w_valid: float = 1.0  # L1 outside it
    w_tv: float = 0.1  # total variation on the hole's composite
    w_perceptual: float = 0.05  # L1 between frozen U²-Net encoder features
    w_style: float = 0.0  # Gram-matrix style loss on the same features
    w_adv: float = 0.0  # adversarial (hinge), global + local discriminators; 0 = off
    w_fm: float = 1.0  # discriminator feature matching (with w_adv > 0)
    adv_start: int = 0  # step at which the adversarial terms switch on
    # bookkeeping
    init: str = ""  # start a new run from these weights: a registry name (inpaint.dmfn) or a trainer's .pt
    out: str = "runs/inpaint"
    eval_every: int = 200
    ckpt_every: int = 200
    eval_images: int = 16  # fixed validation crops (from the training photos' val split)
    val_photos: int = 2  # photos kept out of training for the log's eval numbers


DATA = "{data}"  # stands for the data folder in data paths


def load_train_config(path: str | Path | None, overrides: dict | None = None,
                      data: str | Path | None = None) -> TrainConfig:
    import yaml

    raw: dict = {}
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            bundled = Path(__file__).parent / "configs" / f"{path}.yaml"
            if not bundled.is_file():
                raise ConfigError(f"training config {str(path)!r} not found (bundled: "
                                  f"{', '.join(p.stem for p in (Path(__file__).parent / 'configs').glob('*.yaml'))})")
            path = bundled
        raw = yaml.safe_load(path.read_text()) or {}
        base = path.parent
    raw.update(overrides or {})
    # a path given on the command line (``--set out=runs/x``) means what it says from where the
    # user stands, not from the config file's folder (the bundled ones live inside the package)
    where = {k: Path.cwd() if k in (overrides or {}) else base for k in raw}
    names = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"unknown training config key(s) {', '.join(unknown)} in {path}; "
                          f"known: {', '.join(names)}")
    where["out"] = Path.cwd()

    def resolve(k: str, p: str) -> str:
        if p.startswith(DATA):
            if data is None:
                raise ConfigError(f"{path or 'the config'} reads its training data from {DATA} ({k}: {p}): "
                                  "pass the data folder with --data DIR, or give the paths with --set "
                                  "photos=DIR masks=[{path: DIR}] videos=[]")
            return str(_resolve(Path.cwd(), str(data)) / p[len(DATA):].lstrip("/\\"))
        return str(_resolve(where[k], p))

    kw: dict[str, Any] = {}
    for k, v in raw.items():
        if k == "masks":
            kw[k] = tuple(MaskFolder(resolve(k, m["path"]), tuple(m.get("ids", ()))) for m in v)
        elif k == "videos":
            kw[k] = tuple(VideoSource(resolve(k, m["path"]), resolve(k, m["masks"]), tuple(m.get("ids", ())))
                          for m in v)
        elif k in ("photos", "out"):
            kw[k] = resolve(k, v) if v else v
        elif isinstance(v, list):
            kw[k] = tuple(v)
        else:
            kw[k] = v
    cfg = TrainConfig(**kw)
    from bgclean.models.inpaint import ARCHITECTURES

    if cfg.arch not in ARCHITECTURES:
        raise ConfigError(f"unknown arch {cfg.arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    if cfg.classical not in ("telea", "navier-stokes", "structure"):
        raise ConfigError("classical must be telea, navier-stokes or structure")
    if cfg.workers < -1:
        raise ConfigError("workers must be >= 0, or -1 (one per CPU core but one)")
    return cfg


def _resolve(base: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (base / q).resolve()

