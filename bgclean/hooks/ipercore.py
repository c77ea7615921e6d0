"""iPERCore's background network and background inpaintor, replaced by bgclean.

How iPERCore (iPERDance/iPERCore) calls them, which this module keeps:

- **The generator's background network.** Every generator in ``iPERCore/models/networks/generators``
  holds it as the submodule ``bg_net`` and calls it in ``forward_bg``:
  ``bg_img = self.bg_net(bg_inputs.view(bs * ns, -1, h, w)).view(bs, ns, 3, h, w)``, where
  ``FlowComposition.make_bg_inputs`` built ``bg_inputs = cat([src_img * bg_mask, bg_mask], 1)``:
  ``bg_mask`` is 1 = **background** (the parsed person's complement, eroded by ``bg_ks``), the
  image is in [-1,1] and zero inside the hole, and the output is (N,3,H,W) in [-1,1].
  ``Imitator`` builds the generator, ``load_state_dict(ckpt, strict=False)`` and ``.to(device)``;
  personalisation trains the generator through the composited ``fake_bg``.
- **The preprocessing inpaintor.** ``Preprocessor`` builds it with
  ``build_background_inpaintors(name=..., cfg_or_path=..., device=device)`` and calls
  ``bg_img, _ = inpaintor.run_inpainting(img_path, mask, dilate_kernel_size=19, dilate_iter_num=3)``:
  the image a path or BGR uint8 (H,W,3), the mask a path or uint8 (H,W) with 255 = inpaint (any
  value above 0 is the person in its ``bg_replace`` step); the mask is dilated by an elliptical
  kernel ``dilate_iter_num`` times; the result is BGR uint8 (H,W,3) at the image's size, with the
  dilated mask.

To use bgclean in iPERCore:

1. In ``iPERCore/tools/background_inpaintors/__init__.py``, add a branch to
   ``build_background_inpaintors``::

       elif name == "bgclean":
           from bgclean.hooks.ipercore import BackgroundInpaintor
           inpaintors = BackgroundInpaintor(*args, **kwargs)

   and set ``inpaintor_name = "bgclean"`` under ``[Preprocess.BackgroundInpaintor]`` in the
   configuration (``inpaintor_cfg_path`` may then name a bgclean YAML configuration, or be empty).
2. In ``Imitator._create_generator`` (``iPERCore/models/imitator.py``), after the checkpoint is
   loaded, replace the background network::

       from bgclean.hooks.ipercore import BGNet
       net.bg_net = BGNet()
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bgclean.errors import InputError, ShapeError
from bgclean.hooks.stills import BackgroundModule, StillCleaner, check_kernel
from bgclean.pipeline.config import PipelineConfig, load_config


class BGNet(BackgroundModule):
    """``bg = bg_net(torch.cat([img * bg_mask, bg_mask], 1))``, a drop-in for iPERCore's ``bg_net``.

    Input (N,4,H,W): the image in [-1,1] (zero or anything inside the hole: those pixels are not
    read) and the mask, 1 = background (above 0.5), as iPERCore makes it (already eroded by its
    ``bg_ks``). Returns (N,3,H,W) in [-1,1], the input's dtype and device, contiguous (iPERCore
    views it as (bs, ns, 3, h, w)): bgclean's fill where the mask is 0, the given pixels bit for
    bit where it is 1. ``bg_ks``, ``config``, ``device`` and moving the module:
    ``bgclean.hooks.stills.BackgroundModule``. No parameters, an empty ``state_dict()``: the
    generator's checkpoint loads around it (``strict=False``, as iPERCore loads it).
    """

    def forward(self, bg_inputs: torch.Tensor) -> torch.Tensor:
        if not (isinstance(bg_inputs, torch.Tensor) and bg_inputs.ndim == 4 and bg_inputs.shape[1] == 4
                and bg_inputs.is_floating_point()):
            got = tuple(bg_inputs.shape) if isinstance(bg_inputs, torch.Tensor) else type(bg_inputs).__name__
            raise ShapeError(f"bg_inputs ([img * bg_mask, bg_mask]): expected a float tensor (B,4,H,W), got {got}")
        img, known = bg_inputs[:, :3], bg_inputs[:, 3:]
        return self.background(img, known.detach() <= 0.5).contiguous()


class BackgroundInpaintor:
    """iPERCore's background inpaintor interface: ``run_inpainting(img_or_path, mask_or_path,
    dilate_kernel_size=19, dilate_iter_num=3)`` returns ``(bg, dilated_mask)``, BGR uint8 (H,W,3)
    and uint8 (H,W) at the image's size (iPERCore's own inpaintor returns its mask at its working
    size; its callers discard it).

    ``cfg_or_path``: a bgclean YAML configuration (path), a dict of settings (``{"inpaint.backend":
    "telea"}``), a ``PipelineConfig``, or None for the defaults. ``device``: where bgclean runs.
    Outside the dilated mask the result is the input image, bit for bit.
    """

    def __init__(self, cfg_or_path: str | Path | dict | PipelineConfig | None = None,
                 device: str | torch.device = "cpu"):
        if isinstance(cfg_or_path, PipelineConfig):
            config = cfg_or_path
        elif isinstance(cfg_or_path, dict):
            config = load_config(None, cfg_or_path)
        else:
            config = load_config(cfg_or_path or None)
        self.device = torch.device(device)
        self.cleaner = StillCleaner(config)

    def run_inpainting(self, img_or_path: str | Path | np.ndarray, mask_or_path: str | Path | np.ndarray,
                       dilate_kernel_size: int = 19, dilate_iter_num: int = 3) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        check_kernel(dilate_kernel_size, "dilate_kernel_size")
        if dilate_iter_num < 0:
            raise ValueError(f"dilate_iter_num must be 0 or more, got {dilate_iter_num}")
        img = _read(img_or_path, cv2.IMREAD_COLOR, "image")
        mask = _read(mask_or_path, cv2.IMREAD_GRAYSCALE, "mask")
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise InputError(f"image: expected BGR uint8 (H,W,3), got {img.dtype} {img.shape}")
        if mask.ndim == 3 and mask.shape[2] == 1:
            mask = mask[..., 0]
        if mask.shape != img.shape[:2]:
            raise InputError(f"mask: expected {img.shape[:2]} like the image, got {mask.shape}")
        mask = mask.astype(np.uint8) if mask.dtype == bool else mask
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (dilate_kernel_size, dilate_kernel_size))
        dilated = cv2.dilate(np.ascontiguousarray(mask), kernel, iterations=dilate_iter_num)
        holes = dilated > 0
        if not holes.any():
            return img.copy(), dilated
        rgb = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1)[None].float() / 255
        fill, _ = self.cleaner(rgb, torch.from_numpy(holes)[None, None], self.device)
        filled = (fill[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()[..., ::-1]
        return np.where(holes[..., None], filled, img), dilated


def _read(src: str | Path | np.ndarray, flag: int, what: str) -> np.ndarray:
    """An array as given, or the image file ``src`` read with OpenCV ``flag``."""
    import cv2

    if isinstance(src, np.ndarray):
        return src
    path = Path(src)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist")
    out = cv2.imread(str(path), flag)
    if out is None:
        raise InputError(f"{what} {path} is not an image OpenCV can read")
    return out
