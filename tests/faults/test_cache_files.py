"""Files in the weights cache that bgclean made (conversions, exports) are checked like downloads:
one swapped for another file, even another valid model, is made again instead of being used."""

from __future__ import annotations

import shutil

import torch


def test_a_swapped_conversion_is_converted_again():
    from bgclean.weights import store
    from bgclean.weights.registry import REGISTRY

    spec = REGISTRY.get("u2net.small")
    first = store.load_state_dict(spec)
    other = store.load_state_dict(REGISTRY.get("inpaint.dmfn"))
    torch.save(other, store.converted_path(spec))  # another valid model's state_dict in its place
    store._verified.clear()
    again = store.load_state_dict(spec)
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)
    model, _ = store.load_model("u2net.small", "cpu", half=False)
    assert model(torch.zeros(1, 3, 64, 64))[0].shape[-2:] == (64, 64)


def test_a_swapped_onnx_export_is_exported_again(tmp_path):
    from bgclean.weights import store
    from bgclean.weights.registry import REGISTRY

    store.load_onnx_model("u2net.small")
    path = store.converted_path(REGISTRY.get("u2net.small")).with_suffix(
        f".torch{torch.__version__.split('+')[0]}.onnx")
    detector = store.resolve(REGISTRY.get("yolox.nano"))  # a valid ONNX model of another kind
    shutil.copyfile(detector, path)
    store._verified.clear()
    out = store.load_onnx_model("u2net.small")(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 1, 64, 64)
