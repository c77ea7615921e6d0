"""Video, folder and image I/O on real files."""

from fractions import Fraction

import numpy as np
import pytest
from conftest import DATA, SAMPLE, ffmpeg

from bgclean import io
from bgclean.errors import InputError


def test_probe_vtest_native_and_sample():
    info = io.probe(DATA / "vtest_20.avi")  # MS-MPEG4v3 in AVI
    assert (info.kind, info.width, info.height, info.fps) == ("video", 768, 576, Fraction(10))
    assert info.frame_count == 20 and not info.has_audio
    sample = io.probe(SAMPLE)
    assert (sample.width, sample.height, sample.fps) == (768, 576, Fraction(10))


def test_ntsc_rate_is_exact_and_audio_detected(clip_with_audio):
    info = io.probe(clip_with_audio)
    assert info.fps == Fraction(30000, 1001)
    assert info.has_audio and info.audio_codec == "aac"
    assert io.exact_fps("23.98") == Fraction(24000, 1001)
    assert io.exact_fps("25") == Fraction(25) and io.exact_fps("12.5") == Fraction(25, 2)


def test_rotation_metadata_is_honoured(clip_with_audio, tmp_path):
    rotated = tmp_path / "rot.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(clip_with_audio), "-c", "copy", str(rotated))
    info = io.probe(rotated)
    assert info.rotation == 90 and (info.width, info.height) == (240, 320)
    first = next(io.read_frames(info))
    assert first.rgb.shape == (320, 240, 3)


def test_discarding_what_is_staged_stops_the_encoder_before_removing_its_file(clip_with_audio, tmp_path):
    """A signal can land before a writer's own clean-up is in place (while it is being opened):
    the command then discards whatever is staged. The encoder must be stopped first: left running,
    it writes the file again by name once its input closes (an mp4's faststart pass)."""
    info = io.probe(clip_with_audio)
    w = io.open_writer(tmp_path / "out.mp4", "video", info)  # opened, not entered: no __exit__
    for f, _ in zip(io.read_frames(info), range(5)):
        w.write(f)
    io.discard_staged()
    assert w.proc.poll() is not None  # stopped
    w.proc.wait(timeout=10)
    assert list(tmp_path.iterdir()) == []


def test_video_round_trip_keeps_rate_count_and_audio(clip_with_audio, tmp_path):
    info = io.probe(clip_with_audio)
    out = tmp_path / "copy.mp4"
    with io.open_writer(out, "video", info) as w:
        n = 0
        for f in io.read_frames(info):
            w.write(f)
            n += 1
        w.commit()
    back = io.probe(out)
    assert back.fps == info.fps and io.count_video_frames(out) == n
    assert back.has_audio and abs(back.duration - info.duration) < 0.1


def test_folder_natural_sort_and_names(tmp_path):
    for i in (10, 2, 1):
        io.write_mask_png(tmp_path / f"f{i}.png", np.full((4, 6), i % 2 == 0))
    info = io.probe(tmp_path)
    assert [p.name for p in info.files] == ["f1.png", "f2.png", "f10.png"]
    assert (info.kind, info.width, info.height, info.frame_count) == ("frames", 6, 4, 3)


def test_image_modes_are_preserved(tmp_path):
    import cv2

    rgba = np.random.default_rng(0).integers(0, 255, (8, 10, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    f = io.read_image(tmp_path / "a.png")
    assert f.alpha is not None and np.array_equal(f.alpha, rgba[:, :, 3])
    assert np.array_equal(f.rgb, rgba[:, :, 2::-1])
    data = io.encode_image(f, ".png")
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), rgba)
    gray16 = (np.arange(80, dtype=np.uint16).reshape(8, 10) * 800)
    cv2.imwrite(str(tmp_path / "g.png"), gray16)
    g = io.read_image(str(tmp_path / "g.png"))  # a path as a string, as a script passes it
    assert g.name == "g.png" and g.gray and g.rgb.dtype == np.uint16 and g.rgb.shape == (8, 10, 3)
    back = cv2.imdecode(np.frombuffer(io.encode_image(g, ".png"), np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, gray16)


@pytest.mark.parametrize("content", [b"", b"hello, I am text\n"])
def test_not_a_video(tmp_path, content):
    p = tmp_path / "fake.mp4"
    p.write_bytes(content)
    with pytest.raises(InputError, match="fake.mp4"):
        io.probe(p)


def test_truncated_video_is_an_error_not_a_short_output(clip_with_audio, tmp_path):
    faststart = tmp_path / "fs.mp4"
    ffmpeg("-i", str(clip_with_audio), "-c", "copy", "-movflags", "+faststart", str(faststart))
    data = faststart.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        list(io.read_frames(io.probe(cut)))
    tail_moov = tmp_path / "cut2.mp4"
    tail_moov.write_bytes(clip_with_audio.read_bytes()[:20000])  # moov atom at the end is lost
    with pytest.raises(InputError):
        list(io.read_frames(io.probe(tail_moov)))


def test_output_kind_and_default_names(tmp_path):
    assert io.output_kind(tmp_path / "a.mp4") == "video"
    assert io.output_kind(tmp_path / "a.PNG") == "image"
    assert io.output_kind(tmp_path / "frames") == "frames"
    assert io.output_kind(tmp_path) == "frames"
    with pytest.raises(InputError, match="unknown extension"):
        io.output_kind(tmp_path / "a.xyz")
    info = io.MediaInfo("video", tmp_path / "clip.avi", 2, 2)
    assert io.default_output(info).name == "clip.clean.mp4"
    info = io.MediaInfo("frames", tmp_path / "shots", 2, 2)
    assert io.default_output(info).name == "shots.clean"
