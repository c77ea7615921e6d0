"""The inpainting stage's settings."""

from __future__ import annotations

from dataclasses import dataclass

from bgclean.settings import setting

INPAINT_BACKENDS = ("auto", "learned", "telea", "navier-stokes", "structure", "patchmatch", "hybrid")


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
