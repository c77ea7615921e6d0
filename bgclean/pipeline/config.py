"""Configuration: one frozen dataclass per stage, composed into ``PipelineConfig``.

The YAML files in ``bgclean/configs/`` mirror these dataclasses one to one. Unknown keys are errors
that name the key and the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgclean.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass(frozen=True)
class SegmentConfig:
    """Person segmentation. ``backend``: ``yolox+u2net.small`` / ``yolox+u2net.full`` (person
    boxes, then U²-Net inside each box), ``u2net.full`` / ``u2net.small`` (whole frame, salient
    object), or ``rembg:<session>``."""

    backend: str = "yolox+u2net.small"
    resolution: int = 320  # network input side for whole-frame U²-Net, px
    batch_size: int = 0  # frames (or person crops) per network call (0: 2 on CPU, 16 on GPU)
    half: bool = True  # fp16 on CUDA (ignored on CPU)
    det_threshold: float = 0.35  # person score that starts a track
    det_keep: float = 0.15  # lower score that keeps an existing track (hysteresis)
    animal_threshold: float = 0.35  # animal score that starts an animal's track (kept out of a person's mask beside it)
    animal_carry: int = 2  # frames a surely seen animal the detector lost stays kept out, moving at its last velocity (0: off)
    carry: int = 8  # frames a lost person stays masked, moving at its last velocity
    crop_resolution: int = 160  # max U²-Net input side for each person crop, px
    box_margin: float = 0.15  # person box grown by this fraction of its size on each side
    verify_below: float = 0.75  # tracks scoring below this get a zoomed-in second look (0 = never)
    verify_every: int = 6  # frames between second looks at a weak track
    every: int = 0  # segment each person every N frames; between, her map follows her box (0: 1 on GPU, 3 on CPU)
    fresh: int = 1  # with every > 1, at least this many people get a new map each frame (their oldest maps first)
    belongings: float = 0.3  # detector score above which a bag, racket, bike... touching a person joins her mask (0 = off)
    # corners tracked frame to frame: a "person" whose pixels move with the scene while the camera
    # moves (a painted figure, a poster) is left in the video; a lost person's box follows her corners
    scenery: bool = True
    person_gate: bool = True  # where an animal's box overlaps a person's, MediaPipe selfie says which pixels are hers
    detector_runtime: str = "auto"  # YOLOX: auto (onnxruntime on a CPU, torch on a CUDA device unless onnxruntime-gpu is installed) | onnxruntime | torch


@dataclass(frozen=True)
class MaskConfig:
    """Turning soft person maps into hole masks."""

    threshold: float = 0.5  # probability above which a pixel is surely person
    threshold_low: float = 0.25  # weaker pixels join when connected to sure ones (hysteresis)
    temporal: int = 1  # also mask where the previous N frames had a person (motion trails, dropouts)
    dilate: float = 0.02  # dilation radius as a fraction of the frame's shorter side
    dilate_px: int | None = None  # when set, an absolute radius in pixels (overrides ``dilate``)
    fill_holes: bool = True
    min_area: float = 0.0005  # components smaller than this fraction of the frame are dropped


@dataclass(frozen=True)
class PropagateConfig:
    """Copying real background from other frames into the holes (before inpainting)."""

    enabled: bool = True
    history: int = 30  # past frames kept as sources, besides the current window
    max_features: int = 1500  # ORB features per frame where tracked corners fail
    static_px: float = 0.5  # camera motions moving no corner more than this are treated as still
    nearest: int = 5  # each pixel's value from its nearest-in-time sightings (0 = all of them)
    trim: float = 0.2  # their trimmed mean: this fraction dropped at each end (0 = the median)
    sources: int = 8  # moving camera: frames at most that fill each frame, its nearest then spread (0 = all)
    refine: str = "flow"  # align each warped frame by dense flow (OpenCV DIS) after its homography: flow | off
    exposure: bool = True  # match each warped frame's exposure to the current one's around the hole
    shadows: str = "always"  # grow holes by shadows: always (still cameras from the background model, moving ones by a photometric + temporal test) | static (still cameras only) | off
    shadow_reach: float = 0.15  # how far from the person to look, fraction of the shorter side
    shadow_diff: float = 0.08  # difference from the background (0-1, any channel) that joins the hole
    unchanged: float = 0.045  # a hole's pixels whose filled background matches the frame within this (0-1, any channel) and lie beyond the dilation from any that differ keep the frame's own pixels (0 = off)


@dataclass(frozen=True)
class InpaintConfig:
    """Filling the holes. ``backend``: one of ``bgclean.stages.inpaint.BACKENDS``."""

    backend: str = "auto"  # auto: learned + guided texture for stills and still cameras, learned for moving video
    radius: int = 5  # neighbourhood radius of telea and navier-stokes, px
    patch_size: int = 7  # patchmatch patch side, px
    hybrid_sigma: float = 4.0  # hybrid: Gaussian (px) splitting the base's structure from the texture
    hybrid_base: str = "telea"  # hybrid: where the structure comes from: telea | learned
    hybrid_detail: str = "guided"  # hybrid: where the texture comes from: guided (blocks picked by the base's colours) | patchmatch
    hybrid_line_share: float = 0.5  # hybrid with the learned base on the structure fill: where its lines carry weight w, their detail is added at w, this share x w of the copied texture removed and the low frequencies moved w/2 of the way to theirs; 0 = off
    hybrid_net_side: int = 384  # hybrid (and auto on stills) with the learned base: the network's net_side there (its fine detail is replaced by the texture)
    feather: int = 4  # width of the blended edge inside the mask, px
    max_side: int = 0  # fill at most this long side (px) and restore to native size; 0 = native
    model: str = "inpaint.dmfn"  # the learned backend's weights (registry name)
    residual_fill: str = "structure"  # learned: the classical fill a residual network corrects: structure | telea | navier-stokes
    net_side: int = 512  # learned: the long side of each hole's crop the network sees, at most, px
    context: float = 0.5  # learned: context around each hole's box, fraction of the box size per side
    tiles: int = 1  # learned: 2 = quadrant tiling (2x2 overlapping tiles, blended), twice the resolution
    passes: int = 1  # learned: refine N times, the hole eroded a little more each pass
    finetune_steps: int = 0  # learned: steps fine-tuning on the video's own background first (GPU)


@dataclass(frozen=True)
class SuperResConfig:
    """Real-ESRGAN. Fill mode restores fills made below native resolution; ``upscale`` > 1
    super-resolves the whole output."""

    model: str = "realesrgan.animevideov3"  # a realesrgan.* registry name, or "none" (bicubic)
    upscale: float = 1.0  # whole-output scale factor (1 = off)
    tile: int = 256  # input tile side, px (0 = whole image at once)
    tile_pad: int = 16  # context around each tile, px
    pre_pad: int = 8  # reflect padding of the whole input, px
    batch_size: int = 4  # tiles per network call
    half: bool = True  # fp16 on CUDA (ignored on CPU)
    margin: int = 8  # context around each hole when super-resolving a fill, px at fill resolution
    keep_colors: bool = True  # fill mode: SR detail on the bicubic restore's low frequencies


@dataclass(frozen=True)
class EncodeConfig:
    """Video output."""

    crf: int = 18
    preset: str = "medium"


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how much at once."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    window: int = 16  # frames held in memory at once (at most: lowered to fit memory_gb)
    memory_gb: float = 0.0  # memory a run may take, GB; 0: three quarters of what is free at start


@dataclass(frozen=True)
class PipelineConfig:
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    propagate: PropagateConfig = field(default_factory=PropagateConfig)
    inpaint: InpaintConfig = field(default_factory=InpaintConfig)
    superres: SuperResConfig = field(default_factory=SuperResConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def with_overrides(self, overrides: dict[str, Any], origin: str = "overrides") -> PipelineConfig:
        """A copy with ``{"section.field": value}`` applied (values are checked like YAML values)."""
        nested: dict[str, dict[str, Any]] = {}
        for dotted, value in overrides.items():
            section, _, name = dotted.partition(".")
            nested.setdefault(section, {})[name] = value
        return _merge(self, nested, origin)


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, annotation)


def _merge(cfg: PipelineConfig, data: Any, origin: str) -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of sections, got {type(data).__name__}")
    hints = typing.get_type_hints(PipelineConfig)
    sections = {}
    for section, values in data.items():
        if section not in hints:
            raise ConfigError(
                f"{origin}: unknown key {section!r}; valid sections: {', '.join(hints)}"
            )
        current = getattr(cfg, section)
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: {section!r} must be a mapping")
        field_hints = typing.get_type_hints(type(current))
        for key, value in values.items():
            if key not in field_hints:
                raise ConfigError(
                    f"{origin}: unknown key {section}.{key!r}; valid keys in {section!r}: "
                    f"{', '.join(field_hints)}"
                )
            if _type_ok(value, float) and field_hints[key] is float:
                value = float(value)
            if not _type_ok(value, field_hints[key]):
                raise ConfigError(
                    f"{origin}: {section}.{key} must be {_type_name(field_hints[key])}, got {value!r}"
                )
        sections[section] = dataclasses.replace(current, **values)
    out = dataclasses.replace(cfg, **sections)
    validate(out, origin)
    return out


def _type_name(annotation: Any) -> str:
    args = typing.get_args(annotation)
    if args:
        return " or ".join(_type_name(a) for a in args)
    return "null" if annotation is type(None) else annotation.__name__


def validate(cfg: PipelineConfig, origin: str = "config") -> None:
    """Range checks that types alone cannot express."""
    checks = [
        (0.0 < cfg.masks.threshold < 1.0, "masks.threshold must be between 0 and 1"),
        (0.0 < cfg.masks.threshold_low <= cfg.masks.threshold, "masks.threshold_low must be in (0, threshold]"),
        (0 <= cfg.masks.temporal <= 10, "masks.temporal must be in [0, 10]"),
        (0.0 <= cfg.masks.dilate < 0.5, "masks.dilate must be in [0, 0.5) (a fraction of the shorter side)"),
        (cfg.masks.dilate_px is None or 0 <= cfg.masks.dilate_px <= 2000,
         "masks.dilate_px must be in [0, 2000] (pixels: a radius beyond a frame's size masks all of it)"),
        (0.0 <= cfg.masks.min_area < 1.0, "masks.min_area must be in [0, 1)"),
        (cfg.segment.resolution >= 32 and cfg.segment.resolution % 32 == 0,
         "segment.resolution must be a multiple of 32, at least 32"),
        (cfg.segment.detector_runtime in ("auto", "onnxruntime", "torch"),
         "segment.detector_runtime must be auto, onnxruntime or torch"),
        (cfg.segment.batch_size >= 0, "segment.batch_size must be >= 0 (0 = auto)"),
        (0 < cfg.segment.det_keep <= cfg.segment.det_threshold < 1, "segment needs 0 < det_keep <= det_threshold < 1"),
        (0 < cfg.segment.animal_threshold < 1, "segment.animal_threshold must be between 0 and 1"),
        (0 <= cfg.segment.animal_carry <= 30, "segment.animal_carry must be in [0, 30]"),
        (cfg.segment.carry >= 0, "segment.carry must be >= 0"),
        (cfg.segment.crop_resolution >= 32 and cfg.segment.crop_resolution % 32 == 0,
         "segment.crop_resolution must be a multiple of 32, at least 32"),
        (0 <= cfg.segment.box_margin <= 1, "segment.box_margin must be in [0, 1]"),
        (0 <= cfg.segment.belongings < 1, "segment.belongings must be in [0, 1) (0 = off)"),
        (0 <= cfg.segment.verify_below <= 1, "segment.verify_below must be in [0, 1]"),
        (cfg.segment.verify_every >= 1, "segment.verify_every must be >= 1"),
        (0 <= cfg.segment.every <= 8, "segment.every must be in 0..8 (0 = auto)"),
        (cfg.segment.fresh >= 0, "segment.fresh must be >= 0"),
        (cfg.propagate.refine in ("flow", "off"), "propagate.refine must be flow or off"),
        (cfg.inpaint.radius >= 1, "inpaint.radius must be >= 1"),
        (cfg.inpaint.patch_size >= 3 and cfg.inpaint.patch_size % 2 == 1, "inpaint.patch_size must be odd, >= 3"),
        (0 <= cfg.propagate.history <= 1000, "propagate.history must be in [0, 1000]"),
        (cfg.propagate.sources >= 0, "propagate.sources must be >= 0 (0 = all)"),
        (cfg.propagate.static_px >= 0, "propagate.static_px must be >= 0"),
        (cfg.propagate.shadows in ("static", "always", "off"), "propagate.shadows must be static, always or off"),
        (0 < cfg.propagate.shadow_reach <= 1 and 0 < cfg.propagate.shadow_diff < 1,
         "propagate.shadow_reach must be in (0, 1] and shadow_diff in (0, 1)"),
        (0 <= cfg.propagate.unchanged < 1, "propagate.unchanged must be in [0, 1) (0 = off)"),
        (cfg.inpaint.feather >= 0, "inpaint.feather must be >= 0"),
        (cfg.inpaint.max_side == 0 or cfg.inpaint.max_side >= 32, "inpaint.max_side must be 0 (native) or >= 32"),
        (cfg.inpaint.net_side >= 64, "inpaint.net_side must be >= 64"),
        (cfg.inpaint.hybrid_net_side >= 64, "inpaint.hybrid_net_side must be >= 64"),
        (0 <= cfg.inpaint.hybrid_line_share <= 1, "inpaint.hybrid_line_share must be between 0 and 1"),
        (cfg.inpaint.context >= 0, "inpaint.context must be >= 0"),
        (cfg.inpaint.tiles in (1, 2), "inpaint.tiles must be 1 or 2"),
        (cfg.inpaint.hybrid_base in ("telea", "learned"), "inpaint.hybrid_base must be telea or learned"),
        (cfg.inpaint.residual_fill in ("structure", "telea", "navier-stokes"),
         "inpaint.residual_fill must be structure, telea or navier-stokes"),
        (cfg.inpaint.hybrid_detail in ("patchmatch", "guided"), "inpaint.hybrid_detail must be patchmatch or guided"),
        (1 <= cfg.inpaint.passes <= 8, "inpaint.passes must be in 1..8"),
        (cfg.inpaint.finetune_steps >= 0, "inpaint.finetune_steps must be >= 0"),
        (cfg.superres.model == "none" or cfg.superres.model.startswith("realesrgan."),
         "superres.model must be a realesrgan.* weights name or none"),
        (1.0 <= cfg.superres.upscale <= 16.0, "superres.upscale must be between 1 and 16"),
        (cfg.superres.tile == 0 or cfg.superres.tile >= 32, "superres.tile must be 0 or >= 32"),
        (cfg.superres.tile_pad >= 0 and cfg.superres.pre_pad >= 0, "superres paddings must be >= 0"),
        (0 <= cfg.encode.crf <= 51, "encode.crf must be in [0, 51]"),
        (cfg.runtime.window >= 1, "runtime.window must be >= 1"),
        (cfg.runtime.memory_gb >= 0, "runtime.memory_gb must be >= 0 (0: a share of the free memory)"),
        (cfg.runtime.device == "auto" or cfg.runtime.device == "cpu" or cfg.runtime.device.startswith("cuda"),
         "runtime.device must be auto, cpu, cuda or cuda:N"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{origin}: {message}")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """The default configuration, updated from a YAML file (if given), then from overrides."""
    import yaml

    cfg = PipelineConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            named = CONFIG_DIR / f"{path}.yaml"
            if named.is_file() and path.suffix == "":
                path = named
            else:
                raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        cfg = _merge(cfg, data, str(path))
    if overrides:
        cfg = cfg.with_overrides(overrides, "command-line options")
    return cfg
