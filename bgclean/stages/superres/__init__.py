"""Super-resolution (Real-ESRGAN): restores fills made below native size, or enlarges the output.

``stage``   the stage (``SuperResStage``)
``config``  its settings (``SuperResConfig``)
"""

from typing import TYPE_CHECKING

from bgclean.lazy import lazy_exports
from bgclean.stages.superres.config import SuperResConfig

if TYPE_CHECKING:
    from bgclean.stages.superres.stage import SuperResStage, sr_model_names

__getattr__ = lazy_exports(__name__, {
    "SuperResStage": "stage",
    "sr_model_names": "stage",
})

__all__ = ["SuperResConfig", "SuperResStage", "sr_model_names"]
