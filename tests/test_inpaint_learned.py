"""The learned inpainting backend: crop around each hole, network resolution, quadrant tiling,
multi-pass refinement, fine-tuning. Mechanics are checked with an untrained residual network, which
returns its Telea input exactly (so the expected output is known); quality is in bench/inpaint.py
and in test_stages' shipped-weights test."""

import cv2
import numpy as np
import pytest
import torch
from conftest import data, person_hole, photo

from bgclean.models.inpaint import Generator, build_inpainter
from bgclean.pipeline.config import InpaintConfig
from bgclean.stages.inpaint import LearnedFill
from bgclean.stages.inpaint.classical import context_box


def _photo(h=160, w=224):
    """Brick courses (scikit-image's ``brick``) scaled so that a ``h`` x ``w`` corner holds a few."""
    img = cv2.resize(photo("brick"), (w * 4, h * 4), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(img[:h, :w])


def _tensor(a):
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255


def _untrained():
    torch.manual_seed(0)
    return build_inpainter("dmfn", width=8, residual=True)


@pytest.mark.parametrize("residual_fill", ["telea", "structure"])
def test_untrained_residual_net_gives_its_classical_fill_inside_and_the_input_outside(residual_fill):
    """Brick courses: lines, so the structure fill differs from Telea's."""
    from bgclean import classical

    img = _photo()
    hole = np.zeros(img.shape[:2], np.uint8)
    hole[40:110, 60:100] = 1
    hole[20:40, 170:200] = 1  # a second hole: filled from its own crop
    fill = LearnedFill(InpaintConfig(residual_fill=residual_fill), torch.device("cpu"), net=_untrained())
    out = fill(_tensor(img), torch.from_numpy(hole)[None, None].float())
    got = (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(got[hole == 0], img[hole == 0])
    for box in ((40, 110, 60, 100), (20, 40, 170, 200)):  # each hole's crop, as LearnedFill cuts it
        Y0, Y1, X0, X1 = context_box(box, 0.5, 8, *img.shape[:2])
        crop, m = img[Y0:Y1, X0:X1], hole[Y0:Y1, X0:X1] > 0
        want = classical.fill(np.ascontiguousarray(crop), m, residual_fill)
        assert np.abs(got[Y0:Y1, X0:X1].astype(int) - want.astype(int))[m].max() <= 1
    if residual_fill == "structure":
        telea = cv2.inpaint(img, hole, 5, cv2.INPAINT_TELEA)
        assert np.abs(got.astype(int) - telea.astype(int))[hole > 0].mean() > 2


def test_holes_larger_than_the_network_side_are_filled_at_network_size_and_restored():
    img = _photo()
    hole = np.zeros(img.shape[:2], np.uint8)
    hole[30:130, 50:170] = 1
    fill = LearnedFill(InpaintConfig(net_side=64), torch.device("cpu"), net=_untrained())
    out = fill(_tensor(img), torch.from_numpy(hole)[None, None].float())
    assert out.shape == (1, 3, 160, 224)
    assert torch.equal(out[0][:, torch.from_numpy(hole) == 0], _tensor(img)[0][:, torch.from_numpy(hole) == 0])


class _MeanColour(Generator):
    """A stand-in network: fills the hole with the mean colour of the pixels it can see. Tiles
    that see different parts of the image get different colours, so a seam would show as a step."""

    multiple = 8

    def forward(self, x):
        known = 1 - x[:, 3:4]
        mean = (x[:, :3] * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
        return mean.expand(-1, -1, *x.shape[2:])


def test_quadrant_tiling_blends_without_a_seam():
    """Dark left, bright right, a big hole across both: each quadrant fills with its own colour,
    and the blend across the overlaps ramps between them instead of stepping."""
    h, w = 160, 224
    img = np.full((h, w, 3), 40, np.uint8)
    img[:, w // 2 :] = 220
    hole = np.zeros((h, w), np.uint8)
    hole[20:140, 30:190] = 1
    x, m = _tensor(img), torch.from_numpy(hole)[None, None].float()
    tiled = LearnedFill(InpaintConfig(tiles=2, context=0.1), torch.device("cpu"), net=_MeanColour())(x, m)
    got = tiled[0].permute(1, 2, 0).numpy() * 255
    inside = hole > 0
    left, right = got[80, 40, 0], got[80, 180, 0]
    assert right - left > 60  # the quadrants did see different colours
    dx = np.abs(np.diff(got, axis=1))[inside[:, 1:] & inside[:, :-1]].max()
    dy = np.abs(np.diff(got, axis=0))[inside[1:] & inside[:-1]].max()
    # a hard cut would step by right - left at once; the blend spreads it over the overlap
    assert dx < (right - left) / 8 and dy < 4, (dx, dy, right - left)
    whole = LearnedFill(InpaintConfig(tiles=1, context=0.1), torch.device("cpu"), net=_MeanColour())(x, m)
    assert torch.equal(tiled[0][:, ~torch.from_numpy(inside)], whole[0][:, ~torch.from_numpy(inside)])


def test_tiles_correct_one_classical_fill_made_over_the_whole_crop():
    """A residual network's tiles all correct the same Telea fill, made once over the whole crop: an
    untrained net (zero correction) gives, tiled, the untiled fill. Per-tile Telea let a quadrant
    that saw mostly the dark surroundings of a hole smear them into it (places2 pair 4)."""
    img = _photo()
    hole = np.zeros(img.shape[:2], np.uint8)
    hole[30:130, 50:170] = 1
    x, m = _tensor(img), torch.from_numpy(hole)[None, None].float()
    whole = LearnedFill(InpaintConfig(tiles=1), torch.device("cpu"), net=_untrained())(x, m)
    tiled = LearnedFill(InpaintConfig(tiles=2), torch.device("cpu"), net=_untrained())(x, m)
    assert (tiled - whole).abs().max() < 1.5 / 255


def test_a_hole_at_the_frame_edge_does_not_leak_its_own_pixels_through_the_padding():
    """The network's input is padded to a multiple of its stride; below a hole that touches the
    frame's bottom, the padding is hole too. Padded as known pixels, it carried the hidden object's
    colour into the fill (places2 pair 2: a dark orange ball under the archer)."""
    img = np.full((150, 101, 3), 128, np.uint8)
    hole = np.zeros((150, 101), np.uint8)
    hole[90:, 40:70] = 1  # a person cut by the bottom edge
    img[hole > 0] = (200, 30, 20)  # her pixels, hidden from the fill
    out = LearnedFill(InpaintConfig(), torch.device("cpu"), net=_untrained())(
        _tensor(img), torch.from_numpy(hole)[None, None].float())
    got = (out[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(got[hole > 0] - 128).max() <= 2


def test_passes_redraw_only_the_eroded_inside():
    img = _photo()
    hole = np.zeros(img.shape[:2], np.uint8)
    hole[40:120, 60:140] = 1
    x, m = _tensor(img), torch.from_numpy(hole)[None, None].float()
    one = LearnedFill(InpaintConfig(), torch.device("cpu"), net=_untrained())(x, m)
    three = LearnedFill(InpaintConfig(passes=3), torch.device("cpu"), net=_untrained())(x, m)
    ring = torch.from_numpy(hole - cv2.erode(hole, np.ones((5, 5), np.uint8))).bool()
    assert torch.equal(one[0][:, ring], three[0][:, ring])  # the outer ring is kept from pass 1
    assert not torch.equal(one, three)  # the inside was redrawn
    assert torch.equal(three[0][:, torch.from_numpy(hole) == 0], x[0][:, torch.from_numpy(hole) == 0])


def test_finetune_lowers_the_loss_on_the_videos_own_background():
    from conftest import gt_person_mask

    from bgclean import io
    from bgclean.ops import to_tensor
    from bgclean.stages.inpaint.finetune import finetune

    info = io.probe(data("schoolgirls/schoolgirls.mp4"))
    frames = [f.rgb.copy() for f, _ in zip(io.read_frames(info), range(2))]
    masks = torch.from_numpy(np.stack([gt_person_mask("schoolgirls", i) for i in range(2)]))[:, None].float()
    fill = LearnedFill(InpaintConfig(), torch.device("cpu"), net=_untrained())
    x = to_tensor(frames, torch.device("cpu"))
    # the same seed and pool: the same four crops and holes; with lr 0 this measures only
    probe = lambda: finetune(fill, x, masks, steps=1, size=64, lr=0.0, seed=1, pool=4)[0]  # noqa: E731
    before = probe()
    losses = finetune(fill, x, masks, steps=40, size=64, lr=2e-3, seed=1, pool=4)
    assert len(losses) == 40 and np.isfinite(losses).all()
    assert probe() < 0.8 * before
    assert len(finetune(fill, x, masks, steps=3, size=64)) == 3
    assert not fill.net.training


def test_stage_fine_tunes_once_per_video_and_reset_restores_the_weights():
    from bgclean.stages.inpaint import InpaintStage

    stage = InpaintStage(InpaintConfig(backend="telea", finetune_steps=2))
    learned = LearnedFill(InpaintConfig(finetune_steps=2), torch.device("cpu"), net=_untrained())
    stage.fill_fn = stage.still_fn = learned
    before = {k: v.clone() for k, v in learned.net.state_dict().items()}
    img = np.repeat(_photo(), 1, axis=0)
    masks = np.zeros((1, 1) + img.shape[:2], np.float32)
    masks[0, 0, 40:120, 20:60] = 1
    x, m = _tensor(img), torch.from_numpy(masks)
    stage.adapt(x, m)
    changed = {k for k, v in learned.net.state_dict().items() if not torch.equal(v, before[k])}
    assert changed
    after_first = {k: v.clone() for k, v in learned.net.state_dict().items()}
    stage.adapt(x, m)  # the same video: no second fine-tuning
    assert all(torch.equal(v, after_first[k]) for k, v in learned.net.state_dict().items())
    stage.reset()
    assert all(torch.equal(v, before[k]) for k, v in learned.net.state_dict().items())


def test_shipped_network_beats_telea_inside_person_holes():
    """The bundled inpaint.dmfn weights (checksum-verified by the store) against Telea on photos it
    never saw in training, with a real silhouette as the hole: higher PSNR inside the hole on
    average (bench/inpaint.py measures the same over 48 held-out cases)."""
    from bgclean.stages.inpaint import InpaintStage

    learned, telea = InpaintStage(InpaintConfig(backend="learned")), InpaintStage(InpaintConfig(backend="telea"))
    gains = []
    for seed, name in enumerate(("coffee", "chelsea", "rocket", "stereo_motorcycle"), start=3):
        img = cv2.resize(photo(name), (512, 288), interpolation=cv2.INTER_LINEAR)[16:272, 128:384]
        hole = person_hole(256, 0.15, seed)
        x, m = _tensor(np.ascontiguousarray(img)), torch.from_numpy(hole)[None, None].float()
        err = lambda out: ((out - x)[0][:, torch.from_numpy(hole)] ** 2).mean().item()  # noqa: E731
        a, b = learned(x, m), telea(x, m)
        assert torch.equal(a[0][:, ~torch.from_numpy(hole)], x[0][:, ~torch.from_numpy(hole)])
        gains.append(10 * np.log10(err(b) / err(a)))
    assert np.mean(gains) > 0.3, gains


class _ShapeRecorder(torch.nn.Module):
    """A stand-in network that records the input sizes (H, W) it was given (what it returns does
    not matter to the tests that use it)."""

    multiple = 8

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape[2:]))
        return x[:, :3] * 2 - 1


def test_the_network_sees_a_few_input_sizes_however_the_holes_vary():
    """Each hole's crop is padded up to one of a few sizes (at most 25% more per side): torch and
    oneDNN keep native memory for every new input shape, so crops of every size made a long
    video's memory creep up. Holes of any size reach 13 sizes per side at most (169 shapes in all,
    however long the video)."""
    from bgclean.stages.inpaint.learned import bucket

    net = _ShapeRecorder()
    fill = LearnedFill(InpaintConfig(), torch.device("cpu"), net=net)
    rng = np.random.default_rng(0)
    frame = torch.rand(1, 3, 240, 320)
    for _ in range(40):
        h, w = int(rng.integers(8, 150)), int(rng.integers(8, 200))
        y, x = int(rng.integers(0, 240 - h)), int(rng.integers(0, 320 - w))
        m = torch.zeros(1, 1, 240, 320)
        m[..., y : y + h, x : x + w] = 1
        fill(frame, m)
    sides = {s for shape in net.seen for s in shape}
    assert sides <= {64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512}
    assert all(bucket(n, 8) <= max(64, 1.25 * n) and bucket(n, 8) >= n for n in range(1, 513))


def test_stills_run_the_shared_network_at_the_hybrid_side_and_video_at_net_side(monkeypatch):
    """``auto``: moving video shows the network's fill itself (``net_side``); stills keep only its
    low frequencies under the guided texture, so the same network runs at ``hybrid_net_side``
    (bench: 384 px lost at most 0.16 dB of low-pass PSNR and a fifth of the time). Fine-tuning
    and its reset act on the one shared network once."""
    import bgclean.stages.inpaint as inpaint

    net = _ShapeRecorder()
    monkeypatch.setitem(inpaint.BACKENDS, "learned",
                        lambda cfg, device=None: LearnedFill(cfg, torch.device("cpu"), net=net))
    stage = inpaint.InpaintStage(InpaintConfig(backend="auto", net_side=256, hybrid_net_side=128))
    frame = torch.from_numpy(_photo(240, 320)).permute(2, 0, 1)[None].float() / 255
    m = torch.zeros(1, 1, 240, 320)
    m[..., 40:200, 60:260] = 1  # its crop with context spans the frame: longer than both sides
    stage.fill_fn(frame, m)
    assert [max(shape) for shape in net.seen] == [256]
    out = stage.still_fn(frame, m)
    assert [max(shape) for shape in net.seen] == [256, 128]
    assert torch.equal(out[..., m[0, 0] == 0], frame[..., m[0, 0] == 0])
    assert len(stage.learned_fills()) == 1 and stage.learned_fills()[0].net is net


def _line_photo(name: str, side: int = 512) -> np.ndarray:
    """The top-left ``side`` px square of a photo scaled to 1024 px on its long side (as the
    benchmark cuts its crops), widened where the scaled photo is shorter than ``side``."""
    img = photo(name)
    s = 1024 / max(img.shape[:2])
    img = cv2.resize(img, (int(img.shape[1] * s), int(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    if img.shape[0] < side:
        img = cv2.resize(img, (round(img.shape[1] * side / img.shape[0]), side), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(img[:side, :side])


def test_stills_keep_the_edges_of_lines_the_structure_fill_continues():
    """Lines across a person-shaped hole (brick courses; a launch tower's lattice against the sky):
    copied blocks of texture cross the continued lines with streaks and smears; where the structure
    fill's lines carry weight, their edges are kept (``hybrid_line_share``), nothing changed
    outside the hole."""
    from bgclean.stages.inpaint import InpaintStage

    stages = [InpaintStage(InpaintConfig(backend="hybrid", hybrid_base="learned", hybrid_line_share=share))
              for share in (0.0, 0.5)]
    for name in ("brick", "rocket"):
        truth, hole = _line_photo(name), person_hole(512, 0.15, seed=1)
        x, m, inside = _tensor(truth), torch.from_numpy(hole)[None, None].float(), torch.from_numpy(hole)
        errs = []
        for stage in stages:
            out = stage(x, m)
            assert torch.equal(out[0][:, ~inside], x[0][:, ~inside])
            errs.append(((out - x)[0][:, inside] ** 2).mean().item())
        assert 10 * np.log10(errs[0] / errs[1]) > 0.5, (name, errs)
