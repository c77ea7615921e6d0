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
from bgclean.stages.inpaint.config import InpaintConfig
from bgclean.stages.masks.config import MaskConfig
from bgclean.stages.propagate.config import PropagateConfig
from bgclean.stages.segment.config import SegmentConfig
from bgclean.stages.superres.config import SuperResConfig

__all__ = ["CONFIG_DIR", "EncodeConfig", "InpaintConfig", "MaskConfig", "PipelineConfig", "PropagateConfig",
           "RuntimeConfig", "SegmentConfig", "SuperResConfig", "default_yaml", "load_config", "validate"]

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


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
