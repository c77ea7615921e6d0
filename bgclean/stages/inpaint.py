"""Filling the holes, and pasting the fill back inside the mask only.

Backends are registered by name in ``BACKENDS``; each maps frames and hole masks to a full-frame fill
(values outside the holes are ignored). The stage composites with a feathered edge that lies inside
the mask, so outside the mask the output is the input exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import copy
import logging
import math

import numpy as np
import torch

from bgclean.errors import InputError, ShapeError
import torch.nn.functional as F

from bgclean.ops import (check_frames, check_masks, composite, feather_alpha, gaussian_blur, mask_boxes, resize,
                         resize_bicubic)
from bgclean.pipeline.config import InpaintConfig

log = logging.getLogger(__name__)

#: name -> factory(cfg, device) -> fill(frames, masks) -> fill
BACKENDS: dict[str, Callable[..., Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {}


def register_backend(name: str):
    def deco(factory):
        if name in BACKENDS:
            raise ValueError(f"inpaint backend {name!r} is already registered")
        BACKENDS[name] = factory
        return factory

    return deco


def _context_box(box: tuple[int, int, int, int], share: float, least: int, h: int, w: int) -> tuple[int, int, int, int]:
    """A hole's box (y0, y1, x0, x1) grown on each side by ``share`` of its size (at least
    ``least`` px), clipped to an (h, w) frame: the crop a fill works in, the hole with its context."""
    y0, y1, x0, x1 = box
    my, mx = max(least, int((y1 - y0) * share)), max(least, int((x1 - x0) * share))
    return max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx)


def _per_image(fill_image: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """Batch fill from an image function: (H,W,3) uint8 RGB and (H,W) bool hole → (H,W,3) uint8.
    Frames without a hole are returned as they are."""

    def fill(frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        out = []
        for f, m in zip(frames, masks):
            img, hole = _image_and_hole(f, m)
            out.append(_tensor_of(fill_image(img, hole) if hole.any() else img))
        return torch.stack(out).to(frames.device)

    return fill


def _image_and_hole(frame: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(3,H,W) in [0,1] and (1,H,W) → (H,W,3) uint8 RGB, contiguous, and (H,W) bool."""
    img = (frame.permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
    return np.ascontiguousarray(img), mask[0].cpu().numpy() > 0


def _tensor_of(img: np.ndarray) -> torch.Tensor:
    """(H,W,3) uint8 → (3,H,W) float in [0,1], on the CPU."""
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255.0


def _classical(method: str, radius: int):
    from bgclean import classical

    return _per_image(lambda img, hole: classical.fill(img, hole, method, radius))


@register_backend("telea")
def _telea(cfg: InpaintConfig, device=None):
    return _classical("telea", cfg.radius)


@register_backend("navier-stokes")
def _navier_stokes(cfg: InpaintConfig, device=None):
    return _classical("navier-stokes", cfg.radius)


@register_backend("structure")
def _structure(cfg: InpaintConfig, device=None):
    """Telea, with lines that cross the hole (a horizon, a shore) continued across it
    (``bgclean.classical.structure_fill``)."""
    return _classical("structure", cfg.radius)


@register_backend("patchmatch")
def _patchmatch(cfg: InpaintConfig, device=None):
    """PatchMatch exemplar fill (pypatchmatch): copies real texture from around each hole. Each
    hole is filled from a crop of twice its size, so patches come from its own surroundings."""
    try:
        from patchmatch import patch_match
    except ImportError:
        raise InputError("--inpainter patchmatch needs the pypatchmatch package: pip install pypatchmatch") from None
    from bgclean.ops import mask_boxes

    def fill_image(img: np.ndarray, hole: np.ndarray) -> np.ndarray:
        res = img.copy()
        hole_u8 = hole.astype(np.uint8) * 255
        h, w = hole.shape
        for y0, y1, x0, x1 in mask_boxes(torch.from_numpy(hole), 0):
            Y0, Y1, X0, X1 = _context_box((y0, y1, x0, x1), 0.5, 8, h, w)
            patch_match.set_random_seed(0)  # the same input gives the same fill
            crop = patch_match.inpaint(np.ascontiguousarray(res[Y0:Y1, X0:X1]),
                                       np.ascontiguousarray(hole_u8[Y0:Y1, X0:X1]), patch_size=cfg.patch_size)
            inside = hole[Y0:Y1, X0:X1]
            res[Y0:Y1, X0:X1][inside] = crop[inside]
        return res

    return _per_image(fill_image)


@register_backend("hybrid")
def _hybrid(cfg: InpaintConfig, device=None, base=None):
    """Structure from a smooth fill, texture from elsewhere: the low frequencies of
    ``cfg.hybrid_base`` (telea, or the learned network: faithful colours and shapes, but flat) plus
    high frequencies (split by a Gaussian of ``cfg.hybrid_sigma`` px) from ``cfg.hybrid_detail``:
    ``guided`` (``guided_detail``: blocks copied from around the hole where the base's colours and
    the surroundings' texture strength say they belong; fast) or ``patchmatch`` (real texture, but
    it can copy the wrong structure; 10x slower). With the learned base on the structure fill and
    ``cfg.hybrid_line_share`` > 0 (guided), that fill is made once over the whole image, the
    network corrects it, and where its lines carry weight their edges are kept (``line_detail``)."""
    from bgclean.ops import transfer_detail

    if base is None:
        base = LearnedFill(cfg, torch.device(device or "cpu")) if cfg.hybrid_base == "learned" else _telea(cfg)
    if isinstance(base, LearnedFill):
        # only the base's low frequencies are kept, so the network needs less than its full side:
        # 384 px instead of 512 cost 0.1 dB of low-pass PSNR at most and a fifth of the time
        base = base.at_side(cfg.hybrid_net_side)
    # where the structure fill continues lines across the hole (a bench's slats), their edges are
    # kept: copied blocks of texture would cross them with streaks
    lines = (cfg.hybrid_line_share > 0 and isinstance(base, LearnedFill) and base.residual
             and cfg.residual_fill == "structure")
    if cfg.hybrid_detail == "guided":
        def fill(frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
            if lines:
                structure, weight = _structure_and_weight(frames, masks, cfg.radius)
                smooth = base(frames, masks, classical=structure)  # one structure fill for both
            else:
                smooth = base(frames, masks)
            out = torch.stack([guided_detail(f, m[0] > 0, b, cfg.hybrid_sigma)
                               for f, m, b in zip(frames, masks, smooth)])
            if lines:
                out = line_detail(out, structure, weight, masks, cfg.hybrid_sigma, cfg.hybrid_line_share)
            return out
    else:
        patchmatch = _patchmatch(cfg)

        def fill(frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
            return transfer_detail(patchmatch(frames, masks), base(frames, masks), cfg.hybrid_sigma)

    fill.base = base
    return fill


def _structure_and_weight(frames: torch.Tensor, masks: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The structure fill of each frame (B,3,H,W) and the weight its lines had over Telea (B,1,H,W)."""
    from bgclean import classical

    fills, weights = [], []
    for f, m in zip(frames, masks):
        img, hole = _image_and_hole(f, m)
        if hole.any():
            img, w = classical.structure_fill(img, hole, classical.fill(img, hole, "telea", radius), return_weight=True)
        else:
            w = np.zeros(hole.shape, np.float32)
        fills.append(_tensor_of(img))
        weights.append(torch.from_numpy(w)[None])
    return torch.stack(fills).to(frames.device), torch.stack(weights).to(frames.device)


_LINE_LOW = 0.5  # where lines carry weight w, the low frequencies go this x w of the way to theirs


def line_detail(textured: torch.Tensor, structure: torch.Tensor, weight: torch.Tensor, masks: torch.Tensor,
                sigma: float, share: float) -> torch.Tensor:
    """Inside the hole, where the structure fill's lines carry weight w (B,1,H,W): the lines' high
    frequencies (above a Gaussian of ``sigma`` px) added at w, ``share`` x w of the copied
    texture's taken away (not all of it: the lines' fill is smooth along them), and the low
    frequencies moved ``_LINE_LOW`` x w of the way to the lines' (the network darkens a long line's
    middle). All (B,3,H,W) in [0,1]."""
    from bgclean.ops import gaussian_blur

    low = lambda x: gaussian_blur(x, sigma)  # noqa: E731
    out = textured + weight * (structure - low(structure) - share * (textured - low(textured))
                               + _LINE_LOW * (low(structure) - low(textured)))
    return torch.where(masks > 0, out.clamp_(0, 1), textured)


# guided detail (``_synthesize``), chosen on the held-out photos of bench/inpaint.py
_BLOCK = 16  # block side, px (blocks overlap by half)
_SOURCE_STEP = 8  # sources are blocks on a grid of this step, px
_CELL = 8  # a block is matched by its colours averaged over cells of this side, px
_ENERGY_WEIGHT = 8.0  # weight of texture energy against colour in the match
_COHERENCE = 3.0  # cost of a change of source between neighbouring blocks, in typical best distances
_COHERENCE_ROUNDS = 4
_MAX_SOURCES = 16384  # at most this many source blocks per hole (an even sample beyond)
_TARGET_CHUNK = 1024  # targets matched at a time: their distances to every source are held at once


def guided_detail(image: torch.Tensor, hole: torch.Tensor, base: torch.Tensor, sigma: float = 4.0,
                  top_k: int = 8, seed: int = 0) -> torch.Tensor:
    """Texture for a smooth fill: ``image`` (3,H,W) in [0,1], its ``hole`` (H,W) bool and a smooth
    ``base`` fill (3,H,W) → (3,H,W): the base's low frequencies (Gaussian of ``sigma`` px) inside
    the hole plus high frequencies copied in blocks from the known pixels around it, picked where
    the base's colours and the surroundings' texture strength say they belong. Each hole is worked
    on in a crop of twice its size, so the texture comes from its own surroundings. Outside the
    hole the result is ``image``. The same input gives the same output (``seed``)."""
    out = torch.where(hole[None], base, image)
    h, w = hole.shape
    gen = torch.Generator().manual_seed(seed)
    for y0, y1, x0, x1 in mask_boxes(hole, 0):
        Y0, Y1, X0, X1 = _context_box((y0, y1, x0, x1), 0.5, 2 * _BLOCK, h, w)
        if min(Y1 - Y0, X1 - X0) < 2 * _BLOCK:
            continue  # too small an image for a block and its source: the base alone
        crop = out[:, Y0:Y1, X0:X1]
        m = hole[Y0:Y1, X0:X1].float()
        out[:, Y0:Y1, X0:X1] = torch.where(m[None] > 0, _synthesize(crop, m, sigma, top_k, gen), crop)
    return out.clamp_(0, 1)


def _spread(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """(C,H,W) values known where ``known`` (1,H,W) is 1, spread smoothly into the rest
    (push-pull: averages of the known values over ever coarser cells fill the unknown ones)."""
    if bool((known > 0).all()) or min(values.shape[1:]) < 2:
        return values
    num = F.avg_pool2d((values * known)[None], 2, ceil_mode=True)[0]
    den = F.avg_pool2d(known[None], 2, ceil_mode=True)[0]
    coarse = _spread(num / den.clamp_min(1e-6), (den > 0).float())
    up = F.interpolate(coarse[None], size=values.shape[1:], mode="bilinear", align_corners=False)[0]
    return torch.where(known > 0, values, up)


def _synthesize(crop: torch.Tensor, m: torch.Tensor, sigma: float, top_k: int, gen: torch.Generator) -> torch.Tensor:
    """One crop (3,h,w) with its hole (h,w) in {0,1}: the crop's low frequencies (the base fill
    inside the hole) plus high frequencies copied block by block from the known part. Blocks of
    ``_BLOCK`` px on a grid of half that step are matched by their colours averaged over
    ``_CELL`` px cells and by their texture energy (mean |high frequencies|), which inside the hole
    is guessed from its surroundings; each block takes one of its ``top_k`` best sources at random,
    then neighbours are pulled towards copying from the same place (``_cohere``); the blocks are
    blended with Hann windows and a gain that keeps one block's texture strength (``_blend_gain``)."""
    P, S, G, C = _BLOCK, _BLOCK // 2, _SOURCE_STEP, _CELL
    # the cells' and sources' grids line up with the targets' (every offset a multiple of G)
    assert P % C == 0 and C % G == 0 and C % S == 0 and S % G == 0
    dev = crop.device
    ew = _ENERGY_WEIGHT
    _, ch, cw = crop.shape
    low = gaussian_blur(crop[None], sigma)[0]
    high = crop - low
    known = 1 - m
    energy = gaussian_blur(high.abs().mean(0, keepdim=True)[None], sigma)[0]
    guess = torch.where(m[None] > 0, _spread(energy, known[None]), energy)
    # sources: blocks on a G px grid whose block, grown by the blur's reach, holds no hole pixel
    reach = int(math.ceil(2 * sigma))
    grown = F.pad(m[None, None], (reach,) * 4)
    grown = F.max_pool2d(F.max_pool2d(grown, (P + 2 * reach, 1), (G, 1)), (1, P + 2 * reach), (1, G))
    ok = grown[0, 0] == 0  # (ny, nx)
    if not ok.any():
        return crop
    ny, nx = ok.shape
    # a block's descriptor: its 2x2 cells of C px (colour, and weighted texture energy)
    q = P // C  # cells per side
    cells = F.avg_pool2d(torch.cat([low, ew * energy], 0)[None], C, G)[0]  # a cell every G px
    src_desc = _block_cells(cells, C // G, q, ny, nx)
    valid = torch.nonzero(ok.flatten())[:, 0]
    # targets: a grid of step S starting S before the crop, so every pixel lies under 2x2 blocks
    pad = S
    ph, pw = (-(ch + 2 * pad - P)) % S, (-(cw + 2 * pad - P)) % S
    tp = F.pad(torch.cat([low, ew * guess], 0)[None], (pad, pad + pw, pad, pad + ph), mode="replicate")
    mp = F.pad(m[None, None], (pad, pad + pw, pad, pad + ph))
    need_map = F.max_pool2d(F.max_pool2d(mp, (P, 1), (S, 1)), (1, P), (1, S))[0, 0] > 0  # blocks touching the hole
    ty, tx = need_map.shape
    tcells = F.avg_pool2d(tp, C, S)[0]
    t_desc = _block_cells(tcells, C // S, q, ty, tx).flatten(1)[:, need_map.flatten()]  # (D, Tn)
    if valid.numel() > _MAX_SOURCES:  # a big photo's hole: an even sample of its sources
        valid = valid[torch.linspace(0, valid.numel() - 1, _MAX_SOURCES, device=dev).round().long()]
    src_desc = src_desc.flatten(1)[:, valid]  # (D, Ns)
    src_norm = (src_desc**2).sum(0)
    k = min(top_k, valid.numel())
    chosen, best_d = [], []
    for c in range(0, t_desc.shape[1], _TARGET_CHUNK):  # distances a chunk of targets at a time
        part = t_desc[:, c : c + _TARGET_CHUNK]
        d = torch.addmm(src_norm[None], part.T, src_desc, alpha=-2).add_((part**2).sum(0)[:, None])
        best, nearest = d.topk(k, dim=1, largest=False)
        pick = torch.randint(0, k, (best.shape[0],), generator=gen).to(dev)  # the generator lives on the CPU
        chosen.append(nearest[torch.arange(best.shape[0], device=dev), pick])
        best_d.append(best[:, 0])
        del d
    chosen = torch.cat(chosen)
    # a change of source between neighbours costs _COHERENCE times the typical best distance
    lam = _COHERENCE * float(torch.cat(best_d).median())
    chosen = _cohere(chosen, t_desc, src_desc, valid, need_map, (ny, nx), S, G, pad, lam, _COHERENCE_ROUNDS)
    gy, gx = torch.nonzero(need_map, as_tuple=True)
    sy, sx = chosen // nx * G, chosen % nx * G  # each target's source, px
    win = torch.sin(math.pi * (torch.arange(P, dtype=torch.float32, device=dev) + 0.5) / P) ** 2  # Hann
    r = torch.arange(P, device=dev)
    window = win[:, None] * win[None, :]
    H, W = ch + 2 * pad + ph, cw + 2 * pad + pw
    synth = torch.zeros(3, H * W, device=dev)
    for c in range(0, gy.numel(), _TARGET_CHUNK):  # blocks added into place a chunk at a time
        ty0, tx0 = gy[c : c + _TARGET_CHUNK] * S, gx[c : c + _TARGET_CHUNK] * S  # in the padded crop
        by, bx = sy[c : c + _TARGET_CHUNK, None] + r, sx[c : c + _TARGET_CHUNK, None] + r
        picked = high[:, by[:, :, None], bx[:, None, :]] * window  # (3, n, P, P)
        at = ((ty0[:, None] + r)[:, :, None] * W + (tx0[:, None] + r)[:, None, :]).flatten()
        synth.index_add_(1, at, picked.flatten(1))
    synth = synth.view(3, H, W)
    offset = torch.zeros(ty, tx, dtype=torch.long, device=dev)
    offset[gy, gx] = (sy - (gy * S - pad)) * (4 * (H + W)) + (sx - (gx * S - pad))  # one id per offset
    synth = synth * _blend_gain(offset, need_map, win)
    return low + synth[:, pad:pad + ch, pad:pad + cw]


def _block_cells(cells: torch.Tensor, step: int, q: int, n_y: int, n_x: int) -> torch.Tensor:
    """Block descriptors from a grid of cell averages (C,h,w), one cell every ``step``-th of a cell:
    for each of the (n_y, n_x) blocks, its q x q cells stacked → (q*q*C, n_y, n_x)."""
    return torch.cat([cells[:, i * step : i * step + n_y, j * step : j * step + n_x]
                      for i in range(q) for j in range(q)])


def _blend_gain(offset: torch.Tensor, need: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """Per pixel, the gain that gives blended blocks the texture strength of one block. Each pixel
    lies under 2x2 blocks (``win``: their 1-D window, 2x the grid step); blocks with the same offset
    copy the same pixels (their weights add before squaring), others are taken as uncorrelated
    (their squared weights add): gain = 1 / sqrt(sum over offsets of (sum of weights)^2). Without
    it, four unrelated blocks meeting at a corner keep half the texture's amplitude."""
    ty, tx = need.shape
    S = win.numel() // 2
    ids = F.pad(offset, (1, 1, 1, 1))
    on = F.pad(need.float(), (1, 1, 1, 1))
    late, early = win[S:], win[:S]  # a pixel in the second half of its block / in the first half
    parts = []  # the four blocks over each cell (ty + 1, tx + 1): top-left, top-right, bottom-left, bottom-right
    for dy, wy in ((0, late), (1, early)):
        for dx, wx in ((0, late), (1, early)):
            parts.append((ids[dy : dy + ty + 1, dx : dx + tx + 1], on[dy : dy + ty + 1, dx : dx + tx + 1],
                          wy[:, None] * wx[None, :]))
    q = torch.zeros(ty + 1, tx + 1, S, S, device=win.device)
    for i, (id_i, on_i, w_i) in enumerate(parts):
        q += on_i[:, :, None, None] * w_i**2
        for id_j, on_j, w_j in parts[i + 1 :]:
            same = (on_i * on_j * (id_i == id_j).float())[:, :, None, None]
            q += 2 * same * w_i * w_j
    gain = torch.where(q > 0, q.clamp_min(1e-6).rsqrt(), torch.zeros_like(q))
    return gain.permute(0, 2, 1, 3).reshape((ty + 1) * S, (tx + 1) * S)


def _cohere(chosen: torch.Tensor, t_desc: torch.Tensor, src_desc: torch.Tensor, valid: torch.Tensor,
            need_map: torch.Tensor, src_shape: tuple[int, int], S: int, G: int, pad: int, lam: float,
            iters: int) -> torch.Tensor:
    """Each target block (columns of ``t_desc``, the True cells of ``need_map`` in order; its source
    ``chosen``, a column of ``src_desc`` whose grid index is ``valid[column]``) may take a
    neighbour's offset (source minus target position) instead of its own where that costs less: its
    descriptor distance plus ``lam`` for each of its four neighbours whose offset differs. Updated
    in a checkerboard, ``iters`` rounds. Returns each target's source as a grid index."""
    ty, tx = need_map.shape
    ny, nx = src_shape
    tn, dev = int(need_map.sum()), t_desc.device
    index = torch.full((ty, tx), -1, dtype=torch.long, device=dev)
    index[need_map] = torch.arange(tn, device=dev)
    gy, gx = torch.nonzero(need_map, as_tuple=True)
    py, px = gy * S - pad, gx * S - pad  # targets' positions in the crop, px
    column = torch.full((ny * nx,), -1, dtype=torch.long, device=dev)
    column[valid] = torch.arange(valid.numel(), device=dev)  # grid index -> column of src_desc (-1: none)
    grid = valid[chosen]
    sy, sx = grid // nx * G, grid % nx * G
    oy, ox = sy - py, sx - px  # offsets, px
    parity = (gy + gx) % 2
    rows = torch.arange(tn, device=dev)
    nbrs = []
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        yy, xx = gy + dy, gx + dx
        inside = (yy >= 0) & (yy < ty) & (xx >= 0) & (xx < tx)
        j = torch.full((tn,), -1, dtype=torch.long, device=dev)
        j[inside] = index[yy[inside], xx[inside]]
        nbrs.append(j)
    nbrs = torch.stack(nbrs, 1)  # (tn, 4), -1 = no neighbour in the hole
    has = nbrs >= 0
    nj = nbrs.clamp_min(0)
    for it in range(iters * 2):
        cand_y = torch.cat([oy[:, None], oy[nj]], 1)  # (tn, 5)
        cand_x = torch.cat([ox[:, None], ox[nj]], 1)
        qy, qx = py[:, None] + cand_y, px[:, None] + cand_x
        inb = (qy >= 0) & (qy < ny * G) & (qx >= 0) & (qx < nx * G)
        col = column[(qy.clamp(0, (ny - 1) * G) // G) * nx + qx.clamp(0, (nx - 1) * G) // G]
        inb &= col >= 0
        cost = ((t_desc.T[:, None, :] - src_desc.T[col.clamp_min(0)]) ** 2).sum(2)  # (tn, 5)
        cost = torch.where(inb, cost, torch.full_like(cost, float("inf")))
        differ = (cand_y[:, :, None] != oy[nj][:, None, :]) | (cand_x[:, :, None] != ox[nj][:, None, :])
        differ &= has[:, None, :]
        cost = cost + lam * differ.sum(2)
        pick = cost.argmin(1)
        upd = parity == (it % 2)
        oy = torch.where(upd, cand_y[rows, pick], oy)
        ox = torch.where(upd, cand_x[rows, pick], ox)
    return ((py + oy) // G) * nx + (px + ox) // G


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

    def __init__(self, cfg: InpaintConfig, device: torch.device, net: torch.nn.Module | None = None):
        """Loads ``cfg.model`` from the weights store, or uses ``net`` (a generator from
        ``bgclean.models.inpaint``) as it is."""
        from bgclean.models.inpaint import ResidualInpainter

        if net is None:
            from bgclean.weights.store import load_model

            net, _ = load_model(cfg.model, device, half=False)
        self.cfg, self.device = cfg, device
        self.net = net.eval().to(device).to(memory_format=torch.contiguous_format)
        self.residual = isinstance(net, ResidualInpainter)
        self.multiple = net.multiple
        self.side = cfg.net_side
        self._classical = _classical(cfg.residual_fill, cfg.radius)  # what residual networks correct

    def at_side(self, side: int) -> "LearnedFill":
        """The same network (shared, so fine-tuning one fine-tunes both) filling at ``side``."""
        view = copy.copy(self)
        view.side = side
        return view

    def __call__(self, frames: torch.Tensor, masks: torch.Tensor, classical: torch.Tensor | None = None) -> torch.Tensor:
        """``classical``: the classical fill a residual network corrects, when the caller made it
        over the whole frame (B,3,H,W); else each crop's own at the network's size."""
        from bgclean.ops import mask_boxes

        out = frames.clone()
        h, w = frames.shape[2:]
        for i in range(frames.shape[0]):
            for y0, y1, x0, x1 in mask_boxes(masks[i, 0] > 0, 0):
                Y0, Y1, X0, X1 = _context_box((y0, y1, x0, x1), self.cfg.context, 8, h, w)
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
        for k in range(1, self.cfg.passes):
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
            base = self._classical(crop, hole)
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
        x = resize(crop, (nh, nw)) if (nh, nw) != (ch, cw) else crop
        m = (F.adaptive_max_pool2d(hole.float(), (nh, nw)) > 0).float()  # a hole never shrinks
        # padded up to one of a few sizes: torch and oneDNN keep ~0.35 MB of native memory per new
        # input shape, so with every crop its own size a long video's memory crept up (bench/memory.py)
        ph, pw = _bucket(nh, self.multiple) - nh, _bucket(nw, self.multiple) - nw
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate")
        mp = F.pad(m, (0, pw, 0, ph), mode="replicate")  # padding below a hole is hole, not its pixels
        fill = None
        if self.residual:
            # the classical fill sees the crop, not the padding: replicated edge pixels would be
            # known pixels to it, and streaks that the structure fill would take for lines
            if base is None:
                b = self._classical(x, m)
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

    def finetune(self, frames: torch.Tensor, masks: torch.Tensor, steps: int, size: int = 128,
                 batch: int = 4, lr: float = 5e-5, seed: int = 0, pool: int = 0) -> list[float]:
        """Adapt the network to this video: ``steps`` of L1 training on crops of ``frames`` (B,3,H,W)
        that no person touches, with holes shaped like this video's own person ``masks`` (B,1,H,W).
        ``pool`` > 0 draws that many (crop, hole) samples once and trains on them only (batches are
        the whole pool when it is no larger than ``batch``). Returns the loss per step. Meant for a
        GPU; it works, slowly, on a CPU."""
        from bgclean.models.inpaint import network_input
        from bgclean.train.holes import place_silhouette
        import cv2

        rng = np.random.default_rng(seed)
        h, w = frames.shape[2:]
        size = min(size, h, w) // self.multiple * self.multiple
        if size < self.multiple or steps <= 0:
            return []
        person = F.max_pool2d(masks.float(), 9, 1, 4) > 0
        sils = []
        for m in masks[:, 0].cpu().numpy() > 0:
            n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8))
            sils += [labels[y : y + hh, x : x + ww] == k for k, (x, y, ww, hh, a) in enumerate(stats) if k and a >= 50]
        clean = []  # crop corners free of people
        for _ in range(200):
            b, y, x = int(rng.integers(frames.shape[0])), int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
            if not person[b, 0, y : y + size, x : x + size].any():
                clean.append((b, y, x))
        if not sils or not clean:
            log.warning("fine-tuning skipped: no person-free %dpx crop or no person mask in these frames", size)
            return []

        def draw() -> tuple[torch.Tensor, torch.Tensor]:
            b, y, x = clean[int(rng.integers(len(clean)))]
            hole = place_silhouette(sils[int(rng.integers(len(sils)))], size, rng.uniform(0.05, 0.3), rng, 2)
            return frames[b, :, y : y + size, x : x + size].float(), torch.from_numpy(hole)[None].float()

        samples = [draw() for _ in range(pool)]
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.net.train()
        losses = []
        with torch.enable_grad():
            for _ in range(steps):
                if not samples:
                    picked = [draw() for _ in range(batch)]
                elif len(samples) <= batch:
                    picked = samples
                else:
                    picked = [samples[int(i)] for i in rng.choice(len(samples), batch, replace=False)]
                img = torch.stack([p[0] for p in picked])
                hole = torch.stack([p[1] for p in picked])
                fill = self._classical(img, hole) if self.residual else None
                x = network_input(img.to(self.device), hole.to(self.device),
                                  None if fill is None else fill.to(self.device))
                out = (self.net(x).float() + 1) / 2
                loss = ((out - img.to(self.device)).abs() * hole.to(self.device)).sum() / hole.sum().clamp_min(1) / 3
                opt.zero_grad(set_to_none=True)
                if lr > 0:
                    loss.backward()
                    opt.step()
                losses.append(loss.item())
        self.net.eval()
        return losses


def _bucket(n: int, multiple: int, least: int = 64) -> int:
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


class InpaintStage:
    """``frames (B,3,H,W)`` in [0,1] and ``masks (B,1,H,W)`` in {0,1} → cleaned frames (B,3,H,W).

    Outside the masks the output equals the input bit for bit.
    """

    def __init__(self, cfg: InpaintConfig, device: torch.device | str = "cpu"):
        if cfg.backend != "auto" and cfg.backend not in BACKENDS:
            raise InputError(
                f"unknown inpainter {cfg.backend!r}; choose one of: auto, {', '.join(sorted(BACKENDS))}"
            )
        self.cfg = cfg
        self.device = torch.device(device)
        if cfg.backend == "auto":
            # Moving video: the learned network, steady (no texture re-picked every frame) and better
            # than Telea on every fidelity number. Stills and still cameras, where the fill is
            # invented once: its structure plus texture (hybrid_detail, default guided), a fill
            # both faithful and sharp in bench/RESULTS.md.
            learned = BACKENDS["learned"](cfg, self.device)
            self.fill_fn = learned
            try:
                self.still_fn = _hybrid(cfg, self.device, base=learned)
            except InputError:
                log.warning("pypatchmatch is not installed; still images get the learned fill alone")
                self.still_fn = learned
        else:
            self.fill_fn = self.still_fn = BACKENDS[cfg.backend](cfg, self.device)

    def _learned(self) -> list:
        fns = [getattr(f, "base", f) for f in (self.fill_fn, self.still_fn)]
        return list({id(f.net): f for f in fns if isinstance(f, LearnedFill)}.values())  # one per network

    def adapt(self, frames: torch.Tensor, masks: torch.Tensor) -> None:
        """``--finetune-steps``: fine-tune the learned network on this video's own background
        (``frames`` (B,3,H,W) and their hole ``masks``), once per video; ``reset()`` restores the
        shipped weights for the next one. Does nothing for classical backends."""
        for fill in self._learned():
            if not getattr(fill, "adapted", False):
                if not hasattr(fill, "original"):
                    fill.original = {k: v.clone() for k, v in fill.net.state_dict().items()}
                losses = fill.finetune(frames, masks, self.cfg.finetune_steps)
                if losses:
                    log.info("fine-tuned the inpainter for %d steps: loss %.4f -> %.4f", len(losses),
                             float(np.mean(losses[:10])), float(np.mean(losses[-10:])))
                fill.adapted = True

    def reset(self) -> None:
        for fill in self._learned():
            if hasattr(fill, "original"):
                fill.net.load_state_dict(fill.original)
            fill.adapted = False

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The size fills are computed at: native, or scaled so the long side is ``max_side``."""
        side = self.cfg.max_side
        if side <= 0 or max(height, width) <= side:
            return height, width
        s = side / max(height, width)
        return max(1, round(height * s)), max(1, round(width * s))

    @torch.inference_mode()
    def fill(self, frames: torch.Tensor, masks: torch.Tensor, still: bool = True) -> torch.Tensor:
        """The backend's fill at the working size (see ``working_size``): (B,3,h,w) in [0,1].
        Values outside the (downscaled) holes are not meaningful. ``still=False`` (a moving video,
        filled frame by frame) picks the steadier method when the backend is ``auto``."""
        check_frames(frames)
        check_masks(masks, frames)
        size = self.working_size(*frames.shape[2:])
        if size != tuple(frames.shape[2:]):
            frames = resize(frames, size)
            masks = F.adaptive_max_pool2d(masks.float(), size)  # a hole never shrinks when scaled down
        return (self.still_fn if still else self.fill_fn)(frames, (masks > 0).float())

    @torch.inference_mode()
    def paste(self, frames: torch.Tensor, fill: torch.Tensor, masks: torch.Tensor,
              feather: int | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
        """Composite a native-size ``fill`` into ``frames`` inside ``masks`` with a feathered edge
        (``feather`` px, default ``cfg.feather``) that lies inside the mask: outside it the result
        is ``frames`` exactly. Keep the feather within the mask's dilation, or the person's own
        pixels blend into the edge. ``out``: the tensor to write the result into (``fill`` itself
        may be given when the caller no longer needs it: each frame is read before it is
        written); default a new one."""
        width = self.cfg.feather if feather is None else feather
        check_frames(frames)
        check_frames(fill, "fill")
        check_masks(masks, frames)
        # one frame at a time: the feather's erosions and the blend of a whole 16-frame window at
        # 768x576 were a 300 MB transient, the highest of the pipeline (vtest's peak memory)
        if out is None:
            out = torch.empty_like(frames)
        elif out.shape != frames.shape:
            raise ShapeError(f"out: expected the frames' shape {tuple(frames.shape)}, got {tuple(out.shape)}")
        for i in range(frames.shape[0]):
            alpha = feather_alpha((masks[i : i + 1] > 0).float(), width)
            out[i : i + 1] = composite(frames[i : i + 1], fill[i : i + 1], alpha)
        return out

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Fill and paste back. A below-native fill is restored with bicubic here; the runner
        restores it with super-resolution instead (fill → restore → paste)."""
        check_frames(frames)
        check_masks(masks, frames)
        if not (masks > 0).any():
            return frames
        fill = self.fill(frames, masks)
        if fill.shape != frames.shape:
            fill = resize_bicubic(fill, frames.shape[2:])
        return self.paste(frames, fill, masks)
