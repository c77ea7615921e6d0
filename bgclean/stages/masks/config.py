"""The mask stage's settings."""

from __future__ import annotations

from dataclasses import dataclass

from bgclean.settings import setting


@dataclass(frozen=True)
class MaskConfig:
    """Turning soft person maps into hole masks."""

    threshold: float = setting(0.5, "probability above which a pixel is surely person",
                               min=0, max=1, above=True, below=True)
    threshold_low: float = setting(0.25, "weaker pixels join when connected to sure ones (hysteresis)",
                                   min=0, max=1, above=True)
    temporal: int = setting(1, "also mask where the previous N frames had a person", min=0, max=10)
    dilate: float = setting(0.02, "dilation radius, fraction of the frame's shorter side", min=0, max=0.5,
                            below=True)
    dilate_px: int | None = setting(None, "dilation radius in px, when set (overrides dilate; a radius "
                                    "beyond a frame's size would mask all of it)", min=0, max=2000)
    fill_holes: bool = setting(True, "fill holes enclosed by a person's mask")
    min_area: float = setting(0.0005, "drop components smaller than this fraction of the frame", min=0, max=1,
                              below=True)

    def check(self) -> list[str]:
        if self.threshold_low > self.threshold:
            return [f"threshold_low ({self.threshold_low}) must not exceed threshold ({self.threshold})"]
        return []
