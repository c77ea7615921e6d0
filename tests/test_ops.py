import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bgclean.errors import ShapeError
from bgclean.ops import (
    check_frames,
    composite,
    dilate_masks,
    erode_masks,
    feather_alpha,
    resize,
)


def point_mask(h=21, w=21):
    m = torch.zeros(1, 1, h, w)
    m[0, 0, h // 2, w // 2] = 1
    return m


def test_dilate_radius_is_exact_along_axes_and_rounder_than_a_square():
    out = dilate_masks(point_mask(), 6)[0, 0]
    row = out[10]
    assert row.sum() == 13  # 2*6+1 along the axis
    assert out[10 - 6, 10] == 1 and out[10 - 7, 10] == 0
    assert out[10 - 6, 10 - 6] == 0  # the corner of a square kernel is not reached
    assert out.sum() < 13 * 13


def test_dilate_zero_radius_is_identity_and_erode_undoes_small_dilation():
    m = point_mask()
    assert torch.equal(dilate_masks(m, 0), m)
    block = torch.zeros(1, 1, 30, 30)
    block[:, :, 10:20, 10:20] = 1
    assert torch.equal(erode_masks(dilate_masks(block, 3), 3), block)


def test_feather_is_zero_outside_one_deep_inside_and_ramps_at_the_edge():
    m = torch.zeros(1, 1, 40, 40)
    m[:, :, 5:35, 5:35] = 1
    a = feather_alpha(m, 4)
    assert torch.all(a[m == 0] == 0)
    assert a[0, 0, 20, 20] == 1
    assert a[0, 0, 20, 5] == pytest.approx(0.25)
    assert a[0, 0, 20, 6] == pytest.approx(0.5)


def test_feather_on_a_cpu_is_the_pools_erosions():
    """On a CPU a binary mask is feathered by one distance transform: the same values as the
    erosions (the path soft masks and other devices take), at the image border too."""
    import cv2

    g = torch.Generator().manual_seed(0)
    seeds = (torch.rand(2, 60, 80, generator=g) > 0.97).numpy().astype(np.uint8).transpose(1, 2, 0).copy()
    m = torch.from_numpy(cv2.dilate(seeds, np.ones((9, 9), np.uint8)).transpose(2, 0, 1)[:, None].copy()).float()
    m[0, 0, :10] = 1  # touching the border
    for width in (2, 5, 9, 14):
        fast = feather_alpha(m, width)
        assert torch.allclose(feather_alpha(m * 0.5, width), fast * 0.5)  # not binary: the erosions
        acc, cur = m.clone(), m
        for _ in range(width - 1):
            cur = -F.max_pool2d(-cur, 3, stride=1, padding=1)
            acc = acc + cur
        assert torch.equal(fast, acc / width), width


def test_composite_leaves_pixels_with_zero_alpha_bit_exact():
    torch.manual_seed(0)
    frames = torch.rand(2, 3, 16, 16)
    fill = torch.rand(2, 3, 16, 16)
    alpha = torch.zeros(2, 1, 16, 16)
    alpha[:, :, 4:8, 4:8] = 0.3
    out = composite(frames, fill, alpha)
    outside = (alpha == 0).expand_as(frames)
    assert torch.equal(out[outside], frames[outside])
    assert not torch.equal(out[~outside], frames[~outside])


def test_shape_errors_name_expected_and_actual():
    with pytest.raises(ShapeError, match=r"\(B,3,H,W\).*\(3, 8, 8\)"):
        check_frames(torch.rand(3, 8, 8))
    with pytest.raises(ShapeError, match=r"to match the frames, got \(1, 1, 4, 4\)"):
        composite(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 4, 4))


def test_resize_identity_and_size():
    x = torch.rand(1, 3, 10, 20)
    assert resize(x, (10, 20)) is x
    assert resize(x, (5, 7)).shape == (1, 3, 5, 7)


def test_max_filter_is_one_max_pool_in_two_passes():
    import torch.nn.functional as F

    from bgclean.ops import max_filter

    torch.manual_seed(0)
    m = torch.rand(2, 1, 37, 53)
    for kh, kw in ((3, 3), (19, 19), (5, 1), (1, 7), (9, 5)):
        assert torch.equal(max_filter(m, kh, kw), F.max_pool2d(m, (kh, kw), 1, (kh // 2, kw // 2)))


def test_to_integers_rounds_and_clamps_like_the_whole_window_did():
    import numpy as np

    from bgclean.ops import to_integers

    torch.manual_seed(0)
    x = torch.rand(3, 3, 9, 11) * 1.2 - 0.1  # some values outside [0,1]
    want8 = (x.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().numpy().astype(np.uint8)
    got8 = to_integers(x)
    assert got8.dtype == np.uint8 and got8.shape == (3, 9, 11, 3)
    np.testing.assert_array_equal(got8, want8)
    want16 = (x.permute(0, 2, 3, 1).clamp(0, 1) * 65535).round().numpy().astype(np.uint16)
    np.testing.assert_array_equal(to_integers(x, np.uint16, 65535.0), want16)
    assert to_integers(x[:0]).shape == (0, 9, 11, 3)
    with pytest.raises(ShapeError, match=r"\(B,3,H,W\)"):
        to_integers(x[:, :1])


def test_gaussian_blur_matches_a_depthwise_convolution_and_keeps_its_input():
    import math

    import torch.nn.functional as F

    from bgclean.ops import gaussian_blur

    def by_conv(x, sigma):  # the textbook separable blur: a normalised kernel, reflected borders
        r = max(1, int(round(3 * sigma)))
        k = torch.tensor([math.exp(-(i * i) / (2 * sigma**2)) for i in range(-r, r + 1)], dtype=x.dtype)
        k = (k / k.sum()).view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
        mode = "reflect" if r < min(x.shape[2:]) else "replicate"
        y = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k, groups=x.shape[1])
        return F.conv2d(F.pad(y, (0, 0, r, r), mode=mode), k.transpose(2, 3), groups=x.shape[1])

    torch.manual_seed(0)
    for shape, sigma in (((1, 3, 48, 64), 4.0), ((2, 3, 17, 23), 1.5), ((1, 3, 10, 9), 4.0), ((1, 1, 8, 8), 0.4)):
        x = torch.rand(shape)
        before = x.clone()
        got = gaussian_blur(x, sigma)
        assert got.shape == x.shape
        torch.testing.assert_close(got, by_conv(x, sigma), rtol=0, atol=1e-6)
        assert torch.equal(x, before)
    flat = torch.full((1, 3, 20, 30), 0.25)
    torch.testing.assert_close(gaussian_blur(flat, 3.0), flat)
    assert gaussian_blur(flat, 0) is flat


def test_cpu_dilation_is_the_octagon_of_the_pools():
    """On a CPU the dilation is the pools' steps as OpenCV dilations: the same values, for soft
    and binary masks, at the frame's edges and for every radius; and the octagon ``ops.octagon``
    gives (one dilation by it) is theirs too."""
    import cv2

    from bgclean.ops import dilate_by_pools, octagon

    g = torch.Generator().manual_seed(0)
    soft = torch.rand(2, 1, 37, 53, generator=g) ** 8
    binary = (torch.rand(1, 1, 40, 30, generator=g) > 0.97).float()
    binary[0, 0, 0, 0] = binary[0, 0, -1, 15] = 1  # on the edges
    for masks in (soft, binary):
        for radius in (1, 2, 3, 5, 8, 13, 14, 22):
            assert torch.equal(dilate_masks(masks, radius), dilate_by_pools(masks, radius)), radius
            one = cv2.dilate(masks.numpy().reshape(-1, *masks.shape[2:]).transpose(1, 2, 0).copy(), octagon(radius))
            one = torch.from_numpy(one.reshape(*masks.shape[2:], -1).transpose(2, 0, 1).copy()).view_as(masks)
            assert torch.equal(one, dilate_by_pools(masks, radius)), radius
    closed = 1 - dilate_by_pools(1 - dilate_by_pools(binary, 4), 4)
    assert torch.equal(erode_masks(dilate_masks(binary, 4), 4), closed)


def test_resize_known_averages_only_the_known_pixels():
    """A shrink that must not carry a hole's pixels into the ring around it: the result does not
    depend on what lies in the hole, equals a plain shrink where the filter sees no hole, and
    where it sees both, lies within the known pixels' range."""
    from bgclean.ops import resize, resize_known

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 80, generator=g) * 0.5  # known pixels in [0, 0.5]
    hole = torch.zeros(2, 1, 64, 80)
    hole[:, :, 20:40, 30:50] = 1
    person = torch.where(hole > 0, torch.ones_like(x), x)  # the hole holds something bright
    other = torch.where(hole > 0, -torch.ones_like(x), x)
    a, b = resize_known(person, hole, (16, 20)), resize_known(other, hole, (16, 20))
    assert torch.equal(a, b)
    far = torch.ones(16, 20, dtype=torch.bool)
    far[3:12, 5:15] = False  # cells whose filter reaches the hole
    assert torch.allclose(a[:, :, far], resize(person, (16, 20))[:, :, far], atol=1e-6)
    assert float(a.max()) <= 0.5 + 1e-6 and float(a.min()) >= 0
    assert resize_known(person, hole, (64, 80)) is person  # no shrink: nothing to mix
