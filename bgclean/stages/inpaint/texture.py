"""Guided texture: blocks copied from around the hole, each chosen by a base fill's colours there and
kept coherent with its neighbours."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bgclean.ops import (
    gaussian_blur,
    mask_boxes,
)
from bgclean.stages.inpaint.classical import context_box

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
        Y0, Y1, X0, X1 = context_box((y0, y1, x0, x1), 0.5, 2 * _BLOCK, h, w)
        if min(Y1 - Y0, X1 - X0) < 2 * _BLOCK:
            continue  # too small an image for a block and its source: the base alone
        crop = out[:, Y0:Y1, X0:X1]
        m = hole[Y0:Y1, X0:X1].float()
        out[:, Y0:Y1, X0:X1] = torch.where(m[None] > 0, _synthesize(crop, m, sigma, top_k, gen), crop)
    return out.clamp_(0, 1)


def spread(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """(C,H,W) values known where ``known`` (1,H,W) is 1, spread smoothly into the rest
    (push-pull: averages of the known values over ever coarser cells fill the unknown ones)."""
    if bool((known > 0).all()) or min(values.shape[1:]) < 2:
        return values
    num = F.avg_pool2d((values * known)[None], 2, ceil_mode=True)[0]
    den = F.avg_pool2d(known[None], 2, ceil_mode=True)[0]
    coarse = spread(num / den.clamp_min(1e-6), (den > 0).float())
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
    guess = torch.where(m[None] > 0, spread(energy, known[None]), energy)
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
    chosen_parts, best_parts = [], []
    for c in range(0, t_desc.shape[1], _TARGET_CHUNK):  # distances a chunk of targets at a time
        part = t_desc[:, c : c + _TARGET_CHUNK]
        d = torch.addmm(src_norm[None], part.T, src_desc, alpha=-2).add_((part**2).sum(0)[:, None])
        best, nearest = d.topk(k, dim=1, largest=False)
        pick = torch.randint(0, k, (best.shape[0],), generator=gen).to(dev)  # the generator lives on the CPU
        chosen_parts.append(nearest[torch.arange(best.shape[0], device=dev), pick])
        best_parts.append(best[:, 0])
        del d
    chosen = torch.cat(chosen_parts)
    # a change of source between neighbours costs _COHERENCE times the typical best distance
    lam = _COHERENCE * float(torch.cat(best_parts).median())
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
    columns = []
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        yy, xx = gy + dy, gx + dx
        inside = (yy >= 0) & (yy < ty) & (xx >= 0) & (xx < tx)
        j = torch.full((tn,), -1, dtype=torch.long, device=dev)
        j[inside] = index[yy[inside], xx[inside]]
        columns.append(j)
    nbrs = torch.stack(columns, 1)  # (tn, 4), -1 = no neighbour in the hole
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
