"""YOLOX-nano: letterboxing, decoding its grid output into person, animal and belonging boxes, and box arithmetic."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


def letterbox(rgb: np.ndarray, side: int = 416) -> tuple[np.ndarray, float]:
    """YOLOX input: (1,3,side,side) float32 BGR 0-255, the image scaled into the top-left corner and
    the rest filled with 114. Returns it and the scale factor."""
    import cv2

    h, w = rgb.shape[:2]
    r = min(side / h, side / w)
    out = np.full((side, side, 3), 114, np.uint8)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    out[:nh, :nw] = cv2.resize(rgb[:, :, ::-1], (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out.transpose(2, 0, 1)[None].astype(np.float32), r


_COCO_ANIMALS = np.arange(14, 24)  # bird, cat, dog, horse, sheep, cow, elephant, bear, zebra, giraffe


# what people carry or ride: bicycle, motorcycle, backpack, umbrella, handbag, suitcase, skis,
# snowboard, baseball bat, baseball glove, skateboard, surfboard, tennis racket (not balls or kites:
# they fly free of the person)
_COCO_BELONGINGS = np.array([1, 3, 24, 25, 26, 28, 30, 31, 34, 35, 36, 37, 38])


# of those, the ones whose box keeps its width while part of it is hidden (not swung or turned:
# umbrella, skis, bat, glove, racket)
_COCO_RIGID = np.array([1, 3, 24, 26, 28, 31, 36, 37])


# of those, what people ride: bicycle, motorcycle, skis, snowboard, skateboard, surfboard
_COCO_RIDDEN = np.array([1, 3, 30, 31, 36, 37])


def decode_yolox(raw: np.ndarray, ratio: float, score_min: float, side: int = 416,
                 nms_iou: float = 0.45, animals: bool = False, belongings: bool = False, rigid_things: bool = False):
    """Person boxes from YOLOX's raw (N,85) grid output: (K,4) x0,y0,x1,y1 in frame pixels and
    (K,) scores = objectness x person class, after NMS. With ``animals=True`` also the animal boxes
    (any COCO animal class winning its anchor) and their scores: ``(people, scores, animals, scores)``;
    with ``belongings=True`` as well, then the boxes of things people carry or ride
    (``_COCO_BELONGINGS`` winning over person and animal) and their scores (a 6-tuple); with
    ``rigid_things`` also whether each thing's class is rigid (``_COCO_RIGID``) and whether it is
    ridden (``_COCO_RIDDEN``; an 8-tuple)."""
    grids, strides = [], []
    for step in (8, 16, 32):
        n = side // step
        yv, xv = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack([xv, yv], -1).reshape(-1, 2))
        strides.append(np.full((n * n, 1), step))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    xy = (raw[:, :2] + grid) * stride
    wh = np.exp(raw[:, 2:4]) * stride
    all_boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1) / ratio
    person = raw[:, 5]
    animal = raw[:, 5 + _COCO_ANIMALS].max(axis=1)
    # the nano model often calls a dog a person; drop anchors where an animal class wins
    people = _nms(all_boxes, raw[:, 4] * person, (raw[:, 4] * person >= score_min) & (person >= animal), nms_iou)
    if not animals:
        return people
    beasts = _nms(all_boxes, raw[:, 4] * animal, (raw[:, 4] * animal >= score_min) & (animal > person), nms_iou)
    if not belongings:
        return (*people, *beasts)
    thing = raw[:, 5 + _COCO_BELONGINGS].max(axis=1)
    score = raw[:, 4] * thing
    idx = _nms_index(all_boxes, score, (score >= score_min) & (thing > person) & (thing > animal), nms_iou)
    things = _picked(all_boxes, score, idx)
    if not rigid_things:
        return (*people, *beasts, *things)
    # the class winning each kept anchor
    cls = _COCO_BELONGINGS[raw[idx][:, 5 + _COCO_BELONGINGS].argmax(axis=1)]
    return (*people, *beasts, *things, np.isin(cls, _COCO_RIGID), np.isin(cls, _COCO_RIDDEN))


def _nms(boxes: np.ndarray, scores: np.ndarray, keep: np.ndarray, nms_iou: float):
    return _picked(boxes, scores, _nms_index(boxes, scores, keep, nms_iou))


def _picked(boxes: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The boxes (K,4) and scores (K,) at ``idx``, float32."""
    return boxes[idx].astype(np.float32).reshape(-1, 4), scores[idx].astype(np.float32)


def _nms_index(boxes: np.ndarray, scores: np.ndarray, keep: np.ndarray, nms_iou: float) -> np.ndarray:
    """Indices (into ``boxes``) of the ``keep`` boxes left by non-maximum suppression."""
    import cv2

    where = np.flatnonzero(keep)
    if len(where) == 0:
        return where
    kept = boxes[where].astype(np.float32)
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in kept]
    idx = np.array(cv2.dnn.NMSBoxes(xywh, scores[where].astype(np.float32).tolist(), 0.0, nms_iou),
                   dtype=int).reshape(-1)
    return where[idx]


class PersonDetector:
    """YOLOX-nano person boxes on one (H,W,3) uint8 RGB frame: through onnxruntime on a CPU (or
    with its CUDA provider, where the user installed onnxruntime-gpu), else on a CUDA device the
    same graph run by torch (``OnnxGraph``) on the GPU. ``runtime`` forces one: onnxruntime | torch."""

    def __init__(self, device: torch.device, score_min: float = 0.1, runtime: str | None = None):
        import onnxruntime as ort

        from bgclean.weights.registry import REGISTRY
        from bgclean.weights.store import resolve

        path = resolve(REGISTRY.get("yolox.nano"))
        self.score_min = score_min
        self.device = torch.device(device)
        ort_cuda = self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers()
        self.runtime = runtime or ("torch" if self.device.type == "cuda" and not ort_cuda else "onnxruntime")
        if self.runtime == "torch":
            from bgclean.models.onnx_graph import OnnxGraph

            self.net = OnnxGraph(path).to(self.device).eval()
            return
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if ort_cuda else ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.input = self.session.get_inputs()[0].name

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The network's raw output (N,3549,85) for letterboxed input ``x`` (N,3,416,416)."""
        if self.runtime == "torch":
            with torch.inference_mode():
                return self.net(torch.from_numpy(x).to(self.device)).float().cpu().numpy()
        return self.session.run(None, {self.input: x})[0]

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes and scores."""
        found = self.detect(rgb)
        return found[0], found[1]

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, ...]:
        """Person boxes and scores, animal boxes and scores, then boxes and scores of things people
        carry or ride and whether each is rigid (``decode_yolox``)."""
        return self.detect_many([rgb])[0]

    def detect_many(self, images) -> list[tuple[np.ndarray, ...]]:
        """``detect`` for each of ``images``: in one network call on torch (a GPU's batch), a frame
        at a time on onnxruntime (whose graph takes one frame; nor are the inputs held together)."""
        if self.runtime == "torch":
            boxed = [letterbox(rgb) for rgb in images]
            raws: np.ndarray | list = self.raw(np.concatenate([x for x, _ in boxed])) if boxed else []
            found: Iterable[tuple[np.ndarray, float]] = zip(raws, (ratio for _, ratio in boxed))
        else:  # lazily: one frame's input at a time
            found = ((self.raw(x)[0], ratio) for x, ratio in map(letterbox, images))
        return [decode_yolox(raw, ratio, self.score_min, animals=True, belongings=True, rigid_things=True)
                for raw, ratio in found]

    def look(self, rgb: np.ndarray, box, grow: float, score_min: float = 0.02):
        """The detector on a square crop around ``box`` (grown by ``grow``), scaled up to its input:
        (people (N,4), their scores, animals (M,4), their scores), boxes in frame coordinates."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = box
        side = max(x1 - x0, y1 - y0) * (1 + grow)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        X0, Y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        X1, Y1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
        if X1 - X0 < 2 or Y1 - Y0 < 2:
            empty = np.zeros((0, 4), np.float32)
            return empty, np.zeros(0, np.float32), empty, np.zeros(0, np.float32)
        x, ratio = letterbox(np.ascontiguousarray(rgb[Y0:Y1, X0:X1]))
        raw = self.raw(x)[0]
        people, people_scores, animals, animal_scores = decode_yolox(raw, ratio, score_min, animals=True)
        shift = np.array([X0, Y0, X0, Y0], np.float32)
        return people + shift, people_scores, animals + shift, animal_scores

    def verify(self, rgb: np.ndarray, box, others=(), grow: float = 0.5) -> tuple[float, float]:
        """A second, zoomed-in look (``look``) at ``box``. Returns the best person score and the best
        animal score of boxes matching ``box`` (IoU >= 0.3), people counted only where they match
        ``box`` better than any of ``others`` (the people already known). At 416 px on a whole frame
        the nano model calls a small dog a person with scores up to 0.6; seen up close, the same dog
        scores under 0.15 as a person and higher as an animal, while people score over 0.75."""
        people, people_scores, animals, animal_scores = self.look(rgb, box, grow)
        # the woman beside the dog is found in the dog's crop too: she is not the dog
        person = best_match(box, people, people_scores, rivals=others)
        animal = best_match(box, animals, animal_scores)
        return (0.0 if person is None else float(people_scores[person]),
                0.0 if animal is None else float(animal_scores[animal]))


def best_match(box, found: np.ndarray, scores: np.ndarray, rivals=(), min_iou: float = 0.3) -> int | None:
    """Index of the highest-scoring of the ``found`` (N,4) boxes that match ``box`` (IoU >=
    ``min_iou``) better than any of ``rivals`` (or overlap every rival by less than 0.5); None when
    none does."""
    if len(found) == 0:
        return None
    iou = box_iou(np.array([box], np.float32), found)[0]
    match = iou >= min_iou
    if len(rivals):
        rival = box_iou(np.array(rivals, np.float32).reshape(-1, 4), found).max(axis=0)
        match &= (rival < 0.5) | (iou > rival)
    return int(np.argmax(np.where(match, scores, -np.inf))) if match.any() else None


def _area(boxes: np.ndarray) -> np.ndarray:
    """Areas of (N,4) x0,y0,x1,y1 boxes."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M) intersection areas of (N,4) and (M,4) x0,y0,x1,y1 boxes."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)


def _inside_share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M): the share of each of the (N,4) boxes ``a`` that lies inside each of the (M,4) ``b``."""
    return _intersection(a, b) / np.maximum(_area(a)[:, None], 1e-6)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of (N,4) and (M,4) x0,y0,x1,y1 boxes."""
    inter = _intersection(a, b)
    return inter / np.maximum(_area(a)[:, None] + _area(b)[None, :] - inter, 1e-6)
