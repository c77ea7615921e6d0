"""Process-wide memory tuning for a process that runs bgclean and nothing else: opt-in.

Three settings that keep a long run's memory flat (bench/RESULTS.md, "Memory"; why each one, below).
They change the whole process (its allocator, its oneDNN caches), so a library must not set them
behind its embedder's back: ``bgclean`` (the command) and its batch workers call ``tune_process()``
first; a program that embeds bgclean may call it too, or not. Without it bgclean works the same,
with a peak that can creep up over a long video.
"""

from __future__ import annotations

import os
import sys

_TUNED = False
_TRIM = None  # glibc malloc_trim, once tuned


def tune_process() -> None:
    """Tune this process for bgclean (idempotent; settings the user made in the environment win):

    - oneDNN keeps compiled primitives for every input shape it has seen, up to 1024 in each of two
      caches, so a video whose holes keep taking new shapes grows; 64 entries each cost no
      measurable time. Read at the first convolution, so call this before building a pipeline.
    - glibc raises its mmap threshold to the largest block freed so far (up to 32 MB), after which
      frame-sized temporaries come from the heap, where each stage leaves holes the next fills only
      in part; the peak then depends on the order of earlier allocations. Serving every block of
      2 MB or more from its own mapping returns it to the OS when freed.
    - ``release_freed_memory()`` (called between stages and windows) hands freed heap pages back.
    """
    global _TUNED, _TRIM
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
    os.environ.setdefault("LRU_CACHE_CAPACITY", "64")
    if _TUNED:
        return
    _TUNED = True
    libc = _glibc()
    if libc is None:
        return
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(-3, 2 << 20)  # M_MMAP_THRESHOLD
    _TRIM = libc.malloc_trim


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS, in a tuned process (glibc only); else nothing."""
    if _TRIM is not None:
        _TRIM(0)


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        _ = (libc.mallopt, libc.malloc_trim)  # musl has neither: its allocator maps large blocks anyway
        return libc
    except (OSError, AttributeError):
        return None
