"""Person segmentation: soft person maps for a window of frames.

``stage``     the stage (``SegmentStage``): boxes, tracks and a network inside each box
``people``    the rules applied to tracks: who is a person, scenery, lost people, animals
``detector``  YOLOX-nano decoding and box arithmetic
``tracking``  boxes tracked from frame to frame
``motion``    corner motion: the camera's, and a box's against its surroundings
``crops``     crop geometry and maps that follow a box between keyframes
``backends``  MediaPipe selfie, the person gate, Robust Video Matting, rembg
``config``    its settings (``SegmentConfig``)
"""

from typing import TYPE_CHECKING

from bgclean.lazy import lazy_exports
from bgclean.stages.segment.config import SegmentConfig

if TYPE_CHECKING:
    from bgclean.stages.segment.backends import PersonGate
    from bgclean.stages.segment.detector import (
        PersonDetector,
        box_iou,
        decode_yolox,
        letterbox,
    )
    from bgclean.stages.segment.stage import SegmentStage, segmenter_names
    from bgclean.stages.segment.tracking import BoxTracker

__getattr__ = lazy_exports(__name__, {
    "SegmentStage": "stage",
    "segmenter_names": "stage",
    "PersonGate": "backends",
    "PersonDetector": "detector",
    "box_iou": "detector",
    "decode_yolox": "detector",
    "letterbox": "detector",
    "BoxTracker": "tracking",
})

__all__ = ["BoxTracker", "PersonDetector", "PersonGate", "SegmentConfig", "SegmentStage", "box_iou",
           "decode_yolox", "letterbox", "segmenter_names"]
