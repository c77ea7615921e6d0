"""The impersonator / iPERCore background hook on real frames."""

import numpy as np
import pytest
import torch
from conftest import data, gt_person_mask

from bgclean.hooks.impersonator import BGNet


def _batch(indices):
    from bgclean import io

    frames = {f.index: f.rgb.copy() for f in io.read_frames(io.probe(data("schoolgirls/schoolgirls.mp4")))
              if f.index in indices}
    img = torch.from_numpy(np.stack([frames[i] for i in indices])).permute(0, 3, 1, 2).float() / 127.5 - 1
    masks = torch.from_numpy(np.stack([gt_person_mask("schoolgirls", i) for i in indices]))[:, None].float()
    return img, masks


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bgnet_replaces_the_people_and_keeps_the_rest(dtype):
    img, masks = _batch([0, 20, 40, 60])
    img = img.to(dtype)
    bg, hole = BGNet(bg_ks=7)(img, masks=masks, only_x=False)
    assert bg.shape == img.shape and bg.dtype == dtype and bg.device == img.device
    assert float(bg.min()) >= -1 and float(bg.max()) <= 1
    h = hole.bool().expand_as(img)
    assert torch.equal(bg[~h], img[~h])  # outside the dilated mask: the input, bit for bit
    body = masks.bool().expand_as(img)
    assert hole.bool()[masks.bool()].all()  # the hole covers the body (square bg_ks dilation)
    changed = (bg - img).abs().amax(dim=1, keepdim=True) > 0.02
    assert changed[masks.bool()].float().mean() > 0.9  # the people are replaced
    # a square 7x7 dilation reaches 3 px beyond the body and no further
    grown = torch.nn.functional.max_pool2d(masks, 7, stride=1, padding=3) > 0
    assert torch.equal(hole.bool(), grown)
    assert body.any()


def test_bgnet_segments_when_no_mask_is_given():
    img, masks = _batch([0])
    bg = BGNet()(img)
    changed = (bg - img).abs().amax(dim=1) > 0.02
    truth = masks[:, 0].bool()
    assert changed[truth].float().mean() > 0.8


def test_bgnet_shape_errors():
    from bgclean.errors import ShapeError

    net = BGNet(bg_ks=3)
    with pytest.raises(ShapeError, match="B,3,H,W"):
        net(torch.zeros(3, 8, 8))
    with pytest.raises(ShapeError, match=r"\(1,1,8,8\)"):
        net(torch.zeros(1, 3, 8, 8), masks=torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="odd"):
        BGNet(bg_ks=4)


def test_bgnet_batch_items_do_not_leak_into_each_other():
    """Two unrelated images in one batch: the person mask of the first must not appear in the second."""
    img, masks = _batch([0])
    blank = torch.full_like(img, 0.2)  # a flat grey image with nobody in it
    bg = BGNet()(torch.cat([img, blank]))
    assert torch.equal(bg[1], blank[0])
