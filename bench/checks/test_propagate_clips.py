"""Propagation on the tennis and bmx-trees clips: a moving camera's shadow, grass upscaled to 720p,
trunks and a wall the rider passes. Run: python -m pytest bench/checks --data PATH."""

import numpy as np
import torch
from conftest import clip, gt_person_mask

from bgclean.pipeline.config import PropagateConfig
from bgclean.stages.propagate import PropagateStage


def test_moving_camera_shadow_on_the_tennis_court_joins_the_mask():
    """tennis: a panning camera and a low sun; the player's shadow is a thin dark line reaching far
    across the court, and the clip's truth includes it. Segmentation alone misses it; the moving
    camera shadow test (default) finds it, without masking the court around it."""
    from PIL import Image

    from bgclean.ops import to_tensor
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline

    root = clip("videos/tennis")
    n = 24
    frames = [np.array(Image.open(root / "frames" / f"{i:05d}.png").convert("RGB")) for i in range(n)]
    truth = np.stack([gt_person_mask("tennis", i) for i in range(n)])
    pipe = Pipeline(load_config(None, {"segment.backend": "yolox+u2net.small", "runtime.device": "cpu"}))
    assert pipe.config.propagate.shadows == "always"
    windows = [to_tensor(frames[s : s + 8], pipe.device) for s in range(0, n, 8)]
    segmented = [pipe.hole_masks(x) for x in windows]
    found = {}
    for mode in ("static", "always"):
        stage = PropagateStage(PropagateConfig(shadows=mode))
        holes = [stage(x, m, dilation=5)[2][:, 0].numpy() > 0 for x, m in zip(windows, segmented)]
        found[mode] = np.concatenate(holes)[8:]  # the first window has seen little of the court
    t = truth[8:]
    recall = {k: (v & t).sum() / t.sum() for k, v in found.items()}
    assert recall["static"] < 0.75  # the moving camera: no background model, shadow missed
    assert recall["always"] > 0.85
    assert found["always"].sum() < 2.2 * t.sum()  # player, racket and shadow, dilated: about 1.9x


def _propagated_upscaled(small: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """``small`` frames segmented as they are (windows of 8), then frames and masks resized to
    ``size`` (a clip at 720p) and propagated: the final holes (T,H,W) bool at ``size``."""
    import cv2

    from bgclean.ops import to_tensor
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline

    n = len(small)
    pipe = Pipeline(load_config(None, {"segment.backend": "yolox+u2net.small", "runtime.device": "cpu"}))
    segmented = np.concatenate([pipe.hole_masks(to_tensor(small[s : s + 8], pipe.device))[:, 0].numpy()
                                for s in range(0, n, 8)])
    frames = [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in small]
    masks = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) for m in segmented])
    stage = PropagateStage(PropagateConfig())
    return np.concatenate([stage(to_tensor(frames[s : s + 8], torch.device("cpu")),
                                 torch.from_numpy(masks[s : s + 8, None]), dilation=15)[2][:, 0].numpy() > 0
                           for s in range(0, n, 8)])


def test_moving_camera_shadow_is_found_at_720p_too():
    """The same court at three times the pixels (tennis frames 16-31 resized to 1296x720, the
    segmented masks with them): the shadow test's reaches scale with the frame. With the 12 px
    closing set on 240 px frames, the shadow line (3x as wide) was no darker than its
    surroundings in frames 23-24 (recall 0.65 / 0.69 there; the pipeline's on the clip at
    1280x720 0.969 against 0.985 at 432x240)."""
    import cv2
    from PIL import Image

    root = clip("videos/tennis")
    first, n, size = 16, 16, (1296, 720)
    small = [np.array(Image.open(root / "frames" / f"{first + i:05d}.png").convert("RGB")) for i in range(n)]
    truth = np.stack([cv2.resize(gt_person_mask("tennis", first + i).astype(np.uint8), size,
                                 interpolation=cv2.INTER_NEAREST) > 0 for i in range(n)])
    found = _propagated_upscaled(small, size)
    recall = (found & truth).sum(axis=(1, 2)) / truth.sum(axis=(1, 2))
    assert recall[4:].min() > 0.9, recall.round(2)  # the first frames have seen little of the court
    assert found.sum() < 2.2 * truth.sum()


def _bmx(first: int, n: int) -> tuple[list[np.ndarray], np.ndarray]:
    """bmx-trees frames ``first``..``first + n - 1`` (RGB) and the rider's ground truth (n,H,W) bool."""
    from PIL import Image

    from bgclean import io

    frames = [f.rgb.copy() for f in io.read_frames(io.probe(clip("videos/bmx-trees/frames")))
              if first <= f.index < first + n]
    truth = np.stack([np.array(Image.open(clip(f"videos/bmx-trees/masks/{first + i:05d}.png"))) > 0
                      for i in range(n)])
    return frames, truth


def test_grass_upscaled_to_720p_is_not_taken_for_a_shadow():
    """bmx-trees frames 8-23 resized to 1280x720 (the rider's segmented masks with them): the
    moving-camera shadow test judges the ground's texture at the 240 px scale its gradient
    threshold was set on. Per pixel, upscaled grass has a third of its gradient, so it passed as
    smooth ground and the whole grass band below the rider joined his hole in frame 18 (the
    pipeline at 1280x720: 10.6x the truth's area in that frame, 2.4x at 432x240)."""
    import cv2

    first, n, size = 8, 16, (1280, 720)
    small, truth = _bmx(first, n)
    truth = np.stack([cv2.resize(t.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 for t in truth])
    found = _propagated_upscaled(small, size)
    area = found.sum(axis=(1, 2)) / truth.sum(axis=(1, 2))
    assert area.max() < 4, area.round(1)
    assert (found & truth).sum() > 0.95 * truth.sum()


def test_bmx_trees_holes_keep_the_trunk_and_wall_the_rider_passes():
    """bmx-trees frames 8-23: a panning camera follows the rider past tree trunks and a painted
    wall; the segmented masks (the rider's crop map, dilated) take trunks and wall with him. After
    propagation the hole keeps only what differs from the background other frames saw there, and
    the dilation around it: under half the area, the rider's pixels still inside but for a few
    thin rims as dark as the trunk behind them (frames 16-23, once a window has seen the wall)."""
    from bgclean.ops import to_tensor
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline

    first, n = 8, 16
    frames, truth = _bmx(first, n)
    pipe = Pipeline(load_config(None, {"segment.backend": "yolox+u2net.small", "runtime.device": "cpu"}))
    level = pipe.config.propagate.unchanged_tolerance
    assert level > 0
    windows = [to_tensor(frames[s : s + 8], pipe.device) for s in range(0, n, 8)]
    segmented = [pipe.hole_masks(x) for x in windows]
    found = {}
    for unchanged in (0.0, level):
        stage = PropagateStage(PropagateConfig(unchanged_tolerance=unchanged))
        found[unchanged] = np.concatenate([stage(x, m, dilation=5)[2][:, 0].numpy() > 0
                                           for x, m in zip(windows, segmented)])[8:]
    t = truth[8:]
    recall = {k: (v & t).sum() / t.sum() for k, v in found.items()}
    area = {k: v.sum() / t.sum() for k, v in found.items()}
    assert np.array_equal(found[level] & ~found[0.0], np.zeros_like(t))  # the hole only shrinks
    assert area[level] < 0.55 * area[0.0], area  # 5.68 -> 2.54 of the truth's area
    assert recall[level] > recall[0.0] - 0.03, recall  # 0.979 -> 0.956: thin rims as dark as the trunk
