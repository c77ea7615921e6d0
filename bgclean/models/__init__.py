"""Network architectures (nn.Module only: no loading, no I/O)."""

from __future__ import annotations


def build_model(architecture: str):
    """A freshly initialised module for an architecture name used in the weights registry."""
    if architecture in ("u2net.full", "u2net.small"):
        from bgclean.models.u2net import U2Net

        return U2Net(architecture.split(".")[1])
    raise ValueError(f"unknown architecture {architecture!r}")
