"""Convert foreign weight formats to state_dicts of bgclean's own modules."""

from __future__ import annotations

from pathlib import Path

from bgclean.errors import WeightsError
from bgclean.weights.registry import WeightSpec


def onnx_convs_to_state_dict(onnx_path: Path, module) -> dict:
    """Map the Conv nodes of a BatchNorm-folded ONNX graph, in graph order, onto ``module``'s
    ``nn.Conv2d`` layers in definition order. Every shape must match exactly."""
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn

    try:
        graph = onnx.load(str(onnx_path)).graph
    except Exception as exc:
        raise WeightsError(f"{onnx_path} is not a readable ONNX file: {exc}") from exc
    inits = {t.name: t for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    layers = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    if len(convs) != len(layers):
        raise WeightsError(
            f"{onnx_path.name} has {len(convs)} Conv nodes but {type(module).__name__} has "
            f"{len(layers)} conv layers: wrong file for this architecture"
        )
    state = {}
    for node, (name, layer) in zip(convs, layers):
        w = numpy_helper.to_array(inits[node.input[1]])
        if tuple(w.shape) != tuple(layer.weight.shape):
            raise WeightsError(
                f"{onnx_path.name}: Conv node {node.name} has weight shape {tuple(w.shape)}, "
                f"module layer {name} expects {tuple(layer.weight.shape)}"
            )
        b = (numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2
             else np.zeros(w.shape[0], np.float32))
        state[f"{name}.weight"] = torch.from_numpy(np.array(w, dtype=np.float32))
        state[f"{name}.bias"] = torch.from_numpy(np.array(b, dtype=np.float32))
    missing = set(module.state_dict()) - set(state)
    if missing:
        raise WeightsError(f"{onnx_path.name} leaves parameters unset: {sorted(missing)[:5]}")
    return state


def convert(spec: WeightSpec, raw: Path) -> dict:
    """The state_dict for ``spec`` from its verified raw file."""
    from bgclean.models import build_model

    if spec.format == "onnx":
        return onnx_convs_to_state_dict(raw, build_model(spec.architecture))
    if spec.format in ("pth", "state_dict"):
        import torch

        state = torch.load(raw, map_location="cpu", weights_only=True)
        return state.get("params_ema", state.get("params", state)) if isinstance(state, dict) else state
    raise WeightsError(f"no converter for {spec.name} in format {spec.format!r}")
