"""bgclean: remove people from video and images and get the clean background back.

Public API: ``remove_people``, ``Pipeline``, ``PipelineConfig``, ``load_config``. Heavy modules
(torch, cv2) load on first use, so importing bgclean is instant.
"""

from typing import TYPE_CHECKING

from bgclean.lazy import lazy_exports

__version__ = "0.5.0"

if TYPE_CHECKING:
    from bgclean.pipeline.config import PipelineConfig, load_config
    from bgclean.pipeline.runner import Pipeline, remove_people

__getattr__ = lazy_exports(__name__, {
    "remove_people": "pipeline.runner",
    "Pipeline": "pipeline.runner",
    "PipelineConfig": "pipeline.config",
    "load_config": "pipeline.config",
})

__all__ = ["Pipeline", "PipelineConfig", "__version__", "load_config", "remove_people"]
