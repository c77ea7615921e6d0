"""Filling the holes, and pasting the fill back inside the mask only.

Backends are registered by name in ``BACKENDS``; each maps frames and hole masks to a full-frame fill
(values outside the holes are ignored). The stage composites with a feathered edge that lies inside
the mask, so outside the mask the output is the input exactly.

``stage``      the stage (``InpaintStage``): picks a backend per video, pastes inside the mask
``registry``   ``BACKENDS`` and ``register_backend``
``classical``  telea, navier-stokes, structure, patchmatch
``learned``    our network on a crop around each hole (``LearnedFill``)
``hybrid``     a base fill's structure with guided texture; lines kept
``texture``    guided texture: blocks from around the hole chosen by a base fill's colours
``finetune``   fine-tuning the learned fill on the video's own background
``config``     its settings (``InpaintConfig``)
"""

from typing import TYPE_CHECKING

from bgclean.lazy import lazy_exports
from bgclean.stages.inpaint.config import INPAINT_BACKENDS, InpaintConfig

if TYPE_CHECKING:
    from bgclean.stages.inpaint.hybrid import line_detail
    from bgclean.stages.inpaint.learned import LearnedFill
    from bgclean.stages.inpaint.registry import BACKENDS, register_backend
    from bgclean.stages.inpaint.stage import InpaintStage
    from bgclean.stages.inpaint.texture import guided_detail

__getattr__ = lazy_exports(__name__, {
    "InpaintStage": "stage",
    "LearnedFill": "learned",
    "guided_detail": "texture",
    "line_detail": "hybrid",
    "BACKENDS": "stage",  # the stage imports every backend module, which registers them
    "register_backend": "registry",
})

__all__ = ["BACKENDS", "INPAINT_BACKENDS", "InpaintConfig", "InpaintStage", "LearnedFill", "guided_detail",
           "line_detail", "register_backend"]
