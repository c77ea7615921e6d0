"""A plain convolutional ONNX graph run by torch: the YOLOX-nano person detector on a GPU.

onnxruntime's CPU build is what this project installs (its GPU build is a separate, CUDA-bound
package), so on a CUDA device the detector would otherwise stay on the CPU beside a GPU pipeline.
The graph is read node by node and each node becomes the torch call that computes the same thing;
only the operators such a detector needs are known (Conv, Sigmoid, Mul, Add, Concat, Slice,
MaxPool, nearest Resize, Reshape, Transpose); any other is refused when the file is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bgclean.errors import WeightsError

SUPPORTED = ("Conv", "Sigmoid", "Mul", "Add", "Concat", "Slice", "MaxPool", "Resize", "Reshape", "Transpose")


def _pads(p: list[int]) -> tuple[int, int]:
    """ONNX pads (top, left, bottom, right) for 2-D ops, symmetric here: torch's (pad_h, pad_w)."""
    if len(p) != 4 or p[0] != p[2] or p[1] != p[3]:
        raise WeightsError(f"asymmetric padding {p} is not supported")
    return p[0], p[1]


class OnnxGraph(nn.Module):
    """``forward(x)``: the graph's first output for its one input ``x``. A Reshape's leading
    (batch) size follows ``x``, so a batch of N frames runs as one call."""

    def __init__(self, path: str | Path):
        super().__init__()
        import onnx
        from onnx import helper, numpy_helper

        try:
            graph = onnx.load(str(path)).graph
        except Exception as exc:
            raise WeightsError(f"{path} is not a readable ONNX file: {exc}") from exc
        unknown = sorted({n.op_type for n in graph.node} - set(SUPPORTED))
        if unknown:
            raise WeightsError(f"{Path(path).name}: operators {', '.join(unknown)} are not supported by OnnxGraph")
        inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
        self.input = graph.input[0].name
        self.output = graph.output[0].name
        self.nodes: list[tuple[str, list[str], str, dict]] = []
        # a constant input: a convolution's weights and biases (a buffer's name: they follow .to(device)),
        # or the small values of the other operators (slice bounds, shapes, scales) as Python lists
        self.consts: dict[str, str | list] = {}
        for node in graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            for name in node.input:
                if name in inits and name not in self.consts:
                    if node.op_type == "Conv":
                        key = f"w{len(self._buffers)}"
                        self.register_buffer(key, inits[name])
                        self.consts[name] = key
                    else:
                        self.consts[name] = inits[name].tolist()
            self.nodes.append((node.op_type, list(node.input), node.output[0], attrs))
        # what each value is last needed by, so intermediates are dropped as soon as possible
        self._last_use = {}
        for k, (_, inputs, _, _) in enumerate(self.nodes):
            for name in inputs:
                self._last_use[name] = k

    def _value(self, env: dict, name: str):
        if name in env:
            return env[name]
        c = self.consts[name]
        return getattr(self, c) if isinstance(c, str) else c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env = {self.input: x}
        for k, (op, inputs, out, a) in enumerate(self.nodes):
            v: list[Any] = [self._value(env, n) if n else None for n in inputs]
            if op == "Conv":
                ph, pw = _pads(a.get("pads", [0, 0, 0, 0]))
                y = F.conv2d(v[0], v[1].to(v[0].dtype), v[2].to(v[0].dtype) if len(v) > 2 else None,
                             tuple(a.get("strides", [1, 1])), (ph, pw), tuple(a.get("dilations", [1, 1])),
                             a.get("group", 1))
            elif op == "Sigmoid":
                y = torch.sigmoid(v[0])
            elif op == "Mul":
                y = v[0] * v[1]
            elif op == "Add":
                y = v[0] + v[1]
            elif op == "Concat":
                y = torch.cat(v, dim=a["axis"])
            elif op == "Slice":  # opset 10+: data, starts, ends, axes, steps
                y = v[0]
                axes = v[3] if len(v) > 3 and v[3] is not None else list(range(len(v[1])))
                steps = v[4] if len(v) > 4 and v[4] is not None else [1] * len(v[1])
                for s, e, ax, st in zip(v[1], v[2], axes, steps):
                    index = [slice(None)] * y.dim()
                    index[ax] = slice(s, min(e, y.shape[ax]), st)
                    y = y[tuple(index)]
            elif op == "MaxPool":
                ph, pw = _pads(a.get("pads", [0, 0, 0, 0]))
                y = F.max_pool2d(v[0], tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1])), (ph, pw),
                                 ceil_mode=bool(a.get("ceil_mode", 0)))
            elif op == "Resize":
                scales = v[2] if len(v) > 2 else None
                if a.get("mode", b"nearest") != b"nearest" or not scales or scales[:2] != [1.0, 1.0]:
                    raise WeightsError(f"Resize {a} is not supported (nearest, spatial scales only)")
                y = F.interpolate(v[0], scale_factor=tuple(scales[2:]), mode="nearest")
            elif op == "Reshape":
                shape = list(v[1])
                shape[0] = v[0].shape[0] if shape[0] in (0, 1) else shape[0]  # the batch follows the input
                y = v[0].reshape(shape)
            else:  # Transpose
                y = v[0].permute(*a["perm"])
            env[out] = y
            for n in inputs:
                if n in env and self._last_use.get(n) == k and n != self.input:
                    del env[n]
        return env[self.output]
