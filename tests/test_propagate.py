"""Temporal propagation on real photos with synthetic camera motion: the truth is known."""

import numpy as np
import pytest
import torch
from conftest import gt_person_mask, photo

from bgclean.pipeline.config import PropagateConfig
from bgclean.stages.propagate import PropagateStage, corner_shift, estimate_homography


def _photo(h=240, w=432, extra=0):
    import cv2

    img = photo("chelsea")  # a cat filling the frame: fur, whiskers, a soft background
    img = cv2.resize(img, (w + 2 * extra, int(round(img.shape[0] * (w + 2 * extra) / img.shape[1]))),
                     interpolation=cv2.INTER_AREA)
    y0 = (img.shape[0] - h - 2 * extra) // 2
    return np.ascontiguousarray(img[y0 : y0 + h + 2 * extra])


def _walker_masks(n, h=240, w=432):
    """A real person silhouette (schoolgirls ground truth) walking left to right."""
    import cv2

    sil = gt_person_mask("schoolgirls", 0)[:, 90:170]  # one girl
    masks = np.zeros((n, h, w), bool)
    for t in range(n):
        x0 = 40 + t * (w - 160) // max(1, n - 1)
        masks[t, :, x0 : x0 + sil.shape[1]] = sil
    return np.stack([cv2.dilate(m.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0 for m in masks])


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def _run(stage, frames, masks, window=8, movers=None):
    outs, rems = [], []
    for s in range(0, len(frames), window):
        x = torch.from_numpy(np.stack(frames[s : s + window])).permute(0, 3, 1, 2).float() / 255
        m = torch.from_numpy(masks[s : s + window, None]).float()
        mv = None if movers is None else torch.from_numpy(movers[s : s + window, None])
        o, r, _ = stage(x, m, movers=mv)
        outs.append((o.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
        rems.append(r[:, 0].numpy() > 0)
    return np.concatenate(outs), np.concatenate(rems)


def test_static_camera_copies_the_true_background_exactly():
    bg = _photo()
    n = 16
    masks = _walker_masks(n)
    frames = [np.where(m[:, :, None], np.uint8(20), bg) for m in masks]  # a dark person
    # the copy itself: the whole hole as given (`unchanged` would leave the frame's own pixels where
    # the person is as dark as the photo; tested on its own below)
    stage = PropagateStage(PropagateConfig(shadows="off", unchanged_tolerance=0))
    out, remaining = _run(stage, frames, masks)
    assert stage.static
    seen = masks & ~remaining
    assert seen.sum() > 0.9 * masks.sum()  # the walker uncovers nearly everything
    for t in range(n):
        assert np.array_equal(out[t][seen[t]], np.broadcast_to(bg, out[t].shape)[seen[t]])


def test_panning_camera_fills_with_real_pixels_above_32_db():
    big = _photo(extra=40)
    n = 16
    masks = _walker_masks(n)
    truth, frames = [], []
    for t in range(n):
        dx = 40 + int(round(-30 + 60 * t / (n - 1)))  # pan by 4 px per frame
        view = np.ascontiguousarray(big[40:280, dx : dx + 432])
        truth.append(view)
        frames.append(np.where(masks[t][:, :, None], np.uint8(20), view))
    stage = PropagateStage(PropagateConfig())
    out, remaining = _run(stage, frames, masks)
    assert not stage.static
    seen = masks & ~remaining
    assert seen.sum() > 0.8 * masks.sum()
    got = np.concatenate([out[t][seen[t]] for t in range(n)])
    want = np.concatenate([truth[t][seen[t]] for t in range(n)])
    assert _psnr(got, want) > 32


def test_homography_ignores_the_masked_person():
    import cv2

    bg = _photo()
    shifted = cv2.warpAffine(bg, np.float32([[1, 0, 6], [0, 1, -3]]), (432, 240), borderMode=cv2.BORDER_REFLECT)
    valid = np.ones((240, 432), bool)
    valid[:, :40] = valid[:, -40:] = False
    valid[:10], valid[-10:] = False, False
    h = estimate_homography(bg, shifted, valid, valid)
    assert h is not None
    np.testing.assert_allclose(h[:2, 2], [6, -3], atol=0.5)
    assert corner_shift(np.eye(3), 432, 240) == 0


def test_unseen_hole_stays_for_the_inpainter_and_reset_forgets():
    bg = _photo()
    mask = np.zeros((4, 240, 432), bool)
    mask[:, 100:150, 200:260] = True  # a person who never moves
    frames = [np.where(mask[0][:, :, None], np.uint8(0), bg)] * 4
    stage = PropagateStage(PropagateConfig())
    _, remaining = _run(stage, frames, mask, window=2)
    assert np.array_equal(remaining, mask)
    assert len(stage.history) == 4
    stage.reset()
    assert len(stage.history) == 0 and stage.static


@pytest.mark.parametrize("scale", [1, 2])
def test_static_camera_shadow_joins_the_hole_and_is_replaced_by_background(scale):
    """A still camera, a walker and the shadow at his feet, at 432x240 and at 864x480 (where the
    shadow search judges 2x2 cells of the band around the hole, at the 240 px scale): the same
    shadow is found and replaced at both sizes."""
    bg = _photo()
    n = 32
    person = _walker_masks(n)
    shadow = np.zeros_like(person)
    for t in range(n):  # a shadow on the ground, cast from the feet to the right
        ys, xs = np.nonzero(person[t])
        feet = xs[ys >= ys.max() - 12]
        shadow[t, ys.max() - 12 : ys.max(), feet.min() : feet.max() + 30] = True
    shadow &= ~person
    if scale > 1:
        bg = bg.repeat(scale, 0).repeat(scale, 1)
        person, shadow = (m.repeat(scale, 1).repeat(scale, 2) for m in (person, shadow))
    frames = []
    for p, s in zip(person, shadow):
        f = bg.astype(np.float32)
        f[s] *= 0.6
        f[p] = 20
        frames.append(f.round().astype(np.uint8))
    stage = PropagateStage(PropagateConfig(shadows="static"))
    outs, holes_all = [], []
    for s in range(0, n, 8):
        x = torch.from_numpy(np.stack(frames[s : s + 8])).permute(0, 3, 1, 2).float() / 255
        o, _, hl = stage(x, torch.from_numpy(person[s : s + 8, None]).float())
        outs.append((o.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8))
        holes_all.append(hl[:, 0].numpy() > 0)
    out, holes = np.concatenate(outs), np.concatenate(holes_all)
    later = slice(16, n)  # the first frames have too little history to tell shadow from ground
    assert (holes[later] & shadow[later]).sum() > 0.9 * shadow[later].sum()
    assert (holes[later] & ~person[later] & ~shadow[later]).sum() < 0.5 * shadow[later].sum()
    err = np.abs(out[later].astype(int) - bg.astype(int))[shadow[later]].mean()
    assert err < 3  # the shadow is gone: background restored


@pytest.mark.parametrize("inpainter", ["telea", "patchmatch"])
def test_still_camera_invents_the_unseen_part_once_zero_flicker(inpainter):
    """A person who never moves, still camera: what no frame saw is invented once and the same
    pixels come back in every frame (zero flicker), across windows."""
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline

    bg = _photo()
    rng = np.random.default_rng(0)
    mask = np.zeros((240, 432), bool)
    mask[80:170, 200:250] = True
    frames = []
    for _t in range(10):  # sensor noise, so frames differ a little, as real ones do
        noisy = np.clip(bg.astype(int) + rng.integers(-2, 3, bg.shape), 0, 255).astype(np.uint8)
        frames.append(np.where(mask[:, :, None], np.uint8(30), noisy))
    pipe = Pipeline(load_config(None, {"inpaint.backend": inpainter, "masks.dilate_px": 0,
                                      "runtime.window": 4, "propagate.shadows": "off"}))
    out = list(pipe.run(frames, masks=[mask] * 10))
    first = out[0][mask]
    assert all(np.array_equal(o[mask], first) for o in out[1:])
    assert np.abs(first.astype(int) - 30).mean() > 20  # really filled, not the person


def test_flow_refinement_aligns_what_a_homography_missed():
    """A source that is off by a non-rigid shift (1.5 px at the left, 3 px at the right: parallax) is
    aligned to the target by dense flow, including inside the target's hole, where the flow is
    carried in from around it."""
    import cv2

    from bgclean.stages.propagate import refine_by_flow

    target = _photo().astype(np.float32) / 255
    h, w = target.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    shift = 1.5 + 1.5 * gx / w
    source = cv2.remap(target, gx - shift, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    hole = np.zeros((h, w), bool)
    hole[80:160, 180:240] = True
    src_vis = np.ones((h, w), bool)
    aligned, vis = refine_by_flow(source, src_vis, target, ~hole)
    inner = hole.copy()
    inner[:, :8] = inner[:, -8:] = False
    before = np.abs(source - target)[inner].mean()
    after = np.abs(aligned - target)[inner & (vis > 0)].mean()
    assert after < 0.4 * before, (before, after)
    assert (vis > 0)[inner].mean() > 0.95


def test_exposure_of_a_warped_frame_is_matched_around_the_hole():
    from bgclean.stages.propagate import exposure_gains, exposure_ring

    target = _photo().astype(np.float32) / 255 * 0.8
    brighter = np.clip(target * np.array([1.25, 1.2, 1.15], np.float32), 0, 1)
    hole = np.zeros(target.shape[:2], bool)
    hole[80:160, 180:240] = True
    ring = np.nonzero(exposure_ring(~hole))
    gains = exposure_gains(brighter, np.ones_like(hole), target, ring)
    matched = np.clip(brighter * gains, 0, 1)
    assert np.abs(matched - target)[hole].mean() < 0.2 * np.abs(brighter - target)[hole].mean()
    assert exposure_gains(target.copy(), np.ones_like(hole), target, ring) is None  # no drift: left exactly as it was


def test_window_holds_the_pixels_and_their_surroundings_inside_the_frame():
    from bgclean.stages.propagate import padded_box

    assert padded_box(np.array([50, 90]), np.array([100, 120]), 240, 432, margin=30) == (20, 121, 70, 151)
    # a tall box grows by half its own height, more than the margin
    assert padded_box(np.array([60, 159]), np.array([100, 120]), 240, 432, margin=30) == (10, 210, 70, 151)
    assert padded_box(np.array([0, 239]), np.array([0, 431]), 240, 432, 30) == (0, 240, 0, 432)


def test_moving_camera_without_a_shadow_keeps_the_hole():
    """A pan over a textured photo and a walker who casts no shadow: nothing joins the hole."""
    big = _photo(extra=40)
    n = 16
    masks = _walker_masks(n)
    frames = []
    for t in range(n):
        dx = 40 + int(round(-30 + 60 * t / (n - 1)))
        frames.append(np.where(masks[t][:, :, None], np.uint8(20), np.ascontiguousarray(big[40:280, dx : dx + 432])))
    stage = PropagateStage(PropagateConfig())
    grown = []
    for s in range(0, n, 8):
        x = torch.from_numpy(np.stack(frames[s : s + 8])).permute(0, 3, 1, 2).float() / 255
        grown.append(stage(x, torch.from_numpy(masks[s : s + 8, None]).float(), dilation=5)[2][:, 0].numpy() > 0)
    assert not stage.static
    extra = np.concatenate(grown) & ~masks
    assert extra.sum() < 0.05 * masks.sum()


def test_far_sources_are_aligned_directly_not_through_the_chained_camera_path():
    """A 24-frame pan: multiplying frame-to-frame homographies adds each step's error, so far
    sources land off by pixels; matched directly against the target they land within a fraction."""
    big = _photo(extra=40)
    n = 24
    masks = _walker_masks(n)
    truth, frames = [], []
    for t in range(n):
        dx = 40 + int(round(-30 + 60 * t / (n - 1)))
        view = np.ascontiguousarray(big[40:280, dx : dx + 432])
        truth.append(view)
        frames.append(np.where(masks[t][:, :, None], np.uint8(20), view))
    stage = PropagateStage(PropagateConfig(unchanged_tolerance=0))  # the copy over the whole hole
    out, remaining = _run(stage, frames, masks)
    seen = masks & ~remaining
    got = np.concatenate([out[t][seen[t]] for t in range(n)])
    want = np.concatenate([truth[t][seen[t]] for t in range(n)])
    # the chained path alone lands the far sources more than 5 dB below this
    assert _psnr(got, want) > 40


def test_nan_statistic_is_torchs_median_and_quantile_over_the_sightings():
    """The one-sort statistic over sightings (NaN where a frame did not see the pixel) gives the
    same values as torch's nanmedian (the lower middle value) and nanquantile (linear)."""
    from bgclean.stages.propagate import nan_statistic

    rng = np.random.default_rng(0)
    stack = rng.random((7, 500, 3)).astype(np.float32)
    count = rng.integers(0, 8, 500)
    for p in range(500):
        stack[count[p] :, p] = np.nan
    stack = stack[rng.permutation(7)]  # sightings in any order
    t = torch.from_numpy(stack)
    np.testing.assert_array_equal(nan_statistic(stack, count), torch.nanmedian(t, dim=0).values.nan_to_num(0).numpy())
    np.testing.assert_allclose(nan_statistic(stack, count, 0.9), torch.nanquantile(t, 0.9, dim=0).nan_to_num(0).numpy(),
                               atol=1e-6)
    assert (nan_statistic(stack, count)[count == 0] == 0).all()


def test_shadow_ground_belongs_to_people_not_to_a_racket_in_the_air():
    """Each person of the hole has her own ground below her knees; a small separate blob (a racket
    or a ball apart from her, high in the frame) gets none, so its 'ground' in the air cannot sway
    the smooth-ground test."""
    from bgclean.stages.propagate import shadow_candidates

    hole = np.zeros((240, 432), bool)
    hole[60:200, 100:140] = True  # a person
    hole[20:40, 300:330] = True  # a racket far from her
    img = np.full((240, 432, 3), 0.6, np.float32)
    img[205:208, 140:400] *= 0.5  # her shadow: a dark line on the ground
    cand, grounds = shadow_candidates(img, hole)
    assert len(grounds) == 1
    assert grounds[0][200:, 140:200].all() and not grounds[0][:150].any()
    assert cand[205:208, 150:300].all() and not cand[:200].any()


def test_ring_error_prefers_the_homography_that_aligns_the_ring():
    """The direct-or-chained choice: a source shifted 3 px right is aligned by the homography that
    undoes the shift (error near 0 levels), not by the identity."""
    import cv2

    from bgclean.stages.propagate import exposure_ring, ring_error

    target = _photo().astype(np.float32) / 255
    h, w = target.shape[:2]
    shift = np.array([[1, 0, 3], [0, 1, 0], [0, 0, 1]], np.float64)  # target -> source
    source = cv2.warpPerspective(target, shift, (w, h), borderMode=cv2.BORDER_REFLECT)
    hole = np.zeros((h, w), bool)
    hole[80:160, 180:240] = True
    ys, xs = np.nonzero(exposure_ring(~hole))
    gray = cv2.cvtColor((target * 255).round().astype(np.uint8), cv2.COLOR_RGB2GRAY)[ys, xs].astype(np.float32)
    right = ring_error(source, np.linalg.inv(shift), (ys, xs), gray)  # source -> target
    assert right < 1.0, right
    assert ring_error(source, np.eye(3), (ys, xs), gray) > 3 * max(right, 0.5)


def test_trimmed_mean_of_the_sightings_drops_the_outliers_and_averages_the_middle():
    from bgclean.stages.propagate import nan_statistic

    pixels = [[0.1, 0.9, 0.4, 0.6], [0.3, 0.2, 0.9, 0.25, 0.0], [0.9, 0.4, 0.0], [0.3, 0.5], []]
    stack = np.full((5, len(pixels), 3), np.nan, np.float32)
    for p, seen in enumerate(pixels):
        stack[: len(seen), p] = np.array(seen, np.float32)[:, None]
    count = np.array([len(seen) for seen in pixels])
    out = nan_statistic(stack[::-1].copy(), count, trim=0.2)  # NaNs first: order does not matter
    # 4 sightings: the mean of the middle 2; 5: of the middle 3; 3: the median; 2: their mean; none: 0
    np.testing.assert_allclose(out[:, 0], [0.5, 0.25, 0.4, 0.4, 0.0], atol=1e-6)
    assert (out == out[:, :1]).all()
    np.testing.assert_allclose(nan_statistic(stack, count)[:, 0], [0.4, 0.25, 0.4, 0.3, 0.0])  # trim 0: median


def test_tracked_corners_refit_a_homography_to_a_fraction_of_a_pixel():
    """A homography off by 0.8 px and a 0.4% scale (what ORB's whole-pixel keypoints gave on the
    synthetic clips) is refit to corners tracked by Lucas-Kanade: within 0.1 px of the truth over
    the frame; corners that land on the person (not background) are not used."""
    import cv2

    from bgclean.stages.propagate import good_corners, track_refined

    big = _photo(extra=20).astype(np.float32)
    h, w = 240, 432
    true = np.array([[1.0, 0, 2.35], [0, 1.0, -1.6], [0, 0, 1]])  # source -> target: a sub-pixel move
    to_src = np.array([[1.0, 0, 20], [0, 1.0, 20], [0, 0, 1]])
    src = cv2.warpPerspective(big, to_src, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    dst = cv2.warpPerspective(big, to_src @ np.linalg.inv(true), (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    gray = lambda a: cv2.cvtColor(a.round().astype(np.uint8), cv2.COLOR_RGB2GRAY)  # noqa: E731
    valid = np.ones((h, w), bool)
    valid[60:200, 180:250] = False  # a person in both frames
    dst_img = gray(dst)
    dst_img[~valid] = 30
    off = true @ np.array([[1.004, 0, 0.8], [0, 1.004, 0], [0, 0, 1]])
    refined = track_refined(gray(src), dst_img, valid, off, good_corners(gray(src), valid))
    ys, xs = np.mgrid[10:h - 10:20, 10:w - 10:20]
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)[:, None]

    def error(m):
        return np.linalg.norm(cv2.perspectiveTransform(grid, m) - cv2.perspectiveTransform(grid, true), axis=2)

    assert error(off).mean() > 0.8
    assert error(refined).max() < 0.1, error(refined).max()


def test_an_animal_seen_where_the_hole_is_later_is_not_copied_into_it():
    """Propagation copies what other frames showed, so a dog that sat where the woman stands later
    came back as a pale ghost in her hole (dogs_jump frame 22). Still camera: a bright "dog" stands
    in frames 0-5 where a dark person stands in frames 8-15 (she stood elsewhere before). Without
    ``movers`` the hole takes the dog's colours; with the dog passed as a mover it gets the true
    background, and the dog stays in its own frames."""
    bg = _photo()
    n = 16
    person = np.zeros((n, 240, 432), bool)
    person[:8, 60:200, 40:90] = True  # first at the left
    person[8:, 60:200, 250:300] = True  # then where the dog was
    dog = np.zeros((n, 240, 432), bool)
    dog[:6, 120:200, 240:310] = True
    frames = [np.where(p[:, :, None], np.uint8(20), np.where(d[:, :, None], np.uint8(240), bg))
              for p, d in zip(person, dog)]
    spot = (slice(8, n), slice(125, 195), slice(255, 295))  # inside both the dog and her later hole

    def fill(movers):
        return _run(PropagateStage(PropagateConfig(shadows="off", unchanged_tolerance=0)), frames, person, movers=movers)[0]

    truth = np.broadcast_to(bg, (n, *bg.shape))
    plain, kept_out = fill(None), fill(dog)
    # without movers the nearest sightings mix the dog in (a pale ghost): the test is meaningful
    assert _psnr(plain[spot], truth[spot]) < 25
    # with the dog a mover, only the frames that saw the background there fill it (frames 6-7)
    assert _psnr(kept_out[spot], truth[spot]) > 40
    assert np.array_equal(kept_out[:6][dog[:6]], np.stack(frames[:6])[dog[:6]])  # the dog stays


def test_changed_pixels_keeps_what_differs_grown_and_drops_the_background_seen_as_it_is():
    """A hole three times the person's size over a photo; the fill is the photo shifted by a
    pixel (an alignment off by one) with a little noise: the hole shrinks to the person grown by
    ``grow``; what no frame saw stays; a faint speck (above ``low``, under the seed level) goes."""
    import cv2

    from bgclean.ops import octagon
    from bgclean.stages.propagate import changed_pixels

    bg = _photo().astype(np.float32) / 255
    rng = np.random.default_rng(0)
    fill = np.roll(bg, 1, axis=1) + rng.normal(0, 0.005, bg.shape).astype(np.float32)
    person = np.zeros((240, 432), bool)
    person[80:180, 200:240] = True
    img = bg.copy()
    img[person] = np.clip(img[person] + np.float32([0.3, -0.2, 0.1]), 0, 1)  # a person unlike the wall
    img[60, 150] = np.clip(img[60, 150] + 0.06, 0, 1)  # a speck: above 0.04 but no seed (0.1) in it
    hole = np.zeros_like(person)
    hole[40:220, 140:300] = True
    unseen = np.zeros_like(person)
    unseen[200:210, 280:290] = True  # what no frame saw: kept as it is
    kept = changed_pixels(img, np.where(hole[:, :, None], fill, img), hole, unseen, 0.04, 5)
    want = (cv2.dilate((person | unseen).astype(np.uint8), octagon(5)) > 0) & hole
    assert kept[person].all() and kept[unseen].all()
    assert not (kept & ~want).any()  # the speck and the misaligned wall went
    assert (want & ~kept).sum() < 0.005 * want.sum()  # (a few of the person's pixels equal the wall)
    assert kept.sum() < 0.3 * hole.sum()
    # no tolerance for misalignment: the shifted photo's edges differ, and the hole keeps more
    strict = changed_pixels(img, np.where(hole[:, :, None], fill, img), hole, unseen, 0.04, 5, tolerance=0)
    assert strict.sum() > 1.3 * kept.sum()


