"""Network architectures (nn.Module only: no loading, no I/O)."""

from __future__ import annotations


def build_model(architecture: str):
    """A freshly initialised module for an architecture name used in the weights registry."""
    if architecture in ("u2net.full", "u2net.small"):
        from bgclean.models.u2net import U2Net

        return U2Net(architecture.split(".")[1])
    if architecture == "rrdbnet.x4":
        from bgclean.models.rrdbnet import RRDBNet

        return RRDBNet()
    if architecture == "srvgg.x4":
        from bgclean.models.srvgg import SRVGGNetCompact

        return SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4)
    if architecture.startswith("inpaint."):
        from bgclean.models.inpaint import build_inpainter, parse_architecture

        return build_inpainter(**parse_architecture(architecture))
    raise ValueError(f"unknown architecture {architecture!r}")
