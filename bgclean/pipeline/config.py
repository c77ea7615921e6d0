"""Configuration: one frozen dataclass per stage, composed into ``PipelineConfig``.

Each field is declared once with ``bgclean.settings.setting`` (meaning, bounds, choices, flag):
``bgclean/configs/default.yaml`` is generated from it (``default_yaml()``), the command line's
help is read from it, and ``validate`` checks it. Unknown keys are errors that name the key and
the file.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgclean.errors import ConfigError
from bgclean.settings import problems, setting

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


_SEGMENTER_KINDS = ("yolox+u2net.small", "yolox+u2net.full", "yolox+mediapipe.selfie", "yolox+rvm",
                    "u2net.small", "u2net.full", "mediapipe.selfie", "rvm")
INPAINT_BACKENDS = ("auto", "learned", "telea", "navier-stokes", "structure", "patchmatch", "hybrid")


def _segmenter_ok(name: str) -> bool:
    return name in _SEGMENTER_KINDS or (name.startswith("rembg:") and len(name) > len("rembg:"))


def _multiple_of_32(value: int) -> bool:
    return value % 32 == 0


@dataclass(frozen=True)
class SegmentConfig:
    """Person segmentation: which people are found, and how their maps are made."""

    backend: str = setting(
        "yolox+u2net.small", "person segmenter: yolox+NAME finds person boxes, then NAME segments inside "
        "each; NAME alone segments whole frames; NAME is u2net.small, u2net.full, mediapipe.selfie or rvm "
        "(GPL-3.0 weights, opt-in); rembg:SESSION any rembg session (needs the rembg package)",
        rule=_segmenter_ok, rule_doc="one of " + " | ".join(_SEGMENTER_KINDS) + " | rembg:SESSION",
        flag="--segmenter")
    resolution: int = setting(320, "whole-frame U²-Net input side, px", min=32, rule=_multiple_of_32,
                              rule_doc="a multiple of 32")
    batch_size: int = setting(0, "frames or person crops per segmentation call (0: 2 on CPU, 16 on GPU)", min=0,
                              flag="--batch-size")
    half: bool = setting(True, "fp16 on CUDA (ignored on CPU)")
    det_threshold: float = setting(0.35, "person score that starts a track", min=0, max=1, above=True, below=True)
    det_keep: float = setting(0.15, "lower person score that keeps a track going (hysteresis)",
                              min=0, max=1, above=True, below=True)
    animal_threshold: float = setting(0.35, "animal score that starts an animal's track (kept out of a "
                                      "person's mask beside it)", min=0, max=1, above=True, below=True)
    animal_carry: int = setting(2, "frames a lost animal stays kept out, moving at its last velocity (0: off)",
                                min=0, max=30)
    carry: int = setting(8, "frames a lost person stays masked, moving at its last velocity", min=0)
    crop_resolution: int = setting(160, "largest U²-Net input side for each person crop, px", min=32,
                                   rule=_multiple_of_32, rule_doc="a multiple of 32")
    box_margin: float = setting(0.15, "person box grown by this fraction of its size on each side", min=0, max=1)
    verify_below: float = setting(0.75, "tracks scoring below this get a zoomed-in second look (0: never)",
                                  min=0, max=1)
    verify_every: int = setting(6, "frames between second looks at a weak track", min=1)
    every: int = setting(0, "segment each person every N frames; between, her map follows her box "
                         "(0: 1 on GPU, 3 on CPU)", min=0, max=8)
    fresh: int = setting(1, "with every > 1, people given a new map each frame at least (oldest maps first)",
                         min=0)
    belongings_score: float = setting(0.3, "detector score above which a bag, racket, bike... touching a "
                                      "person joins her mask (0: off)", min=0, max=1, below=True)
    scenery: bool = setting(True, "a 'person' moving with the scene while the camera moves (a painted figure) "
                            "stays; a lost person's box follows her corners")
    person_gate: bool = setting(True, "where an animal's box overlaps a person's, MediaPipe selfie says "
                                "which pixels are hers")
    detector_runtime: str = setting("auto", "YOLOX runs on: auto (onnxruntime on a CPU, torch on a CUDA "
                                    "device unless onnxruntime-gpu is installed) | onnxruntime | torch",
                                    choices=("auto", "onnxruntime", "torch"))

    def check(self) -> list[str]:
        if self.det_keep > self.det_threshold:
            return [f"det_keep ({self.det_keep}) must not exceed det_threshold ({self.det_threshold})"]
        return []


@dataclass(frozen=True)
class MaskConfig:
    """Turning soft person maps into hole masks."""

    threshold: float = setting(0.5, "probability above which a pixel is surely person",
                               min=0, max=1, above=True, below=True)
    threshold_low: float = setting(0.25, "weaker pixels join when connected to sure ones (hysteresis)",
                                   min=0, max=1, above=True)
    temporal: int = setting(1, "also mask where the previous N frames had a person", min=0, max=10)
    dilate: float = setting(0.02, "dilation radius, fraction of the frame's shorter side", min=0, max=0.5,
                            below=True)
    dilate_px: int | None = setting(None, "dilation radius in px, when set (overrides dilate; a radius "
                                    "beyond a frame's size would mask all of it)", min=0, max=2000)
    fill_holes: bool = setting(True, "fill holes enclosed by a person's mask")
    min_area: float = setting(0.0005, "drop components smaller than this fraction of the frame", min=0, max=1,
                              below=True)

    def check(self) -> list[str]:
        if self.threshold_low > self.threshold:
            return [f"threshold_low ({self.threshold_low}) must not exceed threshold ({self.threshold})"]
        return []


@dataclass(frozen=True)
class PropagateConfig:
    """Copying real background seen in other frames into the holes (before inpainting)."""

    enabled: bool = setting(True, "copy real background seen in other frames into the holes")
    history: int = setting(30, "past frames kept as sources, besides the window (at most: lowered to fit "
                           "runtime.memory_gb)", min=0, max=1000)
    max_features: int = setting(1500, "ORB features per frame where tracked corners fail", min=1)
    static_px: float = setting(0.5, "camera motions moving no corner more than this (px) count as still", min=0)
    nearest: int = setting(5, "each pixel's value from its nearest-in-time sightings (0: all)", min=0)
    trim: float = setting(0.2, "their trimmed mean: this share dropped at each end (0: their median)",
                          min=0, max=0.5)
    sources: int = setting(8, "moving camera: frames at most that fill each frame, its nearest then spread "
                           "(0: all)", min=0)
    refine: str = setting("flow", "align warped frames by dense flow (DIS) after the homography: flow | off",
                          choices=("flow", "off"))
    exposure: bool = setting(True, "match each warped frame's exposure to the current one's around the hole")
    shadows: str = setting("always", "grow holes by shadows: always (still and moving cameras) | static "
                           "(still only) | off", choices=("always", "static", "off"))
    shadow_reach: float = setting(0.15, "how far from the person to look for shadows, fraction of the "
                                  "shorter side", min=0, max=1, above=True)
    shadow_diff: float = setting(0.08, "difference from the background (0-1, any channel) that joins a "
                                 "shadow to the hole", min=0, max=1, above=True, below=True)
    unchanged_tolerance: float = setting(
        0.045, "hole pixels whose filled background matches the frame within this (0-1, any channel), "
        "beyond the dilation from any that differ, keep the frame's own pixels (0: off)", min=0, max=1, below=True)


@dataclass(frozen=True)
class InpaintConfig:
    """Filling what no frame saw."""

    backend: str = setting("auto", "fill for what no frame saw: auto (learned + guided texture for stills and "
                           "still cameras, learned for moving video) | learned | telea | navier-stokes | "
                           "structure | patchmatch | hybrid", choices=INPAINT_BACKENDS, flag="--inpainter")
    radius: int = setting(5, "telea and navier-stokes neighbourhood, px", min=1)
    patch_size: int = setting(7, "patchmatch patch side, px", min=3, rule=lambda v: v % 2 == 1, rule_doc="odd")
    hybrid_sigma: float = setting(4.0, "hybrid: Gaussian (px) splitting the base's structure from the texture",
                                  min=0, above=True)
    hybrid_base: str = setting("telea", "hybrid: structure from telea | learned", choices=("telea", "learned"))
    hybrid_detail: str = setting("guided", "hybrid: texture from guided (blocks picked by the base's colours) "
                                 "| patchmatch", choices=("guided", "patchmatch"))
    hybrid_line_share: float = setting(
        0.5, "hybrid with the learned base: where its lines carry weight w, their detail is added at w, this "
        "share x w of the copied texture removed and the low frequencies moved w/2 towards theirs (0: off)",
        min=0, max=1)
    hybrid_net_side: int = setting(384, "hybrid and auto on stills: the learned base's net_side (its fine "
                                   "detail is replaced by the texture)", min=64)
    feather: int = setting(4, "blended edge inside the mask, px", min=0)
    max_side: int = setting(0, "fill at most this long side (px), then restore to native with "
                            "super-resolution (0: native)", rule=lambda v: v == 0 or v >= 32,
                            rule_doc="0 or >= 32", flag="--inpaint-size")
    model: str = setting("inpaint.dmfn", "the learned fill's weights (registry name)")
    residual_fill: str = setting("structure", "learned: the classical fill the network corrects: structure "
                                 "(lines continued across the hole) | telea | navier-stokes",
                                 choices=("structure", "telea", "navier-stokes"))
    net_side: int = setting(512, "learned: long side of each hole's crop the network sees, at most, px", min=64)
    context: float = setting(0.5, "learned: context around each hole's box, fraction of its size per side",
                             min=0)
    tiles: int = setting(1, "learned: 2 = quadrant tiling (2x2 overlapping tiles, blended)", choices=(1, 2),
                         flag="--tiles")
    passes: int = setting(1, "learned: refine N times, the hole eroded a little more each pass", min=1, max=8,
                          flag="--passes")
    finetune_steps: int = setting(0, "learned: fine-tune N steps on the video's own background first (GPU)",
                                  min=0, flag="--finetune-steps")


@dataclass(frozen=True)
class SuperResConfig:
    """Real-ESRGAN: restores fills made below native size; ``upscale`` > 1 enlarges the whole output."""

    model: str = setting("realesrgan.animevideov3", "super-resolution weights (realesrgan.NAME or none), for "
                         "fills made below native size and for upscale: realesrgan.animevideov3 (fast), "
                         "realesrgan.x4plus (sharper, slow on a CPU), none (bicubic)", rule=lambda v: v == "none" or v.startswith("realesrgan."),
                         rule_doc="realesrgan.NAME or none", flag="--sr")
    upscale: float = setting(1.0, "super-resolve the whole output this many times larger (1: off)", min=1,
                             max=16, flag="--upscale")
    tile: int = setting(256, "input tile side, px (0: whole image at once)", rule=lambda v: v == 0 or v >= 32,
                        rule_doc="0 or >= 32", flag="--sr-tile")
    tile_pad: int = setting(16, "context around each tile, px", min=0)
    pre_pad: int = setting(8, "reflect padding of the whole input, px", min=0)
    batch_size: int = setting(4, "tiles per network call", min=1)
    half: bool = setting(True, "fp16 on CUDA (ignored on CPU)")
    margin: int = setting(8, "context around each hole when super-resolving a fill, px", min=0)
    keep_colors: bool = setting(True, "fill mode: detail from super-resolution on the bicubic restore's "
                                "colours (no tone seam)")


@dataclass(frozen=True)
class EncodeConfig:
    """Video output (H.264 and the other encoders ffmpeg picks by extension)."""

    crf: int = setting(18, "constant rate factor: lower is better and larger", min=0, max=51)
    preset: str = setting("medium", "encoder speed preset", choices=(
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"))


@dataclass(frozen=True)
class RuntimeConfig:
    """Where, and how much at once."""

    device: str = setting("auto", "where to run: auto | cpu | cuda | cuda:N (auto: the first CUDA "
                          "device, else the CPU)",
                          rule=lambda v: v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()),
                          rule_doc="one of auto | cpu | cuda | cuda:N", flag="--device")
    window: int = setting(16, "frames held in memory at once (at most: lowered to fit memory_gb)", min=1,
                          flag="--window")
    memory_gb: float = setting(0.0, "memory a run may take, GB; large frames get a smaller window (0: three "
                               "quarters of what is free at start)", min=0, flag="--memory", metavar="GB")


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


#: (section, old key) -> the key's name now; old names are still read, with a warning
RENAMED = {("segment", "belongings"): "belongings_score", ("propagate", "unchanged"): "unchanged_tolerance"}


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
        checked = {}
        for key, value in values.items():
            if (section, key) in RENAMED:
                log.warning("%s: %s.%s is now called %s.%s", origin, section, key, section, RENAMED[section, key])
                key = RENAMED[section, key]
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
            checked[key] = value
        sections[section] = dataclasses.replace(current, **checked)
    out = dataclasses.replace(cfg, **sections)
    validate(out, origin)
    return out


def _type_name(annotation: Any) -> str:
    args = typing.get_args(annotation)
    if args:
        return " or ".join(_type_name(a) for a in args)
    return "null" if annotation is type(None) else annotation.__name__


def validate(cfg: PipelineConfig, origin: str = "config") -> None:
    """Every setting within its bounds and choices (``bgclean.settings``)."""
    found = [m for f in dataclasses.fields(cfg) for m in problems(getattr(cfg, f.name), f.name)]
    if found:
        raise ConfigError(f"{origin}: " + "; ".join(found))


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


DEFAULT_HEADER = """\
bgclean's default configuration, generated from bgclean/pipeline/config.py (each setting's meaning,
bounds and default are declared there once). A config file may set any of these keys; an unknown
key is an error. Regenerate with: python -m bgclean.pipeline.config > bgclean/configs/default.yaml
"""


def default_yaml() -> str:
    """The text of ``bgclean/configs/default.yaml``: every setting at its default, described."""
    from bgclean.settings import yaml_text

    return yaml_text(PipelineConfig(), DEFAULT_HEADER)


if __name__ == "__main__":
    print(default_yaml(), end="")
