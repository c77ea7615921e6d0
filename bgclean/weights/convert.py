"""Convert foreign weight formats to state_dicts of bgclean's own modules."""

from __future__ import annotations

from dataclasses import dataclass
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


NCNN_FP16_TAG = 0x01306B47
NCNN_FP32_TAG = 0


@dataclass(frozen=True)
class NcnnLayer:
    type: str
    name: str
    params: dict  # key -> int | float | list


def parse_ncnn_param(text: str) -> list[NcnnLayer]:
    """Layers of an ncnn ``.param`` file, in file order."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] != "7767517":
        raise WeightsError("not an ncnn .param file (bad magic number)")
    layers = []
    for line in lines[2:]:
        parts = line.split()
        n_in, n_out = int(parts[2]), int(parts[3])
        params: dict[int, float | int | list[float | int]] = {}
        for item in parts[4 + n_in + n_out :]:
            key, _, value = item.partition("=")
            k = int(key)
            if k <= -23300:  # array parameter: -23300-k = id, "count,v1,v2..."
                values = value.split(",")
                params[-23300 - k] = [float(v) if "." in v or "e" in v else int(v) for v in values[1:]]
            else:
                params[k] = float(value) if ("." in value or "e" in value) else int(value)
        layers.append(NcnnLayer(parts[0], parts[1], params))
    return layers


def _read_ncnn_blobs(layers: list[NcnnLayer], data: bytes) -> list[tuple[str, list]]:
    """Walk the .bin in layer order: ("conv", [weight, bias]) and ("prelu", [slope]) records."""
    import numpy as np

    off = 0
    out = []

    def take(dtype, count: int, align: bool = False):
        nonlocal off
        size = np.dtype(dtype).itemsize * count
        if off + size > len(data):
            raise WeightsError("ncnn .bin is shorter than its .param describes")
        arr = np.frombuffer(data, dtype, count, off).astype(np.float32)
        off += (size + 3) // 4 * 4 if align else size
        return arr

    for layer in layers:
        if layer.type == "Convolution":
            num_output, kernel = layer.params[0], layer.params.get(1, 1)
            bias_term, weight_size = layer.params.get(5, 0), layer.params[6]
            if layer.params.get(11, kernel) != kernel:
                raise WeightsError(f"ncnn layer {layer.name}: non-square kernels are not supported")
            tag = int.from_bytes(data[off : off + 4], "little")
            off += 4
            if tag == NCNN_FP16_TAG:
                w = take("<f2", weight_size, align=True)
            elif tag == NCNN_FP32_TAG:
                w = take("<f4", weight_size)
            else:
                raise WeightsError(f"ncnn layer {layer.name}: unsupported weight storage tag {tag:#x}")
            in_ch = weight_size // (num_output * kernel * kernel)
            w = w.reshape(num_output, in_ch, kernel, kernel)
            b = take("<f4", num_output) if bias_term else np.zeros(num_output, np.float32)
            out.append(("conv", [w, b]))
        elif layer.type == "PReLU":
            out.append(("prelu", [take("<f4", layer.params.get(0, 1))]))
        elif layer.type in ("InnerProduct", "BatchNorm", "ConvolutionDepthWise", "Deconvolution", "Scale"):
            raise WeightsError(f"ncnn layer type {layer.type} ({layer.name}) is not supported")
    if off != len(data):
        raise WeightsError(f"ncnn .bin has {len(data) - off} bytes left after the last layer: wrong pair")
    return out


def ncnn_to_state_dict(param_path: Path, bin_path: Path, module) -> dict:
    """Map an ncnn ``.param``/``.bin`` pair onto ``module``'s Conv2d and PReLU layers, both in
    definition order. Kinds and shapes must match exactly."""
    import torch
    from torch import nn

    records = _read_ncnn_blobs(parse_ncnn_param(Path(param_path).read_text()), Path(bin_path).read_bytes())
    layers = [(n, m) for n, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.PReLU))]
    if len(records) != len(layers):
        raise WeightsError(
            f"{bin_path.name} holds {len(records)} weighted layers but {type(module).__name__} has "
            f"{len(layers)}: wrong file for this architecture"
        )
    state = {}
    for (kind, arrays), (name, layer) in zip(records, layers):
        expected = "conv" if isinstance(layer, nn.Conv2d) else "prelu"
        if kind != expected:
            raise WeightsError(f"{bin_path.name}: found a {kind} layer where {name} is a {expected}")
        if tuple(arrays[0].shape) != tuple(layer.weight.shape):
            raise WeightsError(
                f"{bin_path.name}: {kind} weight of shape {arrays[0].shape} for {name}, which expects "
                f"{tuple(layer.weight.shape)}"
            )
        state[f"{name}.weight"] = torch.from_numpy(arrays[0].copy())
        if kind == "conv":
            state[f"{name}.bias"] = torch.from_numpy(arrays[1].copy())
    return state


def convert(spec: WeightSpec, raw: Path, companion: Path | None = None) -> dict:
    """The state_dict for ``spec`` from its verified raw file (and companion file, for ncnn)."""
    from bgclean.models import build_model

    if spec.format == "onnx":
        return onnx_convs_to_state_dict(raw, build_model(spec.architecture))
    if spec.format == "ncnn":
        if companion is None:
            raise WeightsError(f"{spec.name}: an ncnn .bin needs its .param file")
        return ncnn_to_state_dict(companion, raw, build_model(spec.architecture))
    if spec.format in ("pth", "state_dict"):
        import torch

        state = torch.load(raw, map_location="cpu", weights_only=True)
        if isinstance(state, dict):
            state = state.get("params_ema", state.get("params", state))
        module = build_model(spec.architecture)
        module.load_state_dict(state)  # fails loudly on a mismatched file
        return module.state_dict()
    raise WeightsError(f"no converter for {spec.name} in format {spec.format!r}")
