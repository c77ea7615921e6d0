"""Real-ESRGAN: our torch ports against the ncnn runtime, tiling, fill mode and --upscale."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bgclean.ops import mask_boxes, tiled_upscale
from bgclean.pipeline.config import SuperResConfig
from bgclean.weights import store
from bgclean.weights.registry import REGISTRY


def _ncnn_run(spec, x: np.ndarray) -> np.ndarray:
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    for opt in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage",
                "use_vulkan_compute"):
        setattr(net.opt, opt, False)  # fp32 everywhere, to compare arithmetic, not precision modes
    net.load_param(str(store.resolve(spec.companion)))
    net.load_model(str(store.resolve(spec)))
    arr = np.ascontiguousarray(x, dtype=np.float32)
    mat = ncnn.Mat(arr)  # wraps arr's memory: keep arr alive until extraction
    ex = net.create_extractor()
    ex.input("data", mat)
    _, out = ex.extract("output")
    return np.array(out)


@pytest.mark.parametrize("name", ["realesrgan.animevideov3", "realesrgan.x4plus.ncnn"])
def test_ncnn_conversion_matches_the_ncnn_runtime(name):
    """Real weights from the registry package, converted from .param/.bin by our own reader, run in
    our torch modules: max abs difference to the ncnn runtime below 1e-4 on a real photo crop."""
    import skimage.data

    from bgclean.models import build_model

    spec = REGISTRY.get(name)
    model = build_model(spec.architecture)
    model.load_state_dict(store.load_state_dict(spec))
    img = skimage.data.astronaut()[180:228, 200:260].astype(np.float32) / 255  # face and suit
    x = np.ascontiguousarray(img.transpose(2, 0, 1))
    with torch.inference_mode():
        ours = model.eval()(torch.from_numpy(x)[None])[0].numpy()
    theirs = _ncnn_run(spec, x)
    assert ours.shape == theirs.shape == (3, 192, 240)
    assert np.abs(ours - theirs).max() < 1e-4


def test_official_x4plus_falls_back_to_the_ncnn_pair_offline(monkeypatch):
    """realesrgan.x4plus lists the official .pth first; when it cannot be fetched, the ncnn pair is
    used and gives the same architecture's weights."""
    spec = REGISTRY.get("realesrgan.x4plus")
    assert spec.fallback == "realesrgan.x4plus.ncnn" and spec.sources[0].url.endswith("RealESRGAN_x4plus.pth")
    monkeypatch.setattr(store, "converted_path", lambda s: store.bgclean_home() / "nonexistent" / "x.pt")
    monkeypatch.setattr(store, "_fetch_url", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    state = store.load_state_dict(spec)
    assert state["conv_first.weight"].shape == (64, 3, 3, 3) and len(state) == 2 * (1 + 23 * 15 + 5)


@pytest.mark.parametrize("tile,pad", [(16, 0), (24, 5), (0, 3), (100, 4)])
def test_tiling_equals_whole_image_for_a_local_operator(tile, pad):
    """With a 3x3 network (receptive radius 1) and tile_pad >= 1, tiles stitch to the whole-image result."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def net(t):
        return F.interpolate(conv(t), scale_factor=2, mode="nearest")

    x = torch.rand(2, 3, 37, 53)
    whole = tiled_upscale(net, x, 2, tile=0, tile_pad=max(pad, 1))
    tiled = tiled_upscale(net, x, 2, tile=tile, tile_pad=max(pad, 1), batch_size=3)
    assert tiled.shape == (2, 3, 74, 106)
    assert torch.allclose(tiled, whole, atol=1e-6)


def test_mask_boxes_grow_clip_and_merge():
    m = torch.zeros(50, 60)
    m[10:20, 10:20] = 1
    m[12:18, 24:30] = 1  # close enough to merge once grown
    m[40:45, 50:58] = 1
    boxes = sorted(mask_boxes(m, 3))
    assert boxes == [(7, 23, 7, 33), (37, 48, 47, 60)]


def _sharpness(img: np.ndarray) -> float:
    import cv2

    return float(np.abs(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)).mean())


def _blur(a: np.ndarray, sigma: float = 3) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(a.astype(np.float32), (0, 0), sigma)


def _restore(x, model, size, **cfg):
    from bgclean.stages.superres import SuperResStage

    out = SuperResStage(SuperResConfig(model=model, **cfg)).resize(x, size)
    return (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def test_super_resolution_is_sharper_than_bicubic_and_pixel_aligned():
    """A real photo downscaled 4x and restored: Real-ESRGAN has far more high-frequency detail than
    bicubic, and no shift of its output matches the truth better than none (tiling and padding keep
    the geometry exact)."""
    import cv2
    import skimage.data

    truth = skimage.data.astronaut()[100:356, 100:356]
    small = cv2.resize(truth, (64, 64), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255
    out_sr = _restore(x, "realesrgan.animevideov3", (256, 256), tile=32)
    out_bic = _restore(x, "none", (256, 256))
    assert _sharpness(out_sr) > 1.3 * _sharpness(out_bic)
    errs = {(dy, dx): float(np.abs(_blur(np.roll(out_sr, (dy, dx), (0, 1))) - _blur(truth))[8:-8, 8:-8].mean())
            for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    assert min(errs, key=errs.get) == (0, 0)


def test_fill_mode_keeps_bicubic_colours_and_sr_detail():
    """restore_fill with keep_colors: the low-pass error to the truth is no worse than bicubic's
    (Real-ESRGAN alone shifts tones by a few levels), while the detail is Real-ESRGAN's."""
    import cv2
    import skimage.data

    from bgclean.stages.superres import SuperResStage

    truth = skimage.data.astronaut()[100:356, 100:356]
    small = torch.from_numpy(cv2.resize(truth, (64, 64), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None] / 255.0
    holes = torch.zeros(1, 1, 256, 256)
    holes[:, :, 40:220, 40:220] = 1
    res = {}
    for model in ("realesrgan.animevideov3", "none"):
        out = SuperResStage(SuperResConfig(model=model)).restore_fill(small.float(), holes)
        res[model] = (out[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[48:212, 48:212]
    t = truth[48:212, 48:212]
    err = {k: float(np.abs(_blur(v) - _blur(t)).mean()) for k, v in res.items()}
    assert err["realesrgan.animevideov3"] <= 1.1 * err["none"]
    assert _sharpness(res["realesrgan.animevideov3"]) > 1.3 * _sharpness(res["none"])


def test_upscale_4_with_x4plus_writes_an_image_four_times_the_size(tmp_path, capsys):
    import cv2
    import skimage.data

    from bgclean import io
    from bgclean.cli import main

    src = tmp_path / "small.png"
    cv2.imwrite(str(src), skimage.data.astronaut()[150:198, 180:244, ::-1])  # 64x48
    mask = np.zeros((48, 64), bool)
    mask[10:30, 20:40] = True
    io.write_mask_png(tmp_path / "m.png", mask)
    out = tmp_path / "big.png"
    code = main([str(src), "-o", str(out), "--masks", str(tmp_path / "m.png"), "--upscale", "4", "--sr",
                 "realesrgan.x4plus", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert cv2.imread(str(out)).shape == (192, 256, 3)


def test_fill_mode_super_resolves_only_inside_the_mask(tmp_path, capsys):
    """--inpaint-size below the frame: the fill is made small and restored with Real-ESRGAN; outside
    the mask the output is the input bit for bit, and inside it differs from the bicubic restore."""
    import cv2
    import skimage.data

    from bgclean import io
    from bgclean.cli import main

    img = skimage.data.astronaut()
    src = tmp_path / "a.png"
    cv2.imwrite(str(src), img[:, :, ::-1])
    mask = np.zeros(img.shape[:2], bool)
    mask[300:420, 60:160] = True
    io.write_mask_png(tmp_path / "m.png", mask)
    outs = {}
    for sr in ("realesrgan.animevideov3", "none"):
        out = tmp_path / f"{sr}.png"
        code = main([str(src), "-o", str(out), "--masks", str(tmp_path / "m.png"), "--inpaint-size", "128",
                     "--sr", sr, "--save-masks", str(tmp_path / f"saved_{sr}"), "--quiet"])
        assert code == 0, capsys.readouterr().err
        outs[sr] = cv2.imread(str(out))[:, :, ::-1]
        hole = cv2.imread(str(tmp_path / f"saved_{sr}" / "a.png"), cv2.IMREAD_GRAYSCALE) > 0
        assert np.array_equal(outs[sr][~hole], img[~hole])
    inside = outs["none"][mask].astype(int) - outs["realesrgan.animevideov3"][mask].astype(int)
    assert np.abs(inside).mean() > 0.5


def test_fill_mode_on_vtest_frames_leaves_everything_outside_the_mask_untouched(tmp_path, capsys):
    """Real vtest frames, real segmentation, fill made at 256 px and restored with Real-ESRGAN:
    outside the saved masks every output pixel equals the decoded input."""
    import cv2
    from conftest import data, ffmpeg

    from bgclean.cli import main

    frames = tmp_path / "vtest"
    frames.mkdir()
    ffmpeg("-i", str(data("vtest_20.avi")), "-vf", "select='between(n,10,13)'", "-fps_mode", "passthrough",
           str(frames / "f%02d.png"))
    out, saved = tmp_path / "out", tmp_path / "masks"
    code = main([str(frames), "-o", str(out), "--segmenter", "u2net.small", "--inpaint-size", "256",
                 "--save-masks", str(saved), "--quiet"])
    assert code == 0, capsys.readouterr().err
    names = sorted(p.name for p in frames.iterdir())
    assert len(names) == 4 and sorted(p.name for p in out.iterdir()) == names
    for name in names:
        src, dst = cv2.imread(str(frames / name)), cv2.imread(str(out / name))
        hole = cv2.imread(str(saved / name), cv2.IMREAD_GRAYSCALE) > 0
        assert 0.001 < hole.mean() < 0.5
        assert np.array_equal(src[~hole], dst[~hole])
        assert not np.array_equal(src[hole], dst[hole])


@pytest.mark.gpu
def test_fp16_cuda_super_resolution_matches_fp32_cpu():
    from bgclean.stages.superres import SuperResStage

    torch.manual_seed(0)
    x = torch.rand(1, 3, 96, 128)
    cpu = SuperResStage(SuperResConfig(model="realesrgan.animevideov3"), "cpu").resize(x, (384, 512))
    gpu = SuperResStage(SuperResConfig(model="realesrgan.animevideov3", half=True), "cuda").resize(x.cuda(), (384, 512))
    assert (gpu.cpu() - cpu).abs().mean() < 2e-3
