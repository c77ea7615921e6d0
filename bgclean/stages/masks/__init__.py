"""Turning soft person maps into hole masks: hysteresis, the previous frames, dilation.

``stage``   the stage (``MaskStage``)
``config``  its settings (``MaskConfig``)
"""

from typing import TYPE_CHECKING

from bgclean.lazy import lazy_exports
from bgclean.stages.masks.config import MaskConfig

if TYPE_CHECKING:
    from bgclean.stages.masks.stage import MaskStage, dilation_radius, person_mask

__getattr__ = lazy_exports(__name__, {
    "MaskStage": "stage",
    "dilation_radius": "stage",
    "person_mask": "stage",
})

__all__ = ["MaskConfig", "MaskStage", "dilation_radius", "person_mask"]
