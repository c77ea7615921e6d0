"""Segmentation networks other than U²-Net: MediaPipe selfie (and the person gate built on it), Robust
Video Matting, rembg sessions."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import numpy as np
import torch

from bgclean.errors import InputError
from bgclean.ops import max_filter, resize

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_stderr():
    """File descriptor 2 sent to /dev/null meanwhile: native libraries write there directly."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class SelfieNet:
    """MediaPipe selfie segmentation (Apache-2.0, 0.25 MB, run with LiteRT on the CPU cores): a
    network that segments people only. ``(B,3,H,W)`` float RGB in [0,1] → ``(B,1,H,W)`` person
    probability in [0,1], each image at the network's 256 px square and back."""

    side = 256

    def __init__(self, hint: str = "or set segment.person_gate: false"):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # a dependency: only a broken install lacks it
            raise InputError("MediaPipe selfie needs the ai-edge-litert package (pip install ai-edge-litert), "
                             f"{hint}") from exc

        from bgclean.weights.registry import REGISTRY
        from bgclean.weights.store import resolve

        path = str(resolve(REGISTRY.get("mediapipe.selfie")))
        with _quiet_stderr():  # LiteRT's C++ logs "INFO: Created TensorFlow Lite XNNPACK delegate"
            self.net = Interpreter(model_path=path, num_threads=max(1, torch.get_num_threads()))
            self.net.allocate_tensors()
        self._in = self.net.get_input_details()[0]["index"]
        self._out = self.net.get_output_details()[0]["index"]

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        size = (int(x.shape[2]), int(x.shape[3]))
        small = resize(x.float().cpu(), (self.side, self.side)).clamp_(0, 1).permute(0, 2, 3, 1).numpy()
        outs = []
        for img in small:  # the graph takes one image
            self.net.set_tensor(self._in, np.ascontiguousarray(img, np.float32)[None])
            self.net.invoke()
            outs.append(torch.from_numpy(self.net.get_tensor(self._out)[0, :, :, 0].copy()))
        return resize(torch.stack(outs)[:, None], size, antialias=False).clamp_(0, 1).to(x.device)


class PersonGate:
    """The selfie network (``SelfieNet``) as an arbiter: it tells a woman from the dog pressed
    against her, which U²-Net (salient objects) does not. Too loose alone (it misses parts of
    her), so it only arbitrates inside animal boxes. (1,3,S,S) crop in
    [0,1] → (1,1,S,S) person map in [0,1], grown by ``grow`` of the side (a max filter: her outline
    stays hers)."""

    def __init__(self, grow: float = 0.04, net: SelfieNet | None = None):
        self.net = net or SelfieNet()
        self.grow = grow

    @torch.inference_mode()
    def __call__(self, crop: torch.Tensor) -> torch.Tensor:
        m = self.net(crop)
        k = 2 * max(1, round(self.grow * max(crop.shape[2:]))) + 1
        return max_filter(m, k, k)


class RobustVideoMatting:
    """Robust Video Matting (MobileNetV3) through onnxruntime: a recurrent human matting network, so
    frames must come in order and ``reset()`` starts a new video. (B,3,H,W) RGB in [0,1] → (B,1,H,W)
    alpha in [0,1]. GPL-3.0 weights, fetched only when the user picks this backend."""

    def __init__(self, device: torch.device, download_progress=None, side: int = 512):
        import onnxruntime as ort

        from bgclean.weights.registry import REGISTRY
        from bgclean.weights.store import resolve

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        log.info("Robust Video Matting weights are GPL-3.0 (opt-in backend)")
        self.session = ort.InferenceSession(str(resolve(REGISTRY.get("rvm.mobilenetv3"), download_progress)),
                                            opts, providers=providers)
        self.side = side  # the network's internal long side (its downsample_ratio), px
        self.reset()

    def reset(self) -> None:
        self.state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        self.shape: tuple[int, int] | None = None

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        h, w = frames.shape[2:]
        if self.shape != (h, w):  # a new size cannot reuse the recurrent state
            self.state, self.shape = [np.zeros((1, 1, 1, 1), np.float32)] * 4, (h, w)
        ratio = np.array([min(1.0, self.side / max(h, w))], np.float32)
        outs = []
        for f in frames.float().cpu().numpy():
            fgr, pha, *self.state = self.session.run(None, {
                "src": f[None], "r1i": self.state[0], "r2i": self.state[1], "r3i": self.state[2],
                "r4i": self.state[3], "downsample_ratio": ratio})
            outs.append(torch.from_numpy(pha[0]))
        return torch.stack(outs).to(frames.device).clamp_(0, 1)


class _RembgSession:
    """rembg's own models through its session API (downloads its models on first use)."""

    def __init__(self, name: str):
        try:
            import rembg
        except ImportError:
            raise InputError(
                f"--segmenter rembg:{name} needs the rembg package: pip install rembg "
                "(its models download from the internet on first use)"
            ) from None
        try:
            self.session = rembg.new_session(name)
        except Exception as exc:
            raise InputError(f"rembg could not open session {name!r}: {exc}") from exc

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        import numpy as np
        from PIL import Image

        outs = []
        for f in frames:
            arr = (f.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
            masks = self.session.predict(Image.fromarray(arr))
            m = np.asarray(masks[0].convert("L").resize((arr.shape[1], arr.shape[0])), dtype=np.float32)
            outs.append(torch.from_numpy(m / 255.0)[None])
        return torch.stack(outs).to(frames.device)
