"""The motion-imitation hooks, driven the way impersonator and iPERCore drive their background networks.

Each test re-creates one of their call sites from what their code does (the helpers below are
written from its behaviour: the mask erosion, the value ranges, the (bs, ns) views, the
post-tuning composite and ``backward()``), on real frames with people, and checks: the known
background comes back bit for bit (no second dilation), the people are gone, and gradients reach
the network the system trains.
"""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import data, gt_person_mask

from bgclean.errors import InputError, ShapeError
from bgclean.hooks import impersonator, ipercore

SIZES_DTYPES = [(256, torch.float32), (512, torch.float32), (256, torch.float16), (512, torch.float16)]


def _source(size: int, index: int = 0, dtype=torch.float32):
    """A square source frame with people (schoolgirls, a 240 px square around the girls, scaled to
    ``size``) in [-1,1] (1,3,S,S), and its person mask (1,1,S,S) float, 1 = person."""
    import cv2

    from bgclean import io

    rgb = next(f.rgb for f in io.read_frames(io.probe(data("schoolgirls/schoolgirls.mp4"))) if f.index == index)
    person = gt_person_mask("schoolgirls", index)
    x0 = 96
    rgb = cv2.resize(np.ascontiguousarray(rgb[:, x0 : x0 + 240]), (size, size), interpolation=cv2.INTER_AREA)
    person = cv2.resize(person[:, x0 : x0 + 240].astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    img = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(dtype) / 127.5 - 1
    return img, torch.from_numpy(person)[None, None].float()


def morph(mask: torch.Tensor, ks: int, mode: str) -> torch.Tensor:
    """The morphology both systems apply to their masks: a ``ks`` x ``ks`` square; ``erode`` keeps a
    pixel where its whole window is 1 (the border counts as 1), ``dilate`` where any pixel is."""
    if mode == "erode":
        return 1 - F.max_pool2d(1 - mask, ks, stride=1, padding=ks // 2)
    return F.max_pool2d(mask, ks, stride=1, padding=ks // 2)


class _Renderer(nn.Module):
    """A stand-in for the network a system trains through the background: a colour and an
    attention mask per pixel, composited over ``bg`` as both systems do."""

    def __init__(self):
        super().__init__()
        self.color = nn.Conv2d(3, 3, 3, padding=1)
        self.att = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return torch.tanh(self.color(x)), torch.sigmoid(self.att(x))


def _changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).abs().amax(dim=1, keepdim=True) > 0.05


# -- impersonator --------------------------------------------------------------------------------

@pytest.mark.parametrize("size,dtype", SIZES_DTYPES)
def test_impersonator_personalize_and_post_tune(size, dtype):
    """``Imitator.personalize`` then ``post_personalize``: the network is built with
    ``_create_bgnet().cuda()`` + ``eval()`` (here ``.to("cpu")``), the body mask is the condition
    map's background channel eroded by ``bg_ks`` = 13 and inverted, ``bg`` comes from
    ``bgnet(img, masks=body_mask, only_x=True)`` under ``no_grad``, and post-tuning composites it
    into the generator's output and calls ``backward()``."""
    img, person = _source(size, dtype=dtype)
    bgnet = impersonator.BGNet().to("cpu")
    bgnet.eval()
    with torch.no_grad():
        bg_mask = morph(1 - person, ks=13, mode="erode")  # cond[:, -1:]: 1 = background
        body_mask = 1 - bg_mask
        bg = bgnet(img, masks=body_mask.to(dtype), only_x=True)
    assert bg.shape == img.shape and bg.dtype == dtype and bg.device == img.device
    assert float(bg.min()) >= -1 and float(bg.max()) <= 1
    known = bg_mask.bool().expand_as(img)
    assert torch.equal(bg[known], img[known])  # the background it was given, untouched: no second dilation
    assert _changed(bg, img)[person.bool()].float().mean() > 0.9  # the people are replaced

    gen = _Renderer().to(dtype)
    opt = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    color, att = gen(img)
    fake = att * bg + (1 - att) * color  # fake_src_mask * bg_inpaint + (1 - fake_src_mask) * color
    loss = F.l1_loss(fake.float(), img.float())
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.parameters())


def test_impersonator_inpainter_outputs_and_state():
    """``only_x=False`` gives the three outputs impersonator unpacks, ``only_out`` the composite;
    the module has no parameters and nothing in ``state_dict()``; without a mask the people are
    found automatically; outside ``no_grad`` the output is an ordinary tensor."""
    img, person = _source(256)
    body = morph(person, 13, "dilate")
    net = impersonator.BGNet()
    assert list(net.parameters()) == [] and net.state_dict() == {}
    assert net.half().eval().train(False) is net and net.to("cpu").float() is net  # a module's verbs
    coarse, x, comp = net(img, body)
    assert torch.equal(comp, net(img, body, only_out=True)) and torch.equal(x, comp) and coarse.shape == img.shape
    assert not comp.is_inference() and not comp.requires_grad
    auto = net(img, only_x=True)
    assert _changed(auto, img)[person.bool()].float().mean() > 0.8


def test_impersonator_bg_ks_grows_the_given_mask_once():
    img, person = _source(256)
    bg = impersonator.BGNet(bg_ks=7)(img, masks=person, only_x=True)
    grown = morph(person, 7, "dilate").bool()
    assert torch.equal(bg[~grown.expand_as(img)], img[~grown.expand_as(img)])
    assert _changed(bg, img)[grown].float().mean() > 0.5


def test_impersonator_shape_errors():
    net = impersonator.BGNet(bg_ks=3)
    with pytest.raises(ShapeError, match="B,3,H,W"):
        net(torch.zeros(3, 8, 8))
    with pytest.raises(ShapeError, match=r"\(1,1,8,8\)"):
        net(torch.zeros(1, 3, 8, 8), masks=torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="odd"):
        impersonator.BGNet(bg_ks=4)


def test_batch_items_do_not_leak_into_each_other():
    """Two unrelated images in one batch: the person of the first must not appear in the second."""
    img, _ = _source(256)
    blank = torch.full_like(img, 0.2)  # a flat grey image with nobody in it
    bg = impersonator.BGNet()(torch.cat([img, blank]), only_x=True)
    assert torch.equal(bg[1], blank[0])


# -- iPERCore --------------------------------------------------------------------------------------

class _Generator(nn.Module):
    """The shape of iPERCore's generators: a ``bg_net`` submodule called by ``forward_bg`` on
    (bs, ns, 4, h, w) inputs viewed as (bs * ns, 4, h, w), and a network trained beside it."""

    def __init__(self):
        super().__init__()
        self.bg_net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1), nn.Tanh())
        self.tsf_net = _Renderer()

    def forward_bg(self, bg_inputs):
        bs, ns, _, h, w = bg_inputs.shape
        bg_img = self.bg_net(bg_inputs.view(bs * ns, -1, h, w))
        return bg_img.view(bs, ns, 3, h, w)


@pytest.mark.parametrize("size,dtype", SIZES_DTYPES)
def test_ipercore_generator_background_and_personalisation(size, dtype):
    """``Imitator.source_setup`` with two sources (``num_source`` = 2): ``masks`` = 1 - the parsed
    person, ``make_bg_inputs`` erodes them by ``bg_ks`` and concatenates ``[img * bg_mask,
    bg_mask]``; the generator's checkpoint (with its own ``bg_net`` weights) loads with
    ``strict=False`` around the replacement; ``forward_bg`` and ``bg_img[:, 0]``; then a
    personalisation step trains the generator through the composited background."""
    imgs, people = zip(*(_source(size, i, dtype) for i in (0, 40)))
    src_img, person = torch.cat(imgs), torch.cat(people)  # (ns, 3, h, w), (ns, 1, h, w)
    gen = _Generator()
    ckpt = gen.state_dict()
    gen.bg_net = ipercore.BGNet()
    gen.load_state_dict(ckpt, strict=False)
    gen = gen.to("cpu").to(dtype)
    masks = 1.0 - person  # src_info["masks"]: 1 = background
    bg_mask = morph(masks, ks=13, mode="erode")
    input_g_bg = torch.cat([src_img * bg_mask.to(dtype), bg_mask.to(dtype)], dim=1)
    with torch.no_grad():
        bg_img = gen.forward_bg(input_g_bg[None])  # (bs=1, ns=2, 3, h, w)
    assert bg_img.shape == (1, 2, 3, size, size) and bg_img.dtype == dtype
    known = bg_mask.bool().expand_as(src_img)
    assert torch.equal(bg_img[0][known], src_img[known])  # the background it was given, untouched
    assert _changed(bg_img[0], src_img)[person.bool()].float().mean() > 0.9  # the people are replaced
    src_bg = bg_img[:, 0].contiguous()

    # personalisation: fake_bg composited into the generator's output, backward into tsf_net
    fake_bg = gen.forward_bg(input_g_bg[None])[:, 0]  # outside no_grad, as in training
    color, att = gen.tsf_net(src_img[:1])
    pred = att * fake_bg + (1 - att) * color
    loss = F.l1_loss(pred.float(), src_img[:1].float()) + F.l1_loss(src_bg.float(), fake_bg.float())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gen.tsf_net.parameters())


def test_ipercore_bg_net_rejects_a_three_channel_input():
    with pytest.raises(ShapeError, match="B,4,H,W"):
        ipercore.BGNet()(torch.zeros(1, 3, 8, 8))


def _build_background_inpaintors(name, *args, **kwargs):
    """iPERCore's registry with the branch its users add (the one they have raises for others)."""
    if name == "bgclean":
        return ipercore.BackgroundInpaintor(*args, **kwargs)
    raise ValueError(f"{name} is not valid background inpaintors.")


@pytest.mark.parametrize("size", [256, 512])
def test_ipercore_preprocessor_inpaints_and_replaces_the_background(tmp_path, size):
    """``Preprocessor``: the inpaintor from the registry with ``cfg_or_path`` and ``device``;
    ``_execute_post_inpaintor`` reads the image by path and the mask (255 = person) as an array,
    ``run_inpaintor`` calls ``run_inpainting(img_path, mask, dilate_kernel_size=19,
    dilate_iter_num=3)`` and keeps the BGR result; with ``bg_replace`` the image's own pixels go
    back outside the mask dilated once (a band of the fill stays around the people)."""
    import cv2

    img, person = _source(size)
    bgr = ((img[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)[..., ::-1]
    img_path, msk_path = tmp_path / "frame_0001.png", tmp_path / "frame_0001_mask.png"
    cv2.imwrite(str(img_path), bgr)
    cv2.imwrite(str(msk_path), person[0, 0].numpy().astype(np.uint8) * 255)
    inpaintor = _build_background_inpaintors("bgclean", cfg_or_path="", device=torch.device("cpu"))

    image = cv2.imread(str(img_path))
    mask = cv2.imread(str(msk_path), cv2.IMREAD_GRAYSCALE)
    bg_img, dilated = inpaintor.run_inpainting(str(img_path), mask, dilate_kernel_size=19, dilate_iter_num=3)
    assert bg_img.shape == image.shape and bg_img.dtype == np.uint8 and dilated.shape == mask.shape
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (19, 19))
    assert np.array_equal(dilated, cv2.dilate(mask, kernel, iterations=3))
    outside = dilated == 0
    assert np.array_equal(bg_img[outside], image[outside])  # the background untouched
    changed = np.abs(bg_img.astype(int) - image.astype(int)).max(axis=2) > 12
    assert changed[mask > 0].mean() > 0.9  # the people are replaced

    bg_area = cv2.dilate(mask, kernel, iterations=1) == 0  # bg_replace: real pixels where no one was
    bg_img[bg_area, :] = image[bg_area, :]
    changed = np.abs(bg_img.astype(int) - image.astype(int)).max(axis=2) > 12
    assert changed[mask > 0].mean() > 0.9  # still nobody there


def test_ipercore_inpaintor_takes_paths_arrays_and_configs(tmp_path):
    import cv2

    img, person = _source(256)
    bgr = ((img[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)[..., ::-1].copy()
    mask = person[0, 0].numpy().astype(np.uint8) * 255
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    cfg = tmp_path / "bgclean.yaml"
    cfg.write_text("inpaint:\n  backend: telea\n")
    by_path = ipercore.BackgroundInpaintor(str(cfg)).run_inpainting(bgr, str(tmp_path / "m.png"))[0]
    by_dict = ipercore.BackgroundInpaintor({"inpaint.backend": "telea"}).run_inpainting(bgr, mask)[0]
    assert np.array_equal(by_path, by_dict)
    clean, none = ipercore.BackgroundInpaintor().run_inpainting(bgr, np.zeros_like(mask))
    assert np.array_equal(clean, bgr) and not none.any()
    with pytest.raises(InputError, match="does not exist"):
        ipercore.BackgroundInpaintor().run_inpainting(str(tmp_path / "missing.png"), mask)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="not an image"):
        ipercore.BackgroundInpaintor().run_inpainting(str(tmp_path / "bad.png"), mask)
    with pytest.raises(InputError, match="like the image"):
        ipercore.BackgroundInpaintor().run_inpainting(bgr, mask[:100])


def test_a_group_still_at_256_px_loses_nobody():
    """Four girls in one 256 px still (schoolgirls frame 20, as a motion-imitation system sizes its
    sources), people found automatically: each girl is inside the hole, the smallest one (about 40 px
    tall, whose crop's map finds almost nothing of her) included."""
    import cv2
    from conftest import mask_ids

    from bgclean import io
    from bgclean.hooks.stills import StillCleaner

    rgb = next(f.rgb for f in io.read_frames(io.probe(data("schoolgirls/schoolgirls.mp4"))) if f.index == 20)
    ids = mask_ids("schoolgirls", 20)
    size = (256, round(256 * rgb.shape[0] / rgb.shape[1]))
    img = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ids = cv2.resize(ids, size, interpolation=cv2.INTER_NEAREST)
    _, holes = StillCleaner()(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)
    hole = holes[0, 0].numpy()
    recall = {girl: float(hole[ids == girl].mean()) for girl in (1, 3, 5, 7)}
    assert min(recall.values()) >= 0.95, recall
