"""The propagation stage's settings."""

from __future__ import annotations

from dataclasses import dataclass

from bgclean.settings import setting


@dataclass(frozen=True)
class PropagateConfig:
    """Copying real background seen in other frames into the holes (before inpainting)."""

    enabled: bool = setting(True, "copy real background seen in other frames into the holes")
    history: int = setting(30, "past frames kept as sources, besides the window (at most: lowered to fit "
                           "runtime.memory_gb)", min=0, max=1000)
    max_features: int = setting(1500, "ORB features per frame where tracked corners fail", min=1)
    static_px: float = setting(0.5, "camera motions moving no corner more than this (px) count as still", min=0)
    nearest: int = setting(5, "each pixel's value from its nearest-in-time sightings (0: all)", min=0)
    trim: float = setting(0.2, "their trimmed mean: this share dropped at each end (0: their median)",
                          min=0, max=0.5)
    sources: int = setting(8, "moving camera: frames at most that fill each frame, its nearest then spread "
                           "(0: all)", min=0)
    refine: str = setting("flow", "align warped frames by dense flow (DIS) after the homography: flow | off",
                          choices=("flow", "off"))
    exposure: bool = setting(True, "match each warped frame's exposure to the current one's around the hole")
    shadows: str = setting("always", "grow holes by shadows: always (still and moving cameras) | static "
                           "(still only) | off", choices=("always", "static", "off"))
    shadow_reach: float = setting(0.15, "how far from the person to look for shadows, fraction of the "
                                  "shorter side", min=0, max=1, above=True)
    shadow_diff: float = setting(0.08, "difference from the background (0-1, any channel) that joins a "
                                 "shadow to the hole", min=0, max=1, above=True, below=True)
    unchanged_tolerance: float = setting(
        0.045, "hole pixels whose filled background matches the frame within this (0-1, any channel), "
        "beyond the dilation from any that differ, keep the frame's own pixels (0: off)", min=0, max=1, below=True)
