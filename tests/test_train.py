"""Inpainter training: person-shaped holes, the loop (overfits one image), resume, export, CLI."""

import json

import numpy as np
import pytest
import torch
from conftest import data, photo

from bgclean.holes import (
    HoleSampler,
    place_silhouette,
    silhouettes_from_masks,
    tall_rectangles,
)
from bgclean.train.config import load_train_config


@pytest.fixture(scope="module")
def one_photo(tmp_path_factory):
    """One 96x96 crop of brick courses (scikit-image's ``brick``), as the whole photo folder."""
    import cv2

    folder = tmp_path_factory.mktemp("photos")
    img = cv2.resize(photo("brick"), (192, 192), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(folder / "one.png"), np.ascontiguousarray(img[6:102, 40:136, ::-1]))
    return folder


def test_silhouettes_are_people_shaped_and_holes_stay_in_their_area_range():
    sils = silhouettes_from_masks(data("dogs_jump/masks"), ids=(3,))
    assert len(sils) >= 10
    assert all(s.shape[0] > s.shape[1] for s in sils)  # a standing woman: taller than wide
    rng = np.random.default_rng(0)
    sampler = HoleSampler(sils, rect_prob=0.3, area=(0.05, 0.3))
    areas = [sampler(128, rng).mean() for _ in range(40)]
    assert 0.025 <= min(areas) and max(areas) <= 0.375
    m = place_silhouette(sils[0], 128, 0.1, rng)
    assert 0.03 < m.mean() < 0.2
    r = tall_rectangles(128, rng, count=1, scribbles=0)
    ys, xs = np.nonzero(r)
    assert np.ptp(ys) > np.ptp(xs)  # tall


def _tiny(one_photo, out, **extra):
    return load_train_config(None, {
        "arch": "unet", "width": 8, "residual": False, "photos": str(one_photo), "val_photos": 0,
        "size": 64, "scale_range": [0.05, 0.05], "rect_prob": 1.0, "batch": 4, "lr": 0.003,
        "w_perceptual": 0.0, "w_tv": 0.0, "eval_images": 4, "eval_every": 100, "ckpt_every": 100,
        "out": str(out), "threads": 1, **extra})


def test_tiny_config_overfits_one_image(one_photo, tmp_path):
    """A plain (non-residual) U-Net learns one 64x64 image (brick courses) within a few hundred CPU
    steps: its fill of fixed holes ends well above Telea's (measured: +4.0 dB at 400 steps)."""
    from bgclean.train.trainer import Trainer

    result = Trainer(_tiny(one_photo, tmp_path, steps=400)).run()
    assert result["step"] == 400
    assert result["eval_psnr"] > result["eval_psnr_classical"] + 2.5, result
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    first = next(x for x in lines if "l1_hole" in x)
    assert lines[-1]["eval_psnr"] == pytest.approx(result["eval_psnr"], abs=1e-3)
    assert max(x["l1_hole"] for x in lines if "l1_hole" in x and x["step"] >= 380) < 0.75 * first["l1_hole"]


def test_training_resumes_from_its_checkpoint_and_exports(one_photo, tmp_path):
    from bgclean.models import build_model
    from bgclean.train.trainer import Trainer, export_weights

    t = Trainer(_tiny(one_photo, tmp_path, steps=6, ckpt_every=3, w_adv=0.01, w_perceptual=0.05))
    t.run()
    before = {k: v.clone() for k, v in t.net.state_dict().items()}
    again = Trainer(_tiny(one_photo, tmp_path, steps=10, lr=0.001, w_adv=0.01, w_perceptual=0.05))
    assert again.step == 6  # resumed, not restarted
    assert again.best == t.best > 0  # best.pt is replaced only by a better eval than the first run's
    assert again.opt.param_groups[0]["lr"] == 0.001  # a resumed run may lower the rate
    for k, v in again.net.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert again.run()["step"] == 10
    assert (tmp_path / "best.pt").exists()
    arch, digest = export_weights(tmp_path / "last.pt", tmp_path / "net.pth")
    assert arch == "inpaint.unet.w8" and len(digest) == 64
    net = build_model(arch)
    net.load_state_dict(torch.load(tmp_path / "net.pth", weights_only=True))
    with pytest.raises(ValueError, match="holds inpaint.unet.w8"):
        Trainer(_tiny(one_photo, tmp_path, arch="dmfn"))


def test_batches_made_by_worker_processes_are_the_ones_one_process_makes(one_photo, tmp_path):
    """``workers`` (the GPU configs make batches in one process per core, ahead of the step) and a
    resumed run see the same batches as one run in one process: batch k comes from (seed, k)."""
    from bgclean.train.trainer import Trainer

    t = Trainer(_tiny(one_photo, tmp_path, steps=5))
    alone = [b for b in t.batches()]
    assert len(alone) == 5 and not torch.equal(alone[0][0], alone[1][0])  # not one batch repeated
    parallel = Trainer(_tiny(one_photo, tmp_path, steps=5, workers=2)).batches()
    for a, b in zip(alone, parallel, strict=True):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    t.step = 3  # what a run resumed at step 3 draws
    for a, b in zip(alone[3:], t.batches(), strict=True):
        assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
    assert load_train_config("gpu", data="d").workers == -1 and load_train_config("cpu", data="d").workers == 0


def test_a_new_run_can_start_from_the_shipped_weights(one_photo, tmp_path):
    """``init: inpaint.dmfn`` (the bundled gpu-refine config) starts the generator at the shipped
    weights, so a GPU run refines them; a checkpoint of the run then wins over ``init``; weights of
    another architecture are refused with the fix in the message."""
    from bgclean.errors import ConfigError
    from bgclean.train.trainer import Trainer
    from bgclean.weights.registry import REGISTRY
    from bgclean.weights.store import load_state_dict

    dmfn = {"arch": "dmfn", "width": 32, "residual": True, "scale": 2, "init": "inpaint.dmfn"}
    t = Trainer(_tiny(one_photo, tmp_path, steps=2, ckpt_every=2, **dmfn))
    shipped = load_state_dict(REGISTRY.get("inpaint.dmfn"))
    for k, v in t.net.state_dict().items():
        torch.testing.assert_close(v, shipped[k].float())
    t.run()
    trained = {k: v.clone() for k, v in t.net.state_dict().items()}
    again = Trainer(_tiny(one_photo, tmp_path, steps=4, **dmfn))
    assert again.step == 2 and all(torch.equal(v, trained[k]) for k, v in again.net.state_dict().items())
    with pytest.raises(ConfigError, match="holds inpaint.dmfn.w32.res2.*set arch"):
        Trainer(_tiny(one_photo, tmp_path / "other", init="inpaint.dmfn"))
    assert load_train_config("gpu-refine", data="d").init == "inpaint.dmfn"


def test_train_config_rejects_unknown_keys_and_architectures(tmp_path):
    from bgclean.errors import ConfigError

    with pytest.raises(ConfigError, match="stepz"):
        load_train_config(None, {"stepz": 3})
    with pytest.raises(ConfigError, match="ffc"):
        load_train_config(None, {"arch": "lama"})
    cfg = load_train_config("cpu", data="d")  # bundled name
    assert "mate-Aqua.jpg" in cfg.exclude and cfg.residual


def test_bundled_configs_read_their_data_from_the_data_flag_and_write_here(tmp_path, monkeypatch):
    """The bundled configs live inside the installed package: their data comes from ``--data``
    (an error that names the flag without it) and their ``out`` is read from the current folder,
    never the package's. Overrides are read from the current folder too."""
    from bgclean.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    for name in ("cpu", "gpu", "gpu-refine"):
        with pytest.raises(ConfigError, match="--data DIR"):
            load_train_config(name)
        cfg = load_train_config(name, data="data")
        assert cfg.photos == str(tmp_path / "data" / "photos")
        assert all(m.path.startswith(str(tmp_path / "data" / "videos")) for m in cfg.masks)
        assert all(v.path.startswith(str(tmp_path / "data")) for v in cfg.videos)
        assert cfg.out.startswith(str(tmp_path / "runs"))
    cfg = load_train_config("cpu", {"out": "runs/x", "photos": "pics", "masks": [{"path": "sils"}]})
    assert cfg.out == str(tmp_path / "runs" / "x") and cfg.photos == str(tmp_path / "pics")
    assert cfg.masks[0].path == str(tmp_path / "sils")


def test_a_config_file_reads_its_data_from_its_folder(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "mine.yaml").write_text("photos: pics\nout: runs/mine\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_train_config(conf / "mine.yaml")
    assert cfg.photos == str(conf / "pics") and cfg.out == str(tmp_path / "runs" / "mine")


def test_bundled_configs_share_one_list_of_photos_never_trained_on():
    """bench/inpaint.py evaluates on photos every bundled config excludes (and checks so itself)."""
    excluded = [set(load_train_config(name, data="d").exclude) for name in ("cpu", "gpu", "gpu-refine")]
    assert len(excluded[0]) == 8 and excluded[0] == excluded[1] == excluded[2]


def test_cli_train_needs_a_config(capsys):
    from bgclean.cli import main

    assert main(["train"]) == 2
    assert "--config" in capsys.readouterr().err


def test_video_frames_give_person_free_training_crops():
    """schoolgirls frames with their masks: every crop drawn from the video avoids the (dilated)
    girls, so no person is ever the 'truth' a network learns to paint."""
    from bgclean.train.data import PhotoHoles, video_backgrounds

    frames = video_backgrounds(data("schoolgirls/schoolgirls.mp4"), data("schoolgirls/masks"),
                               every=20)
    assert len(frames) == 4 and frames[0][0].shape == (240, 432, 3)
    samples = PhotoHoles([], HoleSampler([], rect_prob=1.0), 64, videos=frames, video_share=1.0)
    rng = np.random.default_rng(0)
    picked = [samples.video_crop(rng) for _ in range(20)]
    assert all(p is not None and p.shape == (64, 64, 3) for p in picked)
    # each crop is a person-free window of some frame
    for p in picked[:5]:
        found = False
        for frame, person in frames:
            res = __import__("cv2").matchTemplate(frame, np.ascontiguousarray(p), __import__("cv2").TM_SQDIFF)
            y, x = np.unravel_index(np.argmin(res), res.shape)
            if res[y, x] < 100:  # an exact match (up to float rounding; others are > 1e5)
                found = not person[y : y + 64, x : x + 64].any()
                break
        assert found
