"""One description per setting: each configuration field carries its meaning, bounds and choices,
from which the checks, the bundled ``default.yaml`` and the command line's help are all made.

A section of settings is a frozen dataclass whose fields are declared with ``setting(...)``::

    @dataclass(frozen=True)
    class RuntimeConfig:
        window: int = setting(16, "frames held in memory at once", min=1)

``problems(section, "runtime")`` lists what is wrong with a section's values; ``describe`` gives
the text a user reads (in the YAML file and in ``--help``).
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    """What a configuration field means and which values it takes (None: no such limit)."""

    doc: str
    min: float | None = None
    max: float | None = None
    above: bool = False  # the value must be greater than ``min``, not equal to it
    below: bool = False  # the value must be less than ``max``, not equal to it
    choices: tuple[Any, ...] | None = None
    rule: Callable[[Any], bool] | None = None  # any other condition...
    rule_doc: str = ""  # ...and how it reads: "a multiple of 32"
    flag: str | None = None  # the command-line flag that sets it, e.g. "--window"
    metavar: str | None = None  # what the flag's value is called in its help, e.g. "GB"

    def allows(self, value: Any) -> bool:
        if value is None:  # a field typed ``X | None`` is unset: nothing to check
            return True
        if self.choices is not None and value not in self.choices:
            return False
        if self.min is not None and (value <= self.min if self.above else value < self.min):
            return False
        if self.max is not None and (value >= self.max if self.below else value > self.max):
            return False
        return self.rule is None or bool(self.rule(value))

    def bounds(self, doc: str = "") -> str:
        """The allowed values in words ("in [0, 1)", "one of a | b", ">= 1"), or ""; leaving out
        what ``doc`` already lists."""
        parts = []
        if self.choices is not None and not all(str(c) in doc for c in self.choices):
            parts.append("one of " + " | ".join(str(c) for c in self.choices))
        if self.min is not None and self.max is not None:
            low, high = "(" if self.above else "[", ")" if self.below else "]"
            parts.append(f"in {low}{_num(self.min)}, {_num(self.max)}{high}")
        elif self.min is not None:
            parts.append(f"{'>' if self.above else '>='} {_num(self.min)}")
        elif self.max is not None:
            parts.append(f"{'<' if self.below else '<='} {_num(self.max)}")
        if self.rule_doc and self.rule_doc.removeprefix("one of ") not in doc:
            parts.append(self.rule_doc)
        return ", ".join(parts)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def setting(default: Any, doc: str, **limits: Any) -> Any:
    """A dataclass field with its description and limits (the keyword arguments of ``Setting``)."""
    return dataclasses.field(default=default, metadata={"setting": Setting(doc, **limits)})


def settings_of(section: Any) -> list[tuple[str, Setting]]:
    """(field name, Setting) for each field of a section, in declaration order."""
    return [(f.name, f.metadata["setting"]) for f in dataclasses.fields(section) if "setting" in f.metadata]


def problems(section: Any, prefix: str) -> list[str]:
    """A message for each field of ``section`` whose value its Setting does not allow, then the
    section's own cross-field checks (a ``check()`` method returning messages)."""
    out = []
    for name, s in settings_of(section):
        value = getattr(section, name)
        if not s.allows(value):
            out.append(f"{prefix}.{name} must be {s.bounds()}, got {value!r}")
    check = getattr(section, "check", None)
    if check is not None:
        out.extend(f"{prefix}.{message}" for message in check())
    return out


def describe(s: Setting, default: Any = dataclasses.MISSING) -> str:
    """A setting's help text: its meaning, its allowed values and (when given) its default."""
    text = s.doc
    bounds = s.bounds(s.doc)
    if bounds:
        text += f"; {bounds}"
    if default is not dataclasses.MISSING:
        text += f"; default {yaml_value(default)}"
    return text


def yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def yaml_text(config: Any, header: str, width: int = 100) -> str:
    """A YAML file with every section and field of ``config`` (a dataclass of sections) at its
    value, each with its description as a comment: what ``bgclean/configs/default.yaml`` holds."""
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    for section in dataclasses.fields(config):
        lines.append(f"{section.name}:")
        for name, s in settings_of(getattr(config, section.name)):
            entry = f"  {name}: {yaml_value(getattr(getattr(config, section.name), name))}"
            line = f"{entry:<28} # {describe(s)}"
            if len(line) > width:  # a long description goes above its key, wrapped
                lines.extend(textwrap.wrap(describe(s), width, initial_indent="  # ", subsequent_indent="  # "))
                line = entry
            lines.append(line)
    return "\n".join(lines) + "\n"
