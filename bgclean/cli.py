"""The ``bgclean`` command line: parse, build the config, call the library, map errors to exit codes.

Exit codes: 0 ok, 2 bad input or usage, 3 weights problem, 1 internal error, 130 interrupted,
143 terminated.
Nothing heavy is imported before the arguments are parsed, so ``--help`` and ``--version`` are instant.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from bgclean import __version__

log = logging.getLogger("bgclean")

_EPILOG = """\
output: a video extension (.mp4 .mov .mkv .webm .avi) writes a video, an image
extension (.png .jpg .tif ...) an image, anything else a folder of PNG frames.
Default: beside the input (clip.mp4 -> clip.clean.mp4).

segmenters:
  yolox+u2net.small       default: person boxes, then U²-Net in each
  yolox+u2net.full        the same with the large U²-Net
  yolox+mediapipe.selfie  --config fast: MediaPipe selfie for a person alone,
                          U²-Net for riders, belongings and groups
  u2net.small, u2net.full, mediapipe.selfie   whole frame
  rvm, yolox+rvm          Robust Video Matting (GPL-3.0 weights, opt-in)
  rembg:<session>         any rembg session (needs the rembg package)
inpainters (for what no frame saw):
  auto                    default: the learned fill; stills and still cameras
                          add guided texture over its structure
  learned                 our network (inpaint.dmfn): --tiles, --passes
  telea, navier-stokes, structure, patchmatch, hybrid   classical fills
super-resolution (--sr), for fills made below native size (--inpaint-size)
and for --upscale: realesrgan.animevideov3 (default), realesrgan.x4plus
(sharper, slow on CPU), none (bicubic).

other commands:
  bgclean batch INPUTS... -o DIR   many inputs (globs, @list.txt), resumable
  bgclean weights list|pull        show or fetch model weights
  bgclean train --config NAME      train the inpainting network

exit codes: 0 ok, 2 bad input or usage, 3 weights problem, 1 internal error,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""


def _dilate(text: str):
    """'0.02' (fraction of the shorter side) or '12px' (pixels)."""
    try:
        if text.endswith("px"):
            return ("masks.dilate_px", int(text[:-2]))
        return ("masks.dilate", float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.02 or pixels like 12px, got {text!r}") from None


def add_pipeline_flags(p: argparse.ArgumentParser) -> None:
    """Flags that set configuration fields, shared by ``bgclean`` and ``bgclean batch``."""
    p.add_argument("--config", help="YAML config file, or a bundled name (default, fast)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, help="frames or person crops per segmentation call (0: 2 on CPU, 16 on GPU)")
    p.add_argument("--window", type=int, help="frames held in memory at once (at most; default 16)")
    p.add_argument("--memory", type=float, metavar="GB",
                   help="memory a run may take; large frames get a smaller window (default: 3/4 of the free memory)")
    p.add_argument("--segmenter", help="person segmenter (see below)")
    p.add_argument("--dilate", type=_dilate, help="mask dilation: fraction of the shorter side (0.02) or pixels (12px)")
    p.add_argument("--inpainter", help="fill method (see below)")
    p.add_argument("--tiles", type=int, choices=(1, 2), help="learned inpainter: 2 = quadrant tiling (2x2 overlapping tiles)")
    p.add_argument("--passes", type=int, metavar="N", help="learned inpainter: refine N times, eroding the hole each pass")
    p.add_argument("--finetune-steps", type=int, metavar="N",
                   help="learned inpainter: fine-tune N steps on the video's own background first (GPU)")
    p.add_argument("--inpaint-size", type=int, metavar="PX",
                   help="fill at most this long side and restore to native with super-resolution (0 = native)")
    p.add_argument("--sr", metavar="NAME", help="super-resolution model (see below), or none for bicubic")
    p.add_argument("--sr-tile", type=int, metavar="PX", help="super-resolution tile size (0 = whole image)")
    p.add_argument("--upscale", type=float, metavar="N", help="super-resolve the whole output N times larger")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bgclean",
        description="Remove people from a video, a folder of frames or an image; fill the background.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="video file, folder of frames, or image")
    p.add_argument("-o", "--output", help="output video, image or folder (default: INPUT.clean.EXT)")
    p.add_argument("--masks", help="use these person masks instead of segmenting: a folder of PNGs (one "
                                   "per frame), a mask video, or one PNG; nonzero = person")
    p.add_argument("--save-masks", metavar="DIR", help="write the final masks as PNGs into DIR")
    p.add_argument("--contact-sheet", metavar="PNG", help="also write a before/after contact sheet PNG")
    add_pipeline_flags(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar, errors only")
    p.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    p.add_argument("--version", action="version", version=f"bgclean {__version__}")
    return p


def _verbosity_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="errors only")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def build_weights_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bgclean weights", description="Manage model weights.")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="known weights and whether they are present")
    pull = sub.add_parser("pull", help="fetch and verify weights (all segmenters when no NAME)")
    pull.add_argument("names", nargs="*", metavar="NAME")
    _verbosity_flags(p)
    return p


def build_train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bgclean train",
        description="Train an inpainting network on photos with person-shaped holes (resumes from "
                    "OUT/last.pt), or export a checkpoint's generator as shippable weights.")
    p.add_argument("--config", help="training YAML, or a bundled name (cpu, gpu, gpu-refine)")
    p.add_argument("--data", metavar="DIR",
                   help="the data folder the config's {data} paths name (bundled configs: DIR/photos, DIR/videos)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    p.add_argument("--export", nargs=2, metavar=("CHECKPOINT", "DEST"),
                   help="write CHECKPOINT's generator (fp16) to DEST and print its architecture and sha256")
    _verbosity_flags(p)
    return p


def _train(argv: list[str]) -> int:
    args = build_train_parser().parse_args(argv)
    _setup_logging(args.quiet, args.debug)
    if args.export:
        from bgclean.train.trainer import export_weights

        arch, digest = export_weights(*args.export)
        print(f"{args.export[1]}: architecture {arch}, sha256 {digest}")
        return 0
    if not args.config:
        from bgclean.errors import InputError

        raise InputError("bgclean train needs --config FILE (or a bundled name: cpu, gpu, gpu-refine)")
    import yaml

    from bgclean.train.config import load_train_config
    from bgclean.train.trainer import Trainer

    overrides = {}
    for item in args.set:
        if "=" not in item:
            from bgclean.errors import InputError

            raise InputError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        overrides[k] = yaml.safe_load(v)
    result = Trainer(load_train_config(args.config, overrides, data=args.data)).run()
    print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return 0


#: command-line flag (argparse dest) → the config field it overrides
_FLAG_FIELDS = {
    "device": "runtime.device",
    "batch_size": "segment.batch_size",
    "window": "runtime.window",
    "memory": "runtime.memory_gb",
    "segmenter": "segment.backend",
    "inpainter": "inpaint.backend",
    "inpaint_size": "inpaint.max_side",
    "tiles": "inpaint.tiles",
    "passes": "inpaint.passes",
    "finetune_steps": "inpaint.finetune_steps",
    "sr": "superres.model",
    "sr_tile": "superres.tile",
    "upscale": "superres.upscale",
}


def _overrides(args) -> dict:
    out = {field: getattr(args, dest) for dest, field in _FLAG_FIELDS.items() if getattr(args, dest) is not None}
    if args.dilate is not None:
        key, value = args.dilate
        out[key] = value
        if key == "masks.dilate":
            out["masks.dilate_px"] = None
    return out


class _Bar:
    """A tqdm bar on a terminal, created on the first update (so nothing shows when nothing
    happens, e.g. weights already cached); nothing at all when disabled."""

    def __init__(self, enabled: bool, unit: str, desc: str):
        self.enabled, self.unit, self.desc = enabled, unit, desc
        self.bar = None

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(unit=self.unit, desc=self.desc, dynamic_ncols=True, unit_scale=self.unit == "B")
        if total and self.bar.total != max(total, done):
            self.bar.total = max(total, done)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _setup_logging(quiet: bool, debug: bool) -> None:
    level = logging.DEBUG if debug else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(level=level, format="bgclean: %(levelname)s: %(message)s", stream=sys.stderr)


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.quiet, args.debug)
    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline

    cfg = load_config(args.config, _overrides(args))
    show = not args.quiet and sys.stderr.isatty()
    download_bar = _Bar(show, "B", "weights")
    pipeline = Pipeline(cfg, download_progress=download_bar)
    bar = _Bar(show, "frame", "bgclean")
    try:
        report = pipeline.run_file(args.input, args.output, masks=args.masks, save_masks=args.save_masks,
                                   progress=bar)
    finally:
        bar.close()
        download_bar.close()
    if args.contact_sheet:
        from bgclean.pipeline.sheet import before_after_sheet

        before_after_sheet(Path(args.input), report.output, Path(args.contact_sheet), masks_dir=args.save_masks)
    if not args.quiet:
        print(f"wrote {report.output} ({report.frames} frames, {report.fps:.2f} fps)", file=sys.stderr)
    return 0


def build_batch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bgclean batch",
        description="Clean many inputs into one folder. Finished items are recorded and skipped on a rerun; "
                    "failures are listed in OUTDIR/bgclean-summary.json and do not stop the batch. "
                    "Exit code 2 when any item failed.",
    )
    p.add_argument("inputs", nargs="+", help="videos, frame folders, images, globs, or @manifest.txt")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (inputs keep their names)")
    p.add_argument("--jobs", type=int, default=1, help="items processed in parallel")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local processes, or Ray tasks (pip install 'bgclean[ray]')")
    p.add_argument("--ray-address", help="join this Ray cluster (default: start a local Ray runtime)")
    add_pipeline_flags(p)
    _verbosity_flags(p)
    return p


def _batch(argv: list[str]) -> int:
    args = build_batch_parser().parse_args(argv)
    _setup_logging(args.quiet, args.debug)
    from bgclean.pipeline.batch import SUMMARY, run_batch
    from bgclean.pipeline.config import load_config

    cfg = load_config(args.config, _overrides(args))

    def report(res) -> None:
        if not args.quiet:
            extra = f": {res.error}" if res.error else ""
            print(f"{res.status:>7}  {res.input} -> {res.output} ({res.seconds:.1f} s){extra}", file=sys.stderr)

    results = run_batch(args.inputs, args.output, cfg, jobs=args.jobs, on_item=report, engine=args.engine,
                        ray_address=args.ray_address)
    failed = sum(r.status == "failed" for r in results)
    if not args.quiet:
        print(f"{len(results)} items, {failed} failed; summary: {Path(args.output) / SUMMARY}", file=sys.stderr)
    return 2 if failed else 0


def _weights(argv: list[str]) -> int:
    args = build_weights_parser().parse_args(argv)
    _setup_logging(args.quiet, args.debug)
    from bgclean.weights import store
    from bgclean.weights.registry import REGISTRY

    if args.action == "list":
        print(f"cache: {store.weights_dir()}")
        for spec in REGISTRY:
            print(f"{spec.name:<22} {store.status(spec):<8} {spec.licence:<32} {spec.description}")
        return 0
    names = args.names or ["yolox.nano", "mediapipe.selfie", "u2net.small", "u2net.full", "realesrgan.animevideov3"]
    specs = [REGISTRY.get(n) for n in names]
    for spec in specs:
        bar = _Bar(not args.quiet and sys.stderr.isatty(), "B", spec.name)
        try:
            path = store.resolve(spec, bar)
            if spec.format not in ("onnx-runtime", "tflite"):  # those run as they are: nothing to convert
                store.load_state_dict(spec)
        finally:
            bar.close()
        if not args.quiet:
            print(f"{spec.name}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from bgclean.errors import Terminated, stop_on_sigterm

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    previous = stop_on_sigterm()
    try:
        if argv and argv[0] == "weights":
            return _weights(argv[1:])
        if argv and argv[0] == "batch":
            return _batch(argv[1:])
        if argv and argv[0] == "train":
            return _train(argv[1:])
        return _run(argv)
    except (KeyboardInterrupt, Terminated) as stop:
        from bgclean.pipeline import io

        io.discard_staged()  # a signal can land before a writer's own clean-up is in place
        if isinstance(stop, Terminated):
            print("bgclean: terminated (SIGTERM); unfinished outputs were discarded", file=sys.stderr)
            return 143
        print("bgclean: interrupted; unfinished outputs were discarded", file=sys.stderr)
        return 130
    except Exception as exc:
        from bgclean.errors import BgcleanError

        if debug:
            raise
        if isinstance(exc, BgcleanError):
            print(f"bgclean: error: {exc}", file=sys.stderr)
            return exc.exit_code
        print(f"bgclean: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
    finally:
        if previous is not None:  # main() may be called from a program that handles SIGTERM itself
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
