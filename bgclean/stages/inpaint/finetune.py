"""Fine-tuning the learned fill on the video's own background (--finetune-steps)."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from bgclean.stages.inpaint.learned import LearnedFill

log = logging.getLogger(__name__)


def finetune(model: LearnedFill, frames: torch.Tensor, masks: torch.Tensor, steps: int, size: int = 128,
             batch: int = 4, lr: float = 5e-5, seed: int = 0, pool: int = 0) -> list[float]:
    """Adapt the network to this video: ``steps`` of L1 training on crops of ``frames`` (B,3,H,W)
    that no person touches, with holes shaped like this video's own person ``masks`` (B,1,H,W).
    ``pool`` > 0 draws that many (crop, hole) samples once and trains on them only (batches are
    the whole pool when it is no larger than ``batch``). Returns the loss per step. Meant for a
    GPU; it works, slowly, on a CPU."""
    import cv2

    from bgclean.holes import place_silhouette
    from bgclean.models.inpaint import network_input

    rng = np.random.default_rng(seed)
    h, w = frames.shape[2:]
    size = min(size, h, w) // model.multiple * model.multiple
    if size < model.multiple or steps <= 0:
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
    opt = torch.optim.Adam(model.net.parameters(), lr=lr)
    model.net.train()
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
            fill = model.classical_fill(img, hole) if model.residual else None
            inputs = network_input(img.to(model.device), hole.to(model.device),
                               None if fill is None else fill.to(model.device))
            out = (model.net(inputs).float() + 1) / 2
            loss = ((out - img.to(model.device)).abs() * hole.to(model.device)).sum() / hole.sum().clamp_min(1) / 3
            opt.zero_grad(set_to_none=True)
            if lr > 0:
                loss.backward()
                opt.step()
            losses.append(loss.item())
    model.net.eval()
    return losses
