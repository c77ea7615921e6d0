"""Temporal propagation: fill holes with real background seen in other frames.

Camera motion between consecutive frames is a homography fitted to background corners (person
masks excluded) tracked to a fraction of a pixel by pyramidal Lucas-Kanade, starting from the last
step's motion, or from an ORB + MAGSAC match where that fits poorly. Motions that move no corner by
more than ``static_px`` are snapped to the identity, so a static camera copies pixels exactly,
without resampling. For each frame of a window, the frames of the window and of a history ring
buffer are warped into it (each pair's homography refit directly by tracked corners); inside the
hole, each pixel takes the trimmed mean of the candidates that saw it (a robust temporal statistic:
with a static camera it is a clean plate that follows slow lighting changes). What no frame saw
stays a hole for the inpainter.

``stage``      the stage (``PropagateStage``): history, camera path, sightings, the fill
``alignment``  homographies, dense-flow refinement, exposure matching
``sightings``  robust statistics over the frames that saw a pixel
``shadows``    holes grown by shadows; unchanged pixels given back to the frame
``invented``   a still camera's invented background, kept per pixel (no flicker)
``config``     its settings (``PropagateConfig``)
"""

from typing import TYPE_CHECKING

from bgclean.lazy import lazy_exports
from bgclean.stages.propagate.config import PropagateConfig

if TYPE_CHECKING:
    from bgclean.stages.propagate.alignment import (
        corner_shift,
        estimate_homography,
        exposure_gains,
        exposure_ring,
        good_corners,
        padded_box,
        refine_by_flow,
        track_refined,
    )
    from bgclean.stages.propagate.shadows import changed_pixels, shadow_candidates
    from bgclean.stages.propagate.sightings import nan_statistic, ring_error
    from bgclean.stages.propagate.stage import PropagateStage

__getattr__ = lazy_exports(__name__, {
    "PropagateStage": "stage",
    "changed_pixels": "shadows",
    "shadow_candidates": "shadows",
    "corner_shift": "alignment",
    "estimate_homography": "alignment",
    "exposure_gains": "alignment",
    "exposure_ring": "alignment",
    "good_corners": "alignment",
    "padded_box": "alignment",
    "refine_by_flow": "alignment",
    "track_refined": "alignment",
    "nan_statistic": "sightings",
    "ring_error": "sightings",
})

__all__ = ["PropagateConfig", "PropagateStage", "changed_pixels", "corner_shift", "estimate_homography",
           "exposure_gains", "exposure_ring", "good_corners", "nan_statistic", "padded_box", "refine_by_flow",
           "ring_error", "shadow_candidates", "track_refined"]
