"""bgclean: remove people from video and images and get the clean background back.

Public API: ``remove_people``, ``Pipeline``, ``PipelineConfig``, ``load_config``. Heavy modules
(torch, cv2) load on first use, so importing bgclean is instant.
"""

import os

# oneDNN (torch's CPU convolutions) keeps compiled primitives for every input shape it has seen, up
# to 1024 in each of two caches: a long video whose holes keep taking new shapes held ~45 MB more
# after frame 600 than after frame 100 (bench/memory.py). 64 entries cost no measurable time
# (bench/RESULTS.md, session 12). Read when the first convolution runs; a user's setting wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
os.environ.setdefault("LRU_CACHE_CAPACITY", "64")

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
