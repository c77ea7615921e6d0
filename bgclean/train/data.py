"""Training samples: random crops of photos (scale, flip, colour jitter) with person-shaped holes.

A sample is (truth (3,S,S) float in [0,1], hole (1,S,S) float {0,1}, classical fill (3,S,S) in
[0,1]): the classical fill (``bgclean.classical``: Telea, Navier-Stokes or structure) is what residual
models correct.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from bgclean.classical import fill as classical_fill
from bgclean.errors import InputError
from bgclean.holes import HoleSampler

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def list_photos(folder: str | Path, exclude=()) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"training photos folder {str(folder)!r} does not exist")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.name not in set(exclude))
    if not photos:
        raise InputError(f"no training photos (*.jpg, *.png) in {folder}")
    return photos


def load_photo(path: Path, long_side: int = 1024) -> np.ndarray:
    """(H,W,3) uint8 RGB, scaled so the long side is at most ``long_side``."""
    import cv2
    from PIL import Image

    img = np.array(Image.open(path).convert("RGB"))
    s = long_side / max(img.shape[:2])
    if s < 1:
        img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return img


def video_backgrounds(path: str | Path, masks: str | Path, ids=(), every: int = 2, margin: int = 9):
    """Frames of a video (file or frame folder) with where people are: [(frame (H,W,3) uint8,
    person (H,W) bool, dilated by ``margin`` px)], every ``every``-th frame. The training crops
    are taken where no person is, so the video's real background becomes training data."""
    import cv2
    from PIL import Image

    from bgclean import io

    mask_files = sorted(Path(masks).glob("*.png"))
    out = []
    for frame, mask_file in zip(io.read_frames(io.probe(Path(path))), mask_files):
        if frame.index % every:
            continue
        a = np.array(Image.open(mask_file))
        a = a[..., 0] if a.ndim == 3 else a
        person = np.isin(a, ids) if ids else a > 0
        person = cv2.dilate(person.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)) > 0
        out.append((np.ascontiguousarray(frame.rgb[..., :3]), person))
    return out


class PhotoHoles:
    """An endless stream of samples from in-memory photos (loaded once at 1024 px long side) and,
    with ``videos`` (see ``video_backgrounds``), from the person-free parts of video frames
    (``video_share`` of the samples)."""

    def __init__(self, photos: list[Path], holes: HoleSampler, size: int, scale_range=(0.3, 1.0),
                 classical: str = "telea", jitter: bool = True, videos=(), video_share: float = 0.2):
        self.images = [load_photo(p) for p in photos]
        self.videos = [v for v in videos if min(v[0].shape[:2]) >= size]
        self.video_share = video_share if self.videos else 0.0
        self.holes, self.size, self.scale_range = holes, size, scale_range
        self.classical, self.jitter = classical, jitter

    def video_crop(self, rng: np.random.Generator) -> np.ndarray | None:
        for _ in range(30):
            frame, person = self.videos[int(rng.integers(len(self.videos)))]
            y = int(rng.integers(0, frame.shape[0] - self.size + 1))
            x = int(rng.integers(0, frame.shape[1] - self.size + 1))
            if not person[y : y + self.size, x : x + self.size].any():
                return frame[y : y + self.size, x : x + self.size]
        return None

    def crop(self, rng: np.random.Generator) -> np.ndarray:
        import cv2

        if self.video_share and rng.random() < self.video_share:
            found = self.video_crop(rng)
            if found is not None:
                return np.ascontiguousarray(found[:, ::-1] if rng.random() < 0.5 else found)
        img = self.images[int(rng.integers(len(self.images)))]
        # scale_range is relative to the 2048 px originals; images are held at 1024
        s = rng.uniform(*self.scale_range) * 2
        s = max(s, (self.size + 1) / min(img.shape[:2]))
        if abs(s - 1) > 1e-3:
            img = cv2.resize(img, (max(self.size, round(img.shape[1] * s)), max(self.size, round(img.shape[0] * s))),
                             interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        y = int(rng.integers(0, img.shape[0] - self.size + 1))
        x = int(rng.integers(0, img.shape[1] - self.size + 1))
        out = img[y : y + self.size, x : x + self.size]
        if rng.random() < 0.5:
            out = out[:, ::-1]
        out = np.ascontiguousarray(out)
        if self.jitter:  # brightness, contrast, saturation
            f = out.astype(np.float32)
            grey = f.mean(axis=2, keepdims=True)
            f = grey + (f - grey) * rng.uniform(0.8, 1.2)
            f = (f - f.mean()) * rng.uniform(0.85, 1.15) + f.mean() * rng.uniform(0.85, 1.15)
            out = np.clip(f, 0, 255).round().astype(np.uint8)
        return out

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        img = self.crop(rng)
        hole = self.holes(self.size, rng)
        return img, hole, classical_fill(img, hole, self.classical)

    def batch(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` samples: image, hole and classical fill as (N,3|1,H,W) float in [0,1]."""
        return as_float(self.batch_uint8(n, rng))

    def batch_uint8(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The same samples as uint8 tensors (a quarter of the bytes between data workers and the step)."""
        imgs, holes, fills = zip(*(self.sample(rng) for _ in range(n)))
        t = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
        return t(imgs), torch.from_numpy(np.stack(holes).astype(np.uint8))[:, None], t(fills)


def as_float(batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A ``batch_uint8`` as the network's floats (image and fill / 255, hole 0/1), on its device."""
    img, hole, fill = batch
    return img.float() / 255, hole.float(), fill.float() / 255
