"""Fill backends by name: each maps frames and hole masks to a full-frame fill (values outside the
holes are ignored)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

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
