"""bgclean: remove people from video and images and get the clean background back.

Public API: ``remove_people``, ``Pipeline``, ``PipelineConfig``, ``load_config``. Heavy modules
(torch, cv2) load on first use, so importing bgclean is instant.
"""

__version__ = "0.5.0"

__all__ = ["remove_people", "Pipeline", "PipelineConfig", "load_config", "__version__"]


def __getattr__(name: str):
    if name in ("remove_people", "Pipeline"):
        from bgclean.pipeline import runner

        return getattr(runner, name)
    if name in ("PipelineConfig", "load_config"):
        from bgclean.pipeline import config

        return getattr(config, name)
    raise AttributeError(f"module 'bgclean' has no attribute {name!r}")
