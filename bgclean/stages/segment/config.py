"""The segmentation stage's settings."""

from __future__ import annotations

from dataclasses import dataclass

from bgclean.settings import setting

SEGMENTER_KINDS = ("yolox+u2net.full", "yolox+u2net.small", "u2net.full", "u2net.small", "yolox+rvm", "rvm",
                   "yolox+mediapipe.selfie", "mediapipe.selfie")


def _segmenter_ok(name: str) -> bool:
    return name in SEGMENTER_KINDS or (name.startswith("rembg:") and len(name) > len("rembg:"))


def _multiple_of_32(value: int) -> bool:
    return value % 32 == 0


@dataclass(frozen=True)
class SegmentConfig:
    """Person segmentation: which people are found, and how their maps are made."""

    backend: str = setting(
        "yolox+u2net.small", "person segmenter: yolox+NAME finds person boxes, then NAME segments inside "
        "each; NAME alone segments whole frames; NAME is u2net.small, u2net.full, mediapipe.selfie or rvm "
        "(GPL-3.0 weights, opt-in); rembg:SESSION any rembg session (needs the rembg package)",
        rule=_segmenter_ok, rule_doc="one of " + " | ".join(SEGMENTER_KINDS) + " | rembg:SESSION",
        flag="--segmenter")
    resolution: int = setting(320, "whole-frame U²-Net input side, px", min=32, rule=_multiple_of_32,
                              rule_doc="a multiple of 32")
    batch_size: int = setting(0, "frames or person crops per segmentation call (0: 2 on CPU, 16 on GPU)", min=0,
                              flag="--batch-size")
    half: bool = setting(True, "fp16 on CUDA (ignored on CPU)")
    det_threshold: float = setting(0.35, "person score that starts a track", min=0, max=1, above=True, below=True)
    det_keep: float = setting(0.15, "lower person score that keeps a track going (hysteresis)",
                              min=0, max=1, above=True, below=True)
    animal_threshold: float = setting(0.35, "animal score that starts an animal's track (kept out of a "
                                      "person's mask beside it)", min=0, max=1, above=True, below=True)
    animal_carry: int = setting(2, "frames a lost animal stays kept out, moving at its last velocity (0: off)",
                                min=0, max=30)
    carry: int = setting(8, "frames a lost person stays masked, moving at its last velocity", min=0)
    crop_resolution: int = setting(160, "largest U²-Net input side for each person crop, px", min=32,
                                   rule=_multiple_of_32, rule_doc="a multiple of 32")
    box_margin: float = setting(0.15, "person box grown by this fraction of its size on each side", min=0, max=1)
    verify_below: float = setting(0.75, "tracks scoring below this get a zoomed-in second look (0: never)",
                                  min=0, max=1)
    verify_every: int = setting(6, "frames between second looks at a weak track", min=1)
    every: int = setting(0, "segment each person every N frames; between, her map follows her box "
                         "(0: 1 on GPU, 3 on CPU)", min=0, max=8)
    fresh: int = setting(1, "with every > 1, people given a new map each frame at least (oldest maps first)",
                         min=0)
    belongings_score: float = setting(0.3, "detector score above which a bag, racket, bike... touching a "
                                      "person joins her mask (0: off)", min=0, max=1, below=True)
    scenery: bool = setting(True, "a 'person' moving with the scene while the camera moves (a painted figure) "
                            "stays; a lost person's box follows her corners")
    person_gate: bool = setting(True, "where an animal's box overlaps a person's, MediaPipe selfie says "
                                "which pixels are hers")
    detector_runtime: str = setting("auto", "YOLOX runs on: auto (onnxruntime on a CPU, torch on a CUDA "
                                    "device unless onnxruntime-gpu is installed) | onnxruntime | torch",
                                    choices=("auto", "onnxruntime", "torch"))

    def check(self) -> list[str]:
        if self.det_keep > self.det_threshold:
            return [f"det_keep ({self.det_keep}) must not exceed det_threshold ({self.det_threshold})"]
        return []
