"""Person segmentation: soft person maps for a window of frames.

``stage``     the stage (``SegmentStage``): boxes, tracks and a network inside each box
``people``    the rules applied to tracks: who is a person, scenery, lost people, animals
``detector``  YOLOX-nano decoding and box arithmetic
``tracking``  boxes tracked from frame to frame
``motion``    corner motion: the camera's, and a box's against its surroundings
``crops``     crop geometry and maps that follow a box between keyframes
``backends``  MediaPipe selfie, the person gate, Robust Video Matting, rembg
"""

from bgclean.stages.segment.backends import PersonGate
from bgclean.stages.segment.detector import PersonDetector, box_iou, decode_yolox, letterbox
from bgclean.stages.segment.stage import SegmentStage, segmenter_names
from bgclean.stages.segment.tracking import BoxTracker

__all__ = ["BoxTracker", "PersonDetector", "PersonGate", "SegmentStage", "box_iou", "decode_yolox", "letterbox",
           "segmenter_names"]
