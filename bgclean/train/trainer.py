"""The training loop: checkpoints, resume, a JSON-lines log of losses and eval numbers, fixed seeds,
mixed precision on CUDA.

    bgclean train --config FILE [--set key=value ...]

Files in ``cfg.out``: ``last.pt`` (model, optimisers, step; written atomically), ``best.pt`` (the
same at the best validation PSNR so far in this run), ``log.jsonl`` (one
line per log interval and per evaluation), ``config.yaml`` (the config as run).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from bgclean.holes import HoleSampler, silhouettes_from_masks
from bgclean.models.inpaint import architecture_name, build_inpainter, network_input
from bgclean.train.config import TrainConfig
from bgclean.train.data import PhotoHoles, as_float, list_photos, video_backgrounds

if TYPE_CHECKING:
    from bgclean.train.losses import GlobalLocalDiscriminator, U2NetFeatures

log = logging.getLogger(__name__)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """A training checkpoint (``last.pt``, ``best.pt``) read as data only: tensors and plain values.
    A file that holds anything else (a pickled object, which could run code when loaded) is refused
    with an InputError."""
    import pickle

    from bgclean.errors import InputError

    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise InputError(f"checkpoint {path} does not exist") from None
    except pickle.UnpicklingError:  # torch's own message advises weights_only=False: never right here
        raise InputError(f"{path} is not a bgclean training checkpoint: it holds objects other than tensors and "
                         "plain values, and bgclean runs no code from a file") from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise InputError(f"{path} is not a readable training checkpoint ({type(exc).__name__}); "
                         "the file is damaged or of another kind") from None
    if not isinstance(ck, dict) or not {"architecture", "model"} <= set(ck):
        raise InputError(f"{path} is not a bgclean training checkpoint (no architecture and model in it)")
    return ck


def psnr(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor) -> float:
    """PSNR in dB over ``region`` of images in [0,1]."""
    mse = (((a - b) ** 2) * region).sum() / (region.sum() * a.shape[1]).clamp_min(1)
    return float(10 * torch.log10(1 / mse.clamp_min(1e-10)))


@dataclasses.dataclass
class Adversary:
    """The discriminator of adversarial training (``w_adv`` > 0) and its optimiser."""

    disc: GlobalLocalDiscriminator
    opt: torch.optim.Adam


class Trainer:
    def __init__(self, cfg: TrainConfig, device: str | torch.device | None = None):
        self.cfg = cfg
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # one training size: let cuDNN pick its fastest kernels once
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)

        sils = [s for m in cfg.masks for s in silhouettes_from_masks(Path(m.path), m.ids or None)]
        holes = HoleSampler(sils, cfg.rect_prob if sils else 1.0, cfg.max_holes, cfg.hole_area)
        photos = list_photos(cfg.photos, cfg.exclude)
        n_val = min(cfg.val_photos, len(photos) - 1)
        train_photos, val_photos = photos[: len(photos) - n_val], photos[len(photos) - n_val :] or photos
        videos = [f for v in cfg.videos for f in video_backgrounds(v.path, v.masks, v.ids)]
        self.data = PhotoHoles(train_photos, holes, cfg.size, cfg.scale_range, cfg.classical,
                               videos=videos, video_share=cfg.video_share)
        val = PhotoHoles(val_photos, holes, cfg.size, cfg.scale_range, cfg.classical, jitter=False)
        self.eval_batch = [t.to(self.device) for t in val.batch(cfg.eval_images, np.random.default_rng(1234))]
        log.info("training on %d photos (%d silhouettes), validating on %d", len(train_photos), len(sils),
                 len(val_photos))

        self.net = build_inpainter(cfg.arch, cfg.width, cfg.residual, cfg.scale).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=(0.5, 0.999) if cfg.w_adv else (0.9, 0.999))
        self.adv: Adversary | None = None
        if cfg.w_adv > 0:
            from bgclean.train.losses import GlobalLocalDiscriminator

            disc = GlobalLocalDiscriminator().to(self.device)
            self.adv = Adversary(disc, torch.optim.Adam(disc.parameters(), lr=cfg.lr_disc, betas=(0.5, 0.999)))
        self.features: U2NetFeatures | None = None
        if cfg.w_perceptual > 0 or cfg.w_style > 0:
            from bgclean.train.losses import U2NetFeatures
            from bgclean.weights.store import load_model

            u2, _ = load_model("u2net.small", "cpu", half=False)
            self.features = U2NetFeatures(u2.float().to(memory_format=torch.contiguous_format)).to(self.device).eval()
        self.amp = cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step = 0
        self.best = -1.0  # best eval PSNR of this run (best.pt)
        self._load()

    # -- checkpoints ---------------------------------------------------------------------------
    def _load(self) -> None:
        path = self.out / "last.pt"
        if not path.exists():
            if self.cfg.init:
                self._init_from(self.cfg.init)
            return
        ck = load_checkpoint(path, self.device)
        if ck["architecture"] != self.architecture:
            raise ValueError(f"{path} holds {ck['architecture']}, the config asks for {self.architecture}: "
                             "use another out folder")
        self.net.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["opt"])
        for group in self.opt.param_groups:  # the config's rate, so a resumed run can lower it
            group["lr"] = self.cfg.lr
        if self.adv is not None and ck.get("disc"):
            self.adv.disc.load_state_dict(ck["disc"])
            self.adv.opt.load_state_dict(ck["opt_d"])
            for group in self.adv.opt.param_groups:
                group["lr"] = self.cfg.lr_disc
        self.step = ck["step"]
        self.best = ck.get("best", self.best)  # best.pt is replaced only by a better eval than any before
        torch.manual_seed(self.cfg.seed + self.step)
        log.info("resumed %s at step %d", path, self.step)

    def _init_from(self, source: str) -> None:
        """A new run's generator starts from ``source``: a registered inpainter's weights (the
        shipped ``inpaint.dmfn``: a GPU run can refine them instead of starting over) or a
        trainer checkpoint. Optimisers, step and discriminators start fresh."""
        from bgclean.errors import ConfigError

        if Path(source).suffix == ".pt" and Path(source).is_file():
            ck = load_checkpoint(source, self.device)
            arch, state = ck["architecture"], ck["model"]
        else:
            from bgclean.weights.registry import REGISTRY
            from bgclean.weights.store import load_state_dict

            spec = REGISTRY.get(source)
            arch, state = spec.architecture, load_state_dict(spec)
        if arch != self.architecture:
            raise ConfigError(f"init {source!r} holds {arch}, the config builds {self.architecture}: set arch, "
                              "width, residual and scale to match")
        self.net.load_state_dict(state)  # fp16 weights are copied into the fp32 parameters
        log.info("started from %s (%s)", source, arch)

    def save(self, name: str = "last.pt") -> Path:
        path = self.out / name
        tmp = path.with_suffix(".tmp")
        torch.save({"architecture": self.architecture, "model": self.net.state_dict(), "opt": self.opt.state_dict(),
                    "disc": self.adv.disc.state_dict() if self.adv else None,
                    "opt_d": self.adv.opt.state_dict() if self.adv else None,
                    "step": self.step, "best": self.best, "config": dataclasses.asdict(self.cfg)}, tmp)
        os.replace(tmp, path)
        return path

    @property
    def architecture(self) -> str:
        c = self.cfg
        return architecture_name(c.arch, c.width, c.residual, c.scale)

    # -- one step ------------------------------------------------------------------------------
    def forward(self, img: torch.Tensor, hole: torch.Tensor, fill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's output in [0,1], composited (truth outside the hole) and raw."""
        m = self.net.multiple
        assert img.shape[-1] % m == 0, f"training size must be a multiple of {m}"
        x = network_input(img, hole, fill if self.cfg.residual else None)
        out = (self.net(x).float() + 1) / 2
        return out * hole + img * (1 - hole), out

    def train_step(self, img, hole, fill) -> dict:
        from bgclean.train import losses as L

        c = self.cfg
        self.net.train()
        with torch.autocast(self.device.type, enabled=self.amp):
            comp, raw = self.forward(img, hole, fill)
        comp, raw = comp.float(), raw.float()
        l_hole, l_valid = L.l1_hole_valid(raw, img, hole)
        ring = torch.nn.functional.max_pool2d(hole, 3, 1, 1)
        loss = c.w_hole * l_hole + c.w_valid * l_valid + c.w_tv * L.total_variation(comp, ring)
        logs = {"l1_hole": l_hole.item(), "l1_valid": l_valid.item()}
        if self.features is not None:
            perc, style = L.perceptual_style(self.features, comp, img)
            loss = loss + c.w_perceptual * perc + c.w_style * style
            logs.update(perceptual=perc.item(), style=style.item())
        adv = self.adv if self.step >= c.adv_start else None
        if adv is not None:
            fake_scores, fake_feats = adv.disc(comp * 2 - 1, hole)
            _, real_feats = adv.disc(img * 2 - 1, hole)
            g_adv = L.g_hinge(fake_scores)
            fm = L.feature_matching(real_feats, fake_feats)
            loss = loss + c.w_adv * g_adv + c.w_fm * fm
            logs.update(g_adv=g_adv.item(), fm=fm.item())
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if adv is not None:
            real_scores, _ = adv.disc(img * 2 - 1, hole)
            fake_scores, _ = adv.disc(comp.detach() * 2 - 1, hole)
            d_loss = L.d_hinge(real_scores, fake_scores)
            adv.opt.zero_grad(set_to_none=True)
            d_loss.backward()
            adv.opt.step()
            logs["d"] = d_loss.item()
        logs["loss"] = loss.item()
        return logs

    @torch.no_grad()
    def evaluate(self) -> dict:
        self.net.eval()
        img, hole, fill = self.eval_batch
        outs = []
        for i in range(0, len(img), 8):
            outs.append(self.forward(img[i : i + 8], hole[i : i + 8], fill[i : i + 8])[0].float())
        comp = torch.cat(outs)
        return {"eval_psnr": psnr(comp, img, hole), "eval_psnr_classical": psnr(fill, img, hole)}

    def batches(self):
        """The run's batches from its current step on (uint8; ``as_float`` makes them the step's
        input), made by ``cfg.workers`` processes ahead of the step that needs them (the crops,
        holes and classical fills are CPU work that would otherwise leave a GPU idle: about 1.5 s
        for 32 crops of 256 px on one core)."""
        c = self.cfg
        workers = c.workers if c.workers >= 0 else min(16, max(0, (os.cpu_count() or 1) - 1))
        return torch.utils.data.DataLoader(
            StepBatches(self.data, c.batch, c.seed), batch_size=None, sampler=range(self.step, c.steps),
            num_workers=workers, worker_init_fn=_one_thread if workers else None,
            # spawned, not forked: a fork of a process whose thread pools (OpenMP, OpenCV, CUDA) are
            # busy or locked can hang its child (seen in the test suite)
            multiprocessing_context="spawn" if workers else None,
            prefetch_factor=4 if workers else None, pin_memory=self.device.type == "cuda")

    # -- the loop ------------------------------------------------------------------------------
    def run(self, progress=None) -> dict:
        c = self.cfg
        (self.out / "config.yaml").write_text(json.dumps(dataclasses.asdict(c), indent=1))
        t0 = time.monotonic()
        last: dict = {}
        with open(self.out / "log.jsonl", "a") as logf:
            for img, hole, fill in self.batches():
                if c.time_limit_min and time.monotonic() - t0 > c.time_limit_min * 60:
                    log.info("time limit reached at step %d", self.step)
                    break
                img, hole, fill = as_float([t.to(self.device, non_blocking=True) for t in (img, hole, fill)])
                last = self.train_step(img, hole, fill)
                self.step += 1
                if self.step % 20 == 0 or self.step == c.steps:
                    record = {"step": self.step, "seconds": round(time.monotonic() - t0, 1), **last}
                    logf.write(json.dumps(record) + "\n")
                    logf.flush()
                if self.step % c.eval_every == 0 or self.step == c.steps:
                    ev = self.evaluate()
                    last.update(ev)
                    if ev["eval_psnr"] > self.best:
                        self.best = ev["eval_psnr"]
                        self.save("best.pt")
                    logf.write(json.dumps({"step": self.step, **ev}) + "\n")
                    logf.flush()
                    log.info("step %d: %s", self.step, ", ".join(f"{k} {v:.4g}" for k, v in last.items()))
                if self.step % c.ckpt_every == 0:
                    self.save()
                if progress:
                    progress(self.step, c.steps)
        self.save()
        return {"step": self.step, **last, **self.evaluate()}


class StepBatches(torch.utils.data.Dataset):
    """Batch number ``step`` of a run, drawn from its own generator (seed, step): a resumed run, and
    a run with any number of data workers, sees the batches one uninterrupted run in one process would."""

    def __init__(self, data: PhotoHoles, size: int, seed: int):
        self.data, self.size, self.seed = data, size, seed

    def __getitem__(self, step: int):
        return self.data.batch_uint8(self.size, np.random.default_rng([self.seed, step]))


def _one_thread(_worker: int) -> None:
    """A data worker uses one thread (the workers are the parallelism)."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def export_weights(checkpoint: str | Path, dest: str | Path, half: bool = True) -> tuple[str, str]:
    """The generator's state_dict from a training checkpoint, fp16 when ``half``, written atomically
    to ``dest``. Returns (architecture name, sha256)."""
    import hashlib

    ck = load_checkpoint(checkpoint)
    sd = {k: (v.half() if half and v.is_floating_point() else v) for k, v in ck["model"].items()}
    dest = Path(dest)
    tmp = dest.with_suffix(".tmp")
    torch.save(sd, tmp)
    os.replace(tmp, dest)
    return ck["architecture"], hashlib.sha256(dest.read_bytes()).hexdigest()
