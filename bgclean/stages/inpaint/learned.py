"""The learned fill: our network on a crop around each hole, at its working size, optionally tiled and
in several passes."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from bgclean.ops import (
    resize,
    resize_bicubic,
    resize_known,
)
from bgclean.stages.inpaint.classical import classical_backend, context_box
from bgclean.stages.inpaint.config import InpaintConfig
from bgclean.stages.inpaint.registry import register_backend

if TYPE_CHECKING:
    from bgclean.models.inpaint import Generator


@register_backend("learned")
def _learned(cfg: InpaintConfig, device=None):
    """The trained inpainting network named by ``cfg.model`` (see ``LearnedFill``)."""
    return LearnedFill(cfg, torch.device(device or "cpu"))


class LearnedFill:
    """A trained inpainter applied hole by hole: each hole's box, grown by ``context``, is cropped,
    scaled so its long side is at most ``net_side`` (the network's resolution; ``at_side`` gives
    another), filled, scaled back and pasted inside the hole. Residual networks get a classical fill
    of the crop to correct (``cfg.residual_fill``: ``structure`` by default, lines continued across
    the hole over Telea).

    ``tiles=2``: the crop is cut into 2x2 overlapping quadrants, each filled on its own at up to
    ``net_side``, then blended with linear ramps across the overlaps (twice the resolution, no seam).
    ``passes=N``: after the first fill, fill again N-1 times with the hole eroded a little more
    each time, so the inner part is redrawn from a context that now includes the outer fill."""

    def __init__(self, cfg: InpaintConfig, device: torch.device, net: Generator | None = None):
        """Loads ``cfg.model`` from the weights store, or uses ``net`` (a generator from
        ``bgclean.models.inpaint``) as it is."""
        from bgclean.models.inpaint import ResidualInpainter

        if net is None:
            from bgclean.weights.store import load_model

            net, _ = load_model(cfg.model, device, half=False)
        self.cfg, self.device = cfg, device
        # Module.to takes memory_format at run time; torch's type stubs list only device and dtype
        self.net = net.eval().to(device).to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        self.residual = isinstance(net, ResidualInpainter)
        self.multiple = net.multiple
        self.side = cfg.net_side
        self.classical_fill = classical_backend(cfg.residual_fill, cfg.radius)  # what residual networks correct

    def at_side(self, side: int) -> LearnedFill:
        """The same network (shared, so fine-tuning one fine-tunes both) filling at ``side``."""
        view = copy.copy(self)
        view.side = side
        return view

    def __call__(self, frames: torch.Tensor, masks: torch.Tensor,
                 classical: torch.Tensor | None = None) -> torch.Tensor:
        """``classical``: the classical fill a residual network corrects, when the caller made it
        over the whole frame (B,3,H,W); else each crop's own at the network's size."""
        from bgclean.ops import mask_boxes

        out = frames.clone()
        h, w = frames.shape[2:]
        for i in range(frames.shape[0]):
            for y0, y1, x0, x1 in mask_boxes(masks[i, 0] > 0, 0):
                Y0, Y1, X0, X1 = context_box((y0, y1, x0, x1), self.cfg.context, 8, h, w)
                crop = out[i : i + 1, :, Y0:Y1, X0:X1]
                hole = masks[i : i + 1, :, Y0:Y1, X0:X1]
                base = None if classical is None else classical[i : i + 1, :, Y0:Y1, X0:X1]
                filled = self.fill_crop(crop, hole, base)
                out[i : i + 1, :, Y0:Y1, X0:X1] = torch.where(hole > 0, filled, crop)
        return out

    def fill_crop(self, crop: torch.Tensor, hole: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """(1,3,h,w) and (1,1,h,w) → (1,3,h,w) filled inside the hole, at native size; ``base``: a
        residual network's classical fill of the crop (first pass), else made here."""
        fill = self._tiled(crop, hole, base) if self.cfg.tiles == 2 else self._at_net_size(crop, hole, base)
        ch, cw = crop.shape[2:]
        current = hole
        for _ in range(1, self.cfg.passes):
            step = max(2, round(max(ch, cw) / 64))
            current = -F.max_pool2d(-current, 2 * step + 1, 1, step)  # erode
            if not (current > 0).any():
                break
            base = torch.where(hole > 0, fill, crop)
            refined = self._tiled(base, current) if self.cfg.tiles == 2 else self._at_net_size(base, current)
            fill = torch.where(current > 0, refined, fill)
        return fill

    def _tiled(self, crop: torch.Tensor, hole: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """2x2 quadrants overlapping by a quarter of the crop, filled separately, blended. A
        residual network's classical fill is made once over the whole crop and each tile corrects
        its part of it: a quadrant that sees little but the hole's dark surroundings would smear
        them across its part of the hole (places2 pair 4, the eagle in the sky)."""
        ch, cw = crop.shape[2:]
        th, tw = (ch * 5 + 7) // 8, (cw * 5 + 7) // 8  # tile = 5/8 of the side: 1/4 overlap
        acc = torch.zeros_like(crop)
        weight = torch.zeros_like(crop[:, :1])
        if self.residual and base is None:
            base = self.classical_fill(crop, hole)
        for ty in (0, ch - th):
            for tx in (0, cw - tw):
                c, m = crop[:, :, ty : ty + th, tx : tx + tw], hole[:, :, ty : ty + th, tx : tx + tw]
                b = None if base is None else base[:, :, ty : ty + th, tx : tx + tw]
                f = self._at_net_size(c, m, b) if (m > 0).any() else c
                ramp_y = _ramp(th, ty > 0, ty + th < ch, 2 * th - ch, crop.device)
                ramp_x = _ramp(tw, tx > 0, tx + tw < cw, 2 * tw - cw, crop.device)
                wgt = (ramp_y[:, None] * ramp_x[None, :])[None, None]
                acc[:, :, ty : ty + th, tx : tx + tw] += f * wgt
                weight[:, :, ty : ty + th, tx : tx + tw] += wgt
        return acc / weight.clamp_min(1e-6)

    @torch.inference_mode()
    def _at_net_size(self, crop: torch.Tensor, hole: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """The network's fill of one crop at up to ``net_side``, back at the crop's size.
        ``base``: a residual network's classical fill of the crop, when the caller made it over a
        larger region (tiles); else the classical fill of the crop at the network's size."""
        from bgclean.models.inpaint import network_input

        ch, cw = crop.shape[2:]
        s = min(1.0, self.side / max(ch, cw))
        nh, nw = max(8, round(ch * s)), max(8, round(cw * s))
        x = resize_known(crop, hole, (nh, nw))  # the hole's own pixels (a person) stay out of its ring
        m = (F.adaptive_max_pool2d(hole.float(), (nh, nw)) > 0).float()  # a hole never shrinks
        # padded up to one of a few sizes: torch and oneDNN keep ~0.35 MB of native memory per new
        # input shape, so with every crop its own size a long video's memory crept up (bench/memory.py)
        ph, pw = bucket(nh, self.multiple) - nh, bucket(nw, self.multiple) - nw
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate")
        mp = F.pad(m, (0, pw, 0, ph), mode="replicate")  # padding below a hole is hole, not its pixels
        fill = None
        if self.residual:
            # the classical fill sees the crop, not the padding: replicated edge pixels would be
            # known pixels to it, and streaks that the structure fill would take for lines
            if base is None:
                b = self.classical_fill(x, m)
            else:
                b = resize(base, (nh, nw)) if (nh, nw) != (ch, cw) else base
            fill = torch.where(mp > 0, F.pad(b, (0, pw, 0, ph), mode="replicate"), xp)
        y = self.net(network_input(xp.to(self.device), mp.to(self.device),
                                   None if fill is None else fill.to(self.device)))
        y = ((y.float() + 1) / 2).clamp(0, 1)[:, :, :nh, :nw].to(crop.device)
        y = torch.where(m > 0, y, x)
        if (nh, nw) != (ch, cw):
            y = resize_bicubic(y, (ch, cw)).clamp(0, 1)
        return y


def bucket(n: int, multiple: int, least: int = 64) -> int:
    """The size a side of ``n`` px is padded to: at least ``least``, then the next of four steps per
    octave (64, 80, 96, 112, 128, 160, ... 448, 512), a multiple of ``multiple``; at most 25% more."""
    n = max(n, least)
    step = max(multiple, 1 << max(0, (n - 1).bit_length() - 3))
    return -(-n // step) * step


def _ramp(n: int, fade_in: bool, fade_out: bool, overlap: int, device) -> torch.Tensor:
    """Blend weights along one tile side: linear over ``overlap`` px at the ends that meet another
    tile, flat elsewhere (never 0, so the sum of weights never vanishes)."""
    r = torch.ones(n, device=device)
    k = max(1, min(overlap, n))
    ramp = (torch.arange(k, device=device, dtype=torch.float32) + 0.5) / k
    if fade_in:
        r[:k] = torch.minimum(r[:k], ramp)
    if fade_out:
        r[n - k :] = torch.minimum(r[n - k :], ramp.flip(0))
    return r
