"""The streaming runner: decode → segment → masks → inpaint → encode, one window of frames at a time.

Memory is bounded by ``runtime.window`` frames, never by the video's length. Decoding runs on a
background thread so it overlaps the stages; encoding runs in ffmpeg's own process.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bgclean import io
from bgclean.errors import InputError
from bgclean.ops import resize_bicubic, to_arrays, to_tensor
from bgclean.pipeline import memory
from bgclean.pipeline.config import PipelineConfig
from bgclean.tuning import release_freed_memory

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first CUDA device when present, else CPU. Asking for absent CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} was requested but CUDA is not available; use --device cpu")
    return dev


@dataclass
class RunReport:
    """What one run did. ``stage_seconds`` sums wall time per stage over the whole run."""

    input: Path
    output: Path
    frames: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _prefetch(items: Iterator, depth: int) -> Iterator:
    """Pull ``items`` on a background thread, ``depth`` ahead; re-raise its errors here."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


class Pipeline:
    """The person-removal pipeline, built once from a ``PipelineConfig`` and reused across inputs.

    The segmenter is built on first use, so runs with external masks need no segmentation weights.
    """

    def __init__(self, config: PipelineConfig | None = None, download_progress=None):
        from bgclean.stages.inpaint import InpaintStage
        from bgclean.stages.masks import MaskStage

        self.config = config or PipelineConfig()
        self.device = resolve_device(self.config.runtime.device)
        self._download_progress = download_progress
        self._segment = None
        self._superres = None
        #: the frames are unrelated stills (hook batches), not a video: fill each as a still
        self.stills = False
        from bgclean.stages.propagate import PropagateStage

        self._window_size = 0
        self.propagate_stage = PropagateStage(self.config.propagate)
        self.mask_stage = MaskStage(self.config.masks)
        self.inpaint_stage = InpaintStage(self.config.inpaint, self.device)
        self.timings: dict[str, float] = defaultdict(float)

    @property
    def segment_stage(self):
        if self._segment is None:
            from bgclean.stages.segment import SegmentStage

            self._segment = SegmentStage(self.config.segment, self.device, self._download_progress)
        return self._segment

    @property
    def superres_stage(self):
        if self._superres is None:
            from bgclean.stages.superres import SuperResStage

            self._superres = SuperResStage(self.config.superres, self.device, self._download_progress)
        return self._superres

    def _needs_superres(self, height: int, width: int) -> bool:
        below_native = self.inpaint_stage.working_size(height, width) != (height, width)
        return self.config.superres.upscale > 1 or (below_native and self.config.superres.model != "none")

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) of the written frames: the input's, times ``superres.upscale``."""
        f = self.config.superres.upscale
        return (height, width) if f == 1 else (round(height * f), round(width * f))

    def _timed(self, name: str, fn: Callable, *args, **kwargs):
        """Run one stage call, add its time to ``timings[name]``, then hand the heap pages its
        temporaries freed back to the OS (``tuning.release_freed_memory``, in a tuned process)."""
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        release_freed_memory()
        self.timings[name] += time.perf_counter() - t0
        return out

    def reset(self) -> None:
        """Forget temporal state (call between unrelated videos)."""
        self._window_size = 0  # chosen again from the next video's frame size
        for stage in (self._segment, self.mask_stage, self.propagate_stage, self.inpaint_stage):
            if stage is not None and hasattr(stage, "reset"):
                stage.reset()

    def hole_masks(self, frames: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """The final hole masks (B,1,H,W) in {0,1} for a window of frames (B,3,H,W) in [0,1]:
        segmentation (or the external person ``masks``), then mask refinement. Windows must come
        in order: the stages carry temporal state from one window to the next."""
        return self.holes_and_movers(frames, masks)[0]

    def holes_and_movers(self, frames: torch.Tensor,
                         masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``hole_masks`` and the pixels of animals beside the people ((B,1,H,W), None with
        external masks or none there), which propagation does not copy into holes."""
        frames = frames.to(self.device)
        if masks is None:
            self.segment_stage.stills = self.stills
            soft, animals, movers = self._timed("segment", self.segment_stage.segment, frames)
            return self._timed("masks", self.mask_stage, soft, keep_out=animals), movers
        return self._timed("masks", self.mask_stage, masks.to(self.device).float(), external=True), None

    def dilation(self, height: int, width: int, given: int | None = None) -> int:
        """Px the hole masks were grown by around the person: ``given`` where the caller grew
        external masks itself, else the configured dilation at this frame size."""
        from bgclean.stages.masks import dilation_radius

        return dilation_radius(self.config.masks, height, width) if given is None else given

    def feather_width(self, height: int, width: int, dilation: int | None = None) -> int:
        """The paste's feather, kept inside what the dilation added around the person so it never
        blends the person's own pixels: the octagonal dilation reaches only about half its radius
        along diagonals, hence radius // 2 + 1."""
        return min(self.config.inpaint.feather, self.dilation(height, width, dilation) // 2 + 1)

    def propagate(self, frames: torch.Tensor, holes: torch.Tensor, grow_shadows: bool = True,
                  dilation: int | None = None, movers: torch.Tensor | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Propagation over one window (call every window, in order: the stage follows the camera
        and keeps history). ``movers``: animals beside the people (never copied into a hole).
        Returns (filled frames, what no frame saw, final holes with shadows)."""
        h, w = frames.shape[2:]
        return self._timed("propagate", self.propagate_stage, frames, holes, grow_shadows=grow_shadows,
                           dilation=self.dilation(h, w, dilation), movers=movers)

    def process(self, frames: torch.Tensor, masks: torch.Tensor | None = None,
                dilation: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One window. ``frames`` (B,3,H,W) float RGB in [0,1]; ``masks`` (B,1,H,W) external person
        masks (1 = person) or None to segment; ``dilation``: px the caller already grew ``masks``
        by (default: the configured dilation). Returns (cleaned frames, final hole masks)."""
        frames = frames.to(self.device)
        holes, movers = self.holes_and_movers(frames, masks)
        if self.config.propagate.enabled:
            filled, remaining, holes = self.propagate(frames, holes, grow_shadows=masks is None, dilation=dilation,
                                                      movers=movers)
        else:
            filled, remaining = frames, holes
        if not (holes > 0).any():
            return frames, holes
        if self.config.inpaint.finetune_steps > 0:  # once per video, on its first window with people
            self._timed("inpaint", self.inpaint_stage.adapt, frames, holes)
        fill = filled
        if (remaining > 0).any() and not (
                self.config.propagate.enabled and self.propagate_stage.fill_unseen(filled, remaining, self._invent)):
            fill = torch.where(remaining > 0, self._invent(filled, remaining, still=self.stills), filled)
        feather = self.feather_width(frames.shape[2], frames.shape[3], dilation)
        # the fill is this window's own tensor (never the caller's frames): paste into it, so no
        # third window-sized tensor is alive
        cleaned = self._timed("inpaint", self.inpaint_stage.paste, frames, fill, holes, feather,
                              out=None if fill is frames else fill)
        return cleaned, holes

    def _invent(self, frames: torch.Tensor, holes: torch.Tensor, still: bool = True) -> torch.Tensor:
        """The inpainter's fill for ``holes``, at native size (restored by super-resolution when
        the inpainter works below it). ``still``: invented once and reused, or a still image."""
        invented = self._timed("inpaint", self.inpaint_stage.fill, frames, holes, still)
        if invented.shape != frames.shape:
            if self.config.superres.model == "none":
                invented = self._timed("superres", resize_bicubic, invented, frames.shape[2:])
            else:
                invented = self._timed("superres", self.superres_stage.restore_fill, invented, holes)
        return invented

    def fit_memory(self, height: int, width: int) -> memory.MemoryPlan:
        """Choose this run's window and history for its frame size (call after ``reset()``, before
        the first window): the configured ones, lowered only where they would not fit the memory
        the run may take (``runtime.memory_gb``)."""
        rt = self.config.runtime
        fit = memory.plan(width, height, rt.window, self.config.propagate.history, memory.budget_bytes(rt.memory_gb))
        if fit.lowered_from(rt.window, self.config.propagate.history):
            log.warning("%dx%d frames: holding %d frames at once (history %d) instead of %d (history %d) "
                        "to stay within %.1f GB; set --memory GB to allow more",
                        width, height, fit.window, fit.history, rt.window, self.config.propagate.history,
                        (fit.budget or 0) / 1e9)
            self.propagate_stage.limit_history(fit.history)
        else:
            log.info("%dx%d frames: holding %d frames at once, history %d (about %.1f GB)", width, height,
                     fit.window, fit.history, fit.estimate / 1e9)
        self._window_size = fit.window
        return fit

    def _windows(self, frames: Iterable[io.Frame], masks: Iterator[np.ndarray] | None) -> Iterator[tuple]:
        """Group frames (and their external masks) into windows of the size ``fit_memory`` chose
        from the first frame's size."""
        size = 0
        batch: list[io.Frame] = []
        batch_masks: list[np.ndarray] = []
        for frame in frames:
            if not size:
                size = self._window_size or self.fit_memory(*frame.rgb.shape[:2]).window
            batch.append(frame)
            if masks is not None:
                try:
                    batch_masks.append(next(masks))
                except StopIteration:
                    raise InputError(f"fewer masks than frames: none for frame {frame.index}") from None
            if len(batch) == size:
                yield batch, batch_masks
                batch, batch_masks = [], []
        if batch:
            yield batch, batch_masks

    def _clean_window(self, batch: list[io.Frame], batch_masks: list[np.ndarray]) -> tuple[list[io.Frame], np.ndarray]:
        dtype = batch[0].rgb.dtype
        x = to_tensor([f.rgb for f in batch], self.device)
        ext = None
        if batch_masks:
            ext = torch.from_numpy(np.stack(batch_masks)[:, None]).float()
        cleaned, holes = self.process(x, ext)
        out = to_arrays(cleaned, dtype)
        hole_np = holes[:, 0].cpu().numpy() > 0
        results = []
        for f, o, h in zip(batch, out, hole_np):
            # outside the hole the output is the decoded input, by construction
            rgb = np.where(h[:, :, None], o, f.rgb)
            results.append(io.Frame(f.index, f.name, rgb, f.alpha, f.gray))
        if self.config.superres.upscale > 1:
            results = [self._upscale_frame(f) for f in results]
        return results, hole_np

    def _upscale_frame(self, frame: io.Frame) -> io.Frame:
        """Whole-frame super-resolution to ``output_size`` (one frame at a time: memory stays
        bounded by the tile, whatever the window)."""
        import cv2

        h, w = self.output_size(*frame.rgb.shape[:2])
        x = to_tensor([frame.rgb], self.device)
        y = self._timed("superres", self.superres_stage.resize, x, (h, w))
        alpha = None if frame.alpha is None else cv2.resize(frame.alpha, (w, h), interpolation=cv2.INTER_CUBIC)
        return io.Frame(frame.index, frame.name, to_arrays(y, frame.rgb.dtype)[0], alpha, frame.gray)

    def run(self, frames: Iterable, masks: Iterable | None = None) -> Iterator[np.ndarray]:
        """Clean a stream of frames: (H,W,3) uint8 RGB numpy arrays (or (3,H,W) float tensors in
        [0,1]); yields (H,W,3) uint8 RGB arrays, one per input frame, streaming by window."""

        def as_frames():
            for i, f in enumerate(frames):
                if isinstance(f, torch.Tensor):
                    f = (f.detach().permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
                if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3:
                    raise InputError(f"frame {i}: expected an (H,W,3) RGB array, got {getattr(f, 'shape', f)}")
                yield io.Frame(i, f"{i:05d}", f)

        mask_iter = None if masks is None else (np.asarray(m) > 0 for m in masks)
        self.reset()
        for batch, batch_masks in self._windows(as_frames(), mask_iter):
            for f in self._clean_window(batch, batch_masks)[0]:
                yield f.rgb

    def run_file(self, input: str | Path, output: str | Path | None = None, masks: str | Path | None = None,
                 save_masks: str | Path | None = None,
                 progress: Callable[[int, int | None], None] | None = None) -> RunReport:
        """Clean a video, frame folder or image and write the result (see ``bgclean --help`` for how
        the output kind follows the output path). ``progress(frames_done, total_estimate)``."""
        info = io.probe(input)
        output = Path(output) if output is not None else io.default_output(info)
        kind = io.output_kind(output)
        io.check_output(output, info, kind)
        mask_source = io.MaskSource(masks, info) if masks is not None else None
        if mask_source is None:
            _ = self.segment_stage  # resolve weights before any output exists
        if self._needs_superres(info.height, info.width):
            _ = self.superres_stage
        save_dir = Path(save_masks) if save_masks is not None else None
        if save_dir is not None:
            if save_dir.exists() and not save_dir.is_dir():
                raise InputError(f"--save-masks {save_dir} exists and is not a folder")
            if save_dir.resolve() == output.resolve():
                raise InputError(f"--save-masks {save_dir} is the output; choose another folder")
            io.check_output(save_dir, info, "frames", what="--save-masks")
        for staged_for in (output, save_dir):
            if staged_for is not None:
                io.sweep_stale_partials(staged_for)  # what a killed run of this output left behind

        report = RunReport(Path(input), output)
        self.timings.clear()
        self.reset()
        t0 = time.perf_counter()
        frames = _prefetch(io.read_frames(info), self.fit_memory(info.height, info.width).window)
        if progress:
            progress(0, info.frame_count)
        mask_iter = iter(mask_source) if mask_source is not None else None
        out_h, out_w = self.output_size(info.height, info.width)
        with contextlib.ExitStack() as staged:
            writer = staged.enter_context(io.open_writer(output, kind, info, self.config.encode.crf,
                                                         self.config.encode.preset, size=(out_w, out_h)))
            masks_writer = None
            if save_dir is not None:  # staged like the output: nothing appears unless the run completes
                masks_writer = staged.enter_context(io.FolderWriter(save_dir, io.frame_output_names(info)))
            for batch, batch_masks in self._windows(frames, mask_iter):
                cleaned, holes = self._clean_window(batch, batch_masks)
                t_enc = time.perf_counter()
                for f, h in zip(cleaned, holes):
                    writer.write(f)
                    if masks_writer is not None:
                        masks_writer.write_png(masks_writer.name_for(f), io.mask_png(h))
                self.timings["encode"] += time.perf_counter() - t_enc
                report.frames += len(batch)
                release_freed_memory()
                if progress:
                    progress(report.frames, info.frame_count)
            if mask_source is not None:
                mask_source.check_exhausted(report.frames)
            if writer.frames_written != report.frames:
                raise InputError(f"read {report.frames} frames but wrote {writer.frames_written}")
            writer.commit()
            if masks_writer is not None:
                masks_writer.commit()
        report.seconds = time.perf_counter() - t0
        report.stage_seconds = dict(self.timings)
        return report


def remove_people(input: str | Path, output: str | Path | None = None,
                  config: PipelineConfig | str | Path | None = None, masks: str | Path | None = None) -> Path:
    """Remove people from a video, frame folder or image file; returns the output path."""
    from bgclean.pipeline.config import load_config

    if not isinstance(config, PipelineConfig):
        config = load_config(config)
    return Pipeline(config).run_file(input, output, masks=masks).output
