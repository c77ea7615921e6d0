"""Inpainting architectures: shapes, ranges and the mechanics each one is named for, at tiny sizes."""

import pytest
import torch

from bgclean.models.inpaint import (
    ARCHITECTURES,
    PartialConv2d,
    build_inpainter,
    contextual_attention,
)


def _input(b=2, size=64, ch=4):
    torch.manual_seed(0)
    x = torch.rand(b, ch, size, size) * 2 - 1
    hole = torch.zeros(b, 1, size, size)
    hole[:, :, size // 4 : size // 2, size // 4 : size // 2] = 1
    return torch.cat([x[:, :3] * (1 - hole), hole], 1)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_each_architecture_maps_image_and_mask_to_rgb_in_range(name):
    net = build_inpainter(name, width=8).eval()
    size = max(64, net.multiple)
    y = net(_input(size=size))
    assert y.shape == (2, 3, size, size)
    assert y.abs().max() <= 1
    assert torch.isfinite(y).all()
    y.sum().backward()  # every architecture is trainable end to end
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_unknown_architecture_lists_the_names():
    with pytest.raises(ValueError, match="ffc"):
        build_inpainter("lama")


def test_partial_conv_ignores_hole_pixels_and_updates_the_mask():
    conv = PartialConv2d(1, 1, 3)
    x = torch.ones(1, 1, 8, 8)
    valid = torch.ones(1, 1, 8, 8)
    valid[..., 2:6, 2:6] = 0
    garbage = x.clone()
    garbage[..., 2:6, 2:6] = 1e3  # values under the hole must not matter
    a, m = conv(x, valid)
    b, _ = conv(garbage, valid)
    torch.testing.assert_close(a, b)
    assert m[0, 0, 3:5, 3:5].sum() == 0 and m[0, 0, 2, 2] == 1  # the hole shrinks by one pixel


def test_contextual_attention_copies_matching_known_features_into_the_hole():
    """A hole in a two-texture map: a hole position whose neighbourhood matches texture A is rebuilt
    from A's features."""
    fg = torch.zeros(1, 2, 8, 8)
    fg[:, 0, :, :4] = 1  # left half: feature A = (1, 0)
    fg[:, 1, :, 4:] = 1  # right half: feature B = (0, 1)
    hole = torch.zeros(1, 1, 8, 8)
    hole[..., 3:5, 1:3] = 1  # inside the A half
    before = fg.clone()
    fg[..., 3:5, 1:3] = 0.5  # corrupt the hole
    out = contextual_attention(fg, hole)
    torch.testing.assert_close(out[..., hole[0, 0] < 0.5], before[..., hole[0, 0] < 0.5])
    assert (out[0, 0, 3:5, 1:3] > out[0, 1, 3:5, 1:3]).all()


def test_residual_wrapper_starts_at_the_classical_fill_and_changes_only_holes():
    net = build_inpainter("ffc", width=8, residual=True).eval()
    x = _input(size=64)
    x[:, :3] = torch.rand(2, 3, 64, 64) * 2 - 1  # a "classical fill" everywhere
    y = net(x)
    torch.testing.assert_close(y, x[:, :3])  # untrained: the fill itself
    with torch.no_grad():
        net.detail[-1].bias.fill_(0.3)
    y = net(x)
    hole = x[:, 3:4].bool().expand(-1, 3, -1, -1)
    torch.testing.assert_close(y[~hole], x[:, :3][~hole])
    assert (y[hole] - x[:, :3][hole]).abs().mean() > 0.05
