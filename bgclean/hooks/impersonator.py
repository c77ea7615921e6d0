"""impersonator's background network, replaced by bgclean.

How impersonator (svip-lab/impersonator) calls its background network, which this module keeps:

- ``models/imitator.py``, ``swapper.py``, ``viewer.py`` build it with
  ``self.bgnet = self._create_bgnet().cuda()`` (and ``net.eval()``), so it is a ``torch.nn.Module``;
- ``personalize()`` (under ``torch.no_grad()``) makes the body mask from the SMPL condition map's
  background channel, eroded by ``bg_ks`` (13 by default, 25 in the demo):
  ``bg_mask = morph(cond[:, -1:], ks=bg_ks, mode='erode'); body_mask = 1 - bg_mask``, or takes it
  from its person detector, and calls ``bg = self.bgnet(img, masks=body_mask, only_x=True)``;
  ``img`` (N,3,H,W) in [-1,1]; ``body_mask`` (N,1,H,W), 1 = body, **already dilated**;
- with ``only_x=False`` the inpainter returns ``(coarse, x, composite)``; ``only_out=True`` the
  composite alone;
- ``post_personalize()`` composites ``bg`` into the generator's outputs
  (``mask * bg + (1 - mask) * color``) and trains the generator with ``loss.backward()``.

To use bgclean in impersonator, replace the body of ``_create_bgnet`` in ``models/imitator.py``
(and ``swapper.py``, ``viewer.py``)::

    def _create_bgnet(self):
        from bgclean.hooks.impersonator import BGNet
        return BGNet()

and run with any ``--bg_model`` other than ``ORIGINAL`` (the value is no longer read as a path).
"""

from __future__ import annotations

import torch

from bgclean.hooks.stills import BackgroundModule
from bgclean.ops import check_frames, check_masks


class BGNet(BackgroundModule):
    """``bg = bgnet(img, masks=body_mask, only_x=True)``, impersonator's background network.

    ``img``: (N,3,H,W) float in [-1,1]. ``masks``: (N,1,H,W), 1 = body (above 0.5), as impersonator
    makes it (already grown by its ``bg_ks``); or None to find the people automatically. Returns the
    background (N,3,H,W) in [-1,1], ``img``'s dtype and device: inside the mask bgclean's fill,
    outside it ``img`` itself, bit for bit. ``only_out=True`` returns the same; with neither flag,
    ``(coarse, x, composite)`` as impersonator's inpainter does (bgclean has no separate coarse
    pass: the three are one tensor). Outputs are ordinary tensors, usable in a loss.

    ``bg_ks``: grow the given mask by a further ``bg_ks`` x ``bg_ks`` square (impersonator's own
    kernel); default none, since impersonator has already grown it. ``config`` (a bgclean
    ``PipelineConfig``), ``device`` and moving the module: ``bgclean.hooks.stills.BackgroundModule``.
    No parameters, an empty ``state_dict()``.
    """

    def forward(self, imgs: torch.Tensor, masks: torch.Tensor | None = None, only_out: bool = False,
                only_x: bool = False):
        check_frames(imgs, "imgs")
        if masks is not None:
            check_masks(masks, imgs)
        bg = self.background(imgs, None if masks is None else masks.detach() > 0.5)
        if only_out or only_x:
            return bg
        return bg, bg, bg
