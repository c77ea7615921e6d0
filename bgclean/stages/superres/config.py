"""The super-resolution stage's settings."""

from __future__ import annotations

from dataclasses import dataclass

from bgclean.settings import setting


@dataclass(frozen=True)
class SuperResConfig:
    """Real-ESRGAN: restores fills made below native size; ``upscale`` > 1 enlarges the whole output."""

    model: str = setting("realesrgan.animevideov3", "super-resolution weights (realesrgan.NAME or none), for "
                         "fills made below native size and for upscale: realesrgan.animevideov3 (fast), "
                         "realesrgan.x4plus (sharper, slow on a CPU), none (bicubic)",
                         rule=lambda v: v == "none" or v.startswith("realesrgan."),
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
