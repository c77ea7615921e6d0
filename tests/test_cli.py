"""End to end through the command line, on real pixels, and every bad input from the foundation
issue: a clear message, a non-zero exit code, no partial output, the input unchanged."""

import hashlib
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, SAMPLE, ffmpeg

import bgclean
from bgclean import io
from bgclean.cli import main


def tree_digest(path: Path) -> dict:
    """name → sha256 of every file under path (or of path itself)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def run_cli(args, capsys):
    code = main([str(a) for a in args] + ["--quiet"])
    return code, capsys.readouterr().err


def center_mask(path: Path, h: int, w: int) -> Path:
    m = np.zeros((h, w), bool)
    m[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = True
    io.write_mask_png(path, m)
    return path


def test_version_and_help_do_not_import_torch():
    code = ("import sys\nfrom bgclean.cli import main\n"
            "for a in (['--version'], ['--help'], ['run', '--help'], ['batch', '--help']):\n"
            "    try: main(a)\n"
            "    except SystemExit: pass\n"
            "assert 'torch' not in sys.modules and 'cv2' not in sys.modules, 'heavy import'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert f"bgclean {bgclean.__version__}" in proc.stdout and "--inpainter NAME" in proc.stdout


def test_a_file_named_like_a_command_is_cleaned_with_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train").mkdir()  # a folder of frames that happens to be called train
    cv2.imwrite(str(tmp_path / "train" / "f1.png"), np.full((20, 30, 3), 90, np.uint8))
    mask = center_mask(tmp_path / "m.png", 20, 30)
    assert run_cli(["run", "train", "-o", "out", "--masks", mask], capsys)[0] == 0
    assert (tmp_path / "out" / "f1.png").is_file()
    code, err = run_cli(["train"], capsys)  # the command, which names what it needs
    assert code == 2 and "bgclean train needs --config" in err


def test_flags_with_choices_are_checked_by_the_parser(capsys):
    assert main([str(SAMPLE), "--inpainter", "blur"]) == 2
    err = capsys.readouterr().err
    assert "argument --inpainter: invalid choice: 'blur'" in err and "telea" in err


def test_verbose_and_quiet_set_what_is_said(tmp_path):
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.full((20, 30, 3), 128, np.uint8))
    mask = center_mask(tmp_path / "m.png", 20, 30)

    def said(*flags):
        run = subprocess.run([sys.executable, "-m", "bgclean", str(img), "-o", str(tmp_path / "o.png"),
                              "--masks", str(mask), *flags], capture_output=True, text=True, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        return run.stderr

    assert "holding 16 frames at once" in said("-v")  # what the run decided, on request
    assert "holding 16" not in said()
    assert "holding 1 frames at once" in said("--memory", "0.3")  # a warning: shown by default
    assert said("--memory", "0.3", "-q") == ""


def test_video_keeps_frame_count_rate_duration_and_audio(clip_with_audio, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(clip_with_audio.read_bytes())
    mask = center_mask(tmp_path / "m.png", 240, 320)
    code, err = run_cli([clip, "--masks", mask], capsys)
    assert code == 0, err
    out = tmp_path / "clip.clean.mp4"
    src, dst = io.probe(clip), io.probe(out)
    assert io.count_video_frames(out) == io.count_video_frames(clip)
    assert dst.fps == src.fps == Fraction(30000, 1001)
    assert abs(dst.duration - src.duration) < 0.05
    assert dst.has_audio
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_png_output_is_bit_exact_outside_the_dilated_mask(schoolgirls_frames, tmp_path, capsys):
    """Real schoolgirls frames with their ground-truth person masks: every pixel outside the saved
    (dilated) mask equals the input; the people are replaced."""
    frames, masks = schoolgirls_frames
    out, saved = tmp_path / "clean", tmp_path / "saved"
    code, err = run_cli([frames, "-o", out, "--masks", masks, "--save-masks", saved], capsys)
    assert code == 0, err
    names = sorted(p.name for p in frames.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:
        src = cv2.imread(str(frames / name))
        dst = cv2.imread(str(out / name))
        hole = cv2.imread(str(saved / name), cv2.IMREAD_GRAYSCALE) > 0
        gt = cv2.imread(str(masks / name), cv2.IMREAD_GRAYSCALE) > 0
        assert hole[gt].all()  # dilation only grows the user's mask
        assert hole.mean() < 2.5 * gt.mean()
        assert np.array_equal(src[~hole], dst[~hole])
        changed = np.abs(src.astype(int) - dst.astype(int)).sum(axis=2) > 0
        assert changed[gt].mean() > 0.9  # the person's pixels were replaced


def test_fill_beats_leaving_the_hole_grey(schoolgirls_frames, tmp_path, capsys):
    """On a person-free background patch with a synthetic hole, the Telea fill is far closer to the
    truth than a flat mean-colour fill (the inpaint stage really inpaints)."""
    frames, _ = schoolgirls_frames
    img = cv2.imread(str(sorted(frames.iterdir())[0]))[:, :120]  # left strip: background only
    src = tmp_path / "bg.png"
    cv2.imwrite(str(src), img)
    hole = np.zeros(img.shape[:2], bool)
    hole[100:140, 40:70] = True
    io.write_mask_png(tmp_path / "hole.png", hole)
    code, err = run_cli([src, "-o", tmp_path / "out.png", "--masks", tmp_path / "hole.png", "--dilate", "0px"], capsys)
    assert code == 0, err
    out = cv2.imread(str(tmp_path / "out.png")).astype(float)
    truth = img.astype(float)
    err_fill = np.abs(out[hole] - truth[hole]).mean()
    err_flat = np.abs(truth[~hole].mean(axis=0) - truth[hole]).mean()
    assert err_fill < 0.7 * err_flat


def test_segmentation_end_to_end_on_a_real_frame(tmp_path, capsys):
    """u2net.small finds the astronaut in a real photo and the output replaces her."""
    import skimage.data

    img = skimage.data.astronaut()
    src = tmp_path / "astronaut.png"
    cv2.imwrite(str(src), img[:, :, ::-1])
    code, err = run_cli([src, "-o", tmp_path / "out.png", "--segmenter", "u2net.small", "--save-masks",
                         tmp_path / "m"], capsys)
    assert code == 0, err
    mask = cv2.imread(str(tmp_path / "m" / "astronaut.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert mask[250:350, 200:300].all()  # her torso
    assert not mask[:60, 420:].any()  # the sky-side top-right corner
    out = cv2.imread(str(tmp_path / "out.png"))[:, :, ::-1]
    assert np.array_equal(out[~mask], img[~mask])


@pytest.mark.parametrize("mode", ["rgba", "gray", "gray16", "rgb16"])
def test_rgba_grayscale_and_16bit_images_keep_their_format(tmp_path, capsys, mode):
    rng = np.random.default_rng(1)
    shape = {"rgba": (60, 80, 4), "gray": (60, 80), "gray16": (60, 80), "rgb16": (60, 80, 3)}[mode]
    dtype = np.uint16 if mode.endswith("16") else np.uint8
    smooth = cv2.resize(rng.integers(0, np.iinfo(dtype).max, (6, 8, 4), dtype=dtype), (80, 60))
    img = smooth[:, :, : shape[2]] if len(shape) == 3 else smooth[:, :, 0]
    src = tmp_path / f"{mode}.png"
    cv2.imwrite(str(src), img)
    mask = center_mask(tmp_path / "m.png", 60, 80)
    out = tmp_path / "out.png"
    code, err = run_cli([src, "-o", out, "--masks", mask, "--save-masks", tmp_path / "saved"], capsys)
    assert code == 0, err
    res = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert res.shape == img.shape and res.dtype == img.dtype
    hole = cv2.imread(str(tmp_path / "saved" / f"{mode}.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert np.array_equal(res[~hole], img[~hole])
    assert not np.array_equal(res[hole], img[hole])
    if mode == "rgba":
        assert np.array_equal(res[:, :, 3], img[:, :, 3])  # alpha passes through untouched


def test_odd_frame_sizes_work_for_folders_and_video(tmp_path, capsys):
    frames = tmp_path / "odd"
    frames.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), rng.integers(0, 255, (97, 161, 3), dtype=np.uint8))
    mask = center_mask(tmp_path / "m.png", 97, 161)
    code, err = run_cli([frames, "-o", tmp_path / "out", "--masks", mask], capsys)
    assert code == 0, err
    assert cv2.imread(str(tmp_path / "out" / "0.png")).shape == (97, 161, 3)
    code, err = run_cli([frames, "-o", tmp_path / "out.mp4", "--masks", mask], capsys)
    assert code == 0, err
    assert io.count_video_frames(tmp_path / "out.mp4") == 3


# ------------------------------------------------------------------ bad input


def _bad_cases(tmp_path: Path, clip: Path) -> dict:
    """name → (argv, expected exit code, message pattern)."""
    cases = {}
    cases["missing file"] = ([tmp_path / "nope.mp4"], 2, "does not exist")
    (tmp_path / "empty").mkdir()
    cases["empty folder"] = ([tmp_path / "empty"], 2, "no image frames")
    (tmp_path / "text.mp4").write_text("this is not a video\n")
    cases["text named mp4"] = ([tmp_path / "text.mp4"], 2, "not a readable video")
    fs = tmp_path / "fs.mp4"
    ffmpeg("-i", str(clip), "-c", "copy", "-movflags", "+faststart", str(fs))
    data = fs.read_bytes()
    fs.unlink()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])
    cases["truncated mp4"] = ([tmp_path / "trunc.mp4", "-o", tmp_path / "t_out.mp4", "--masks",
                               tmp_path / "m320.png"], 2, "truncated")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-frames:v", "0", "-c:v", "libx264",
           str(tmp_path / "zero.mp4"))
    cases["zero-frame video"] = ([tmp_path / "zero.mp4"], 2, "no video frames")
    (tmp_path / "afile").write_text("x")
    cases["unwritable output dir"] = ([clip, "-o", tmp_path / "afile" / "out.mp4"], 2, "not a directory")
    cases["output is input"] = ([clip, "-o", clip], 2, "is the input")
    (tmp_path / "bad.yaml").write_text("masks:\n  dilation: 3\n")
    cases["unknown config key"] = ([clip, "--config", tmp_path / "bad.yaml"], 2, r"bad\.yaml.*'dilation'")
    few = tmp_path / "few_masks"
    few.mkdir()
    for i in range(3):
        center_mask(few / f"{i}.png", 240, 320)
    cases["mask count"] = ([clip, "-o", tmp_path / "c_out.mp4", "--masks", few], 2, "3 masks but the input has")
    cases["mask size"] = ([clip, "-o", tmp_path / "s_out.mp4", "--masks", tmp_path / "m64.png"], 2,
                          "masks must match the frame size")
    cases["unknown segmenter"] = ([clip, "--segmenter", "u2net.tiny"], 2, "segment.backend must be one of .*u2net.full")
    cases["unknown inpainter"] = ([clip, "--inpainter", "magic"], 2, "invalid choice: 'magic'.*telea")
    return cases


BAD = ["missing file", "empty folder", "text named mp4", "truncated mp4", "zero-frame video",
       "unwritable output dir", "output is input", "unknown config key", "mask count", "mask size",
       "unknown segmenter", "unknown inpainter"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gives_a_clear_error_and_loses_nothing(case, clip_with_audio, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    clip = work / "clip.mp4"
    clip.write_bytes(clip_with_audio.read_bytes())
    center_mask(work / "m320.png", 240, 320)
    center_mask(work / "m64.png", 48, 64)
    argv, expected_code, pattern = _bad_cases(work, clip)[case]
    before = tree_digest(work)
    code, err = run_cli(argv, capsys)
    assert code == expected_code, err
    # errors found by the parser come after its usage line, in argparse's words
    assert (err.startswith("bgclean: error: ") or "\nbgclean run: error: " in err) and "Traceback" not in err
    import re

    assert re.search(pattern, err), err
    assert tree_digest(work) == before  # inputs unchanged, no partial output left anywhere


def test_outputs_get_normal_permissions(tmp_path, capsys):
    import os
    import stat

    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.full((20, 30, 3), 128, np.uint8))
    mask = center_mask(tmp_path / "m.png", 20, 30)
    old = os.umask(0o022)
    try:
        assert run_cli([img, "-o", tmp_path / "o.png", "--masks", mask], capsys)[0] == 0
        assert run_cli([img, "-o", tmp_path / "dir", "--masks", mask], capsys)[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "o.png").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "dir").stat().st_mode) == 0o755


@pytest.mark.parametrize("ext", [".mkv", ".webm", ".mov", ".avi"])
def test_every_container_round_trips_with_audio(clip_with_audio, tmp_path, capsys, ext):
    """Write each container from the clip, then read it back as an input: same frames and rate,
    audio kept (copied where the container takes AAC, re-encoded otherwise)."""
    mask = center_mask(tmp_path / "m.png", 240, 320)
    out = tmp_path / f"out{ext}"
    code, err = run_cli([clip_with_audio, "-o", out, "--masks", mask], capsys)
    assert code == 0, err
    info = io.probe(out)
    assert info.has_audio and info.fps == Fraction(30000, 1001)
    assert io.count_video_frames(out) == io.count_video_frames(clip_with_audio)
    again = tmp_path / f"again{ext}.mp4"
    code, err = run_cli([out, "-o", again, "--masks", mask], capsys)
    assert code == 0, err


def test_masks_from_a_mask_video(clip_with_audio, tmp_path, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    n = io.count_video_frames(clip_with_audio)
    for i in range(n):
        m = np.zeros((240, 320), bool)
        m[50:150, 10 + 3 * i : 60 + 3 * i] = True  # a moving block
        io.write_mask_png(masks / f"{i:05d}.png", m)
    mask_video = tmp_path / "masks.mp4"
    ffmpeg("-framerate", "30000/1001", "-i", str(masks / "%05d.png"), "-c:v", "libx264", "-crf", "0",
           "-pix_fmt", "yuv420p", str(mask_video))
    out, saved = tmp_path / "frames_out", tmp_path / "saved"
    code, err = run_cli([clip_with_audio, "-o", out, "--masks", mask_video, "--save-masks", saved,
                         "--dilate", "0px"], capsys)
    assert code == 0, err
    last = cv2.imread(str(saved / f"{n - 1:05d}.png"), cv2.IMREAD_GRAYSCALE) > 0
    expect = cv2.imread(str(masks / f"{n - 1:05d}.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert (last == expect).mean() > 0.99


def test_weights_list_and_pull(capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "u2net.full" in out and "u2net.small" in out and "Apache-2.0" in out
    assert main(["weights", "pull", "u2net.small"]) == 0
    assert "u2netp.onnx" in capsys.readouterr().out
    # files that run as they are (onnxruntime, LiteRT) are fetched, not converted
    assert main(["weights", "pull", "yolox.nano", "mediapipe.selfie"]) == 0
    assert "selfie_segmentation.tflite" in capsys.readouterr().out
    assert main(["weights", "pull", "u2net.huge"]) == 3
    assert "known weights" in capsys.readouterr().err
