"""How many frames a run may hold at once, from the frame size and the memory it may use.

A run's memory is a fixed part (the models, the interpreter) plus a part per pixel for every frame
of the window (the frames, their masks, propagation's aligned sources and the fill, in float) and a
smaller part per pixel for every frame of propagation's history (float16 RGB and a visibility map).
The three parts are fitted to measured peaks (bench/RESULTS.md, "Memory": 768x576 and 3840x2160,
short and long runs) and rounded up. At 3840x2160 the default window and history take about 11 GB,
more than many machines can spare, so the window, and below a few frames the history, shrink to
fit; at ordinary sizes nothing changes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

FIXED_BYTES = 0.4e9  # models, interpreter and libraries
WINDOW_BYTES_PER_PIXEL = 60  # each frame of the window, every stage's copies and temporaries together
HISTORY_BYTES_PER_PIXEL = 12  # each history frame: float16 RGB, its visibility, grey and what its warps hold
SHARE_OF_AVAILABLE = 0.75  # of the memory available at start, when no ceiling is set
MIN_WINDOW = 4  # below this the history shrinks first: the window carries the nearest sources


@dataclass(frozen=True)
class MemoryPlan:
    """The window and history one run uses, and the estimate they were chosen by (bytes)."""

    window: int
    history: int
    estimate: float
    budget: float | None

    def lowered_from(self, window: int, history: int) -> bool:
        return self.window < window or self.history < history


def estimate_bytes(width: int, height: int, window: int, history: int) -> float:
    """Peak resident memory of a run at this frame size, window and history."""
    pixels = width * height
    return FIXED_BYTES + pixels * (WINDOW_BYTES_PER_PIXEL * window + HISTORY_BYTES_PER_PIXEL * history)


def available_bytes() -> float | None:
    """Memory the system can give without swapping (Linux ``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def plan(width: int, height: int, window: int, history: int, budget: float | None) -> MemoryPlan:
    """The largest window (then history) up to the configured ones whose estimate fits ``budget``
    bytes; the configured ones when ``budget`` is None. Never below one frame and no history: a
    run that cannot fit even then still runs, at its smallest."""
    if budget is None:
        return MemoryPlan(window, history, estimate_bytes(width, height, window, history), None)
    w, h = window, history
    while estimate_bytes(width, height, w, h) > budget and w > min(MIN_WINDOW, window):
        w -= 1
    while estimate_bytes(width, height, w, h) > budget and h > 0:
        h = max(0, h - max(1, h // 4))
    while estimate_bytes(width, height, w, h) > budget and w > 1:
        w -= 1
    return MemoryPlan(w, h, estimate_bytes(width, height, w, h), budget)


def budget_bytes(ceiling_gb: float) -> float | None:
    """The run's ceiling: ``ceiling_gb`` when set (> 0), else a share of the memory available now."""
    if ceiling_gb > 0:
        return ceiling_gb * 1e9
    available = available_bytes()
    return None if available is None else available * SHARE_OF_AVAILABLE
