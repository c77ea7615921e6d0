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
from typing import Any

from bgclean import __version__

log = logging.getLogger("bgclean")

_EPILOG = """\
output: a video extension (.mp4 .mov .mkv .webm .avi) writes a video, an image
extension (.png .jpg .tif ...) an image, anything else a folder of PNG frames.
Default: beside the input (clip.mp4 -> clip.clean.mp4).

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
    """Flags that set configuration fields, shared by ``bgclean run`` and ``bgclean batch``: one
    per setting declared with a ``flag`` (its help, type and choices come from the setting)."""
    import dataclasses
    import typing

    from bgclean.pipeline.config import PipelineConfig
    from bgclean.settings import describe, settings_of

    p.add_argument("--config", help="YAML config file, or a bundled name (default, fast)")
    cfg = PipelineConfig()
    for section in dataclasses.fields(cfg):
        values = getattr(cfg, section.name)
        hints = typing.get_type_hints(type(values))
        for name, s in settings_of(values):
            if s.flag is None:
                continue
            kind = hints[name]
            p.add_argument(s.flag, dest=f"{section.name}.{name}", type=kind if kind in (int, float) else str,
                           choices=s.choices, metavar=_metavar(kind, s),
                           help=describe(s, getattr(values, name)))
    p.add_argument("--dilate", type=_dilate, help="mask dilation: fraction of the shorter side (0.02) or pixels (12px)")


def _metavar(kind, s) -> str:
    if s.metavar:
        return s.metavar
    if s.choices is not None and len(s.choices) <= 3:
        return "{" + ",".join(str(c) for c in s.choices) + "}"
    return {int: "N", float: "X"}.get(kind, "NAME")


def _common_flags() -> argparse.ArgumentParser:
    """-q, -v and --debug, for every command."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-q", "--quiet", action="store_true", help="errors only, no progress bar")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more messages (-vv: debug)")
    p.add_argument("--debug", action="store_true", help="debug messages and full tracebacks")
    return p


COMMANDS = ("run", "batch", "weights", "train")
_TOP_LEVEL = ("-h", "--help", "--version")


def build_parser() -> argparse.ArgumentParser:
    """``bgclean COMMAND ...``; ``bgclean INPUT ...`` is short for ``bgclean run INPUT ...``."""
    common = _common_flags()
    p = argparse.ArgumentParser(
        prog="bgclean",
        description="Remove people from a video, a folder of frames or an image; fill the background.\n"
                    "bgclean INPUT [options] is short for bgclean run INPUT [options].",
        epilog="exit codes: 0 ok, 2 bad input or usage, 3 weights problem, 1 internal error,\n"
               "130 interrupted (Ctrl-C), 143 terminated (SIGTERM).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"bgclean {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", parents=[common], help="clean one video, frame folder or image",
                         description="Remove people from a video, a folder of frames or an image; fill the "
                                     "background.", epilog=_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("input", help="video file, folder of frames, or image")
    run.add_argument("-o", "--output", help="output video, image or folder (default: INPUT.clean.EXT)")
    run.add_argument("--masks", help="use these person masks instead of segmenting: a folder of PNGs (one "
                                     "per frame), a mask video, or one PNG; nonzero = person")
    run.add_argument("--save-masks", metavar="DIR", help="write the final masks as PNGs into DIR")
    run.add_argument("--contact-sheet", metavar="PNG", help="also write a before/after contact sheet PNG")
    add_pipeline_flags(run)
    run.set_defaults(handler=_run)

    batch = sub.add_parser(
        "batch", parents=[common], help="clean many inputs into one folder, resumable",
        description="Clean many inputs into one folder. Finished items are recorded and skipped on a rerun; "
                    "failures are listed in OUTDIR/bgclean-summary.json and do not stop the batch. "
                    "Exit code 2 when any item failed.")
    batch.add_argument("inputs", nargs="+", help="videos, frame folders, images, globs, or @manifest.txt")
    batch.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                       help="output folder (inputs keep their names)")
    batch.add_argument("--jobs", type=int, default=1, metavar="N", help="items processed in parallel")
    batch.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local processes, or Ray tasks (pip install 'bgclean[ray]')")
    batch.add_argument("--ray-address", help="join this Ray cluster (default: start a local Ray runtime)")
    add_pipeline_flags(batch)
    batch.set_defaults(handler=_batch)

    weights = sub.add_parser("weights", parents=[common], help="list or fetch model weights",
                             description="Manage model weights.")
    actions = weights.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", parents=[common], help="known weights and whether they are present")
    pull = actions.add_parser("pull", parents=[common], help="fetch and verify weights (all segmenters when no NAME)")
    pull.add_argument("names", nargs="*", metavar="NAME")
    weights.set_defaults(handler=_weights)

    train = sub.add_parser(
        "train", parents=[common], help="train the inpainting network",
        description="Train an inpainting network on photos with person-shaped holes (resumes from "
                    "OUT/last.pt), or export a checkpoint's generator as shippable weights.")
    train.add_argument("--config", help="training YAML, or a bundled name (cpu, gpu, gpu-refine)")
    train.add_argument("--data", metavar="DIR", help="the data folder the config's {data} paths name "
                                                     "(bundled configs: DIR/photos, DIR/videos)")
    train.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    train.add_argument("--export", nargs=2, metavar=("CHECKPOINT", "DEST"),
                       help="write CHECKPOINT's generator (fp16) to DEST and print its architecture and sha256")
    train.set_defaults(handler=_train)
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line's arguments; a first argument that is not a command is an input to ``run``
    (``bgclean run train`` cleans a file named train)."""
    if argv and argv[0] not in COMMANDS and argv[0] not in _TOP_LEVEL:
        argv = ["run", *argv]
    return build_parser().parse_args(argv)


def _train(args: argparse.Namespace) -> int:
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


def _overrides(args: argparse.Namespace) -> dict:
    """The config fields the flags set: ``{"section.field": value}``."""
    out = {dest: value for dest, value in vars(args).items() if "." in dest and value is not None}
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
        self.bar: Any = None  # a tqdm bar

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


def _setup_logging(args: argparse.Namespace) -> None:
    if args.quiet:
        level = logging.ERROR
    elif args.debug or args.verbose >= 2:
        level = logging.DEBUG
    elif args.verbose == 1:
        level = logging.INFO
    else:
        level = logging.WARNING
    logging.basicConfig(level=level, format="bgclean: %(levelname)s: %(message)s", stream=sys.stderr)


def _run(args: argparse.Namespace) -> int:
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


def _batch(args: argparse.Namespace) -> int:
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


def _weights(args: argparse.Namespace) -> int:
    from bgclean.weights import store
    from bgclean.weights.registry import REGISTRY

    if args.action == "list":
        print(f"cache: {store.weights_dir()}")
        rows = [(spec.name, store.status(spec), spec.licence.split(" (")[0], spec.description) for spec in REGISTRY]
        widths = [max(len(row[k]) for row in rows) for k in range(3)]
        print(f"{'NAME':<{widths[0]}}  {'STATUS':<{widths[1]}}  {'LICENCE':<{widths[2]}}  DESCRIPTION")
        for row in rows:
            print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)) + f"  {row[3]}")
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
        try:
            args = parse_args(argv)
        except SystemExit as stop:  # --help, --version, or a usage error (exit code 2), already printed
            return stop.code if isinstance(stop.code, int) else 2
        _setup_logging(args)
        if args.command in ("run", "batch"):
            from bgclean.tuning import tune_process

            tune_process()  # this process runs bgclean and nothing else
        return args.handler(args)
    except (KeyboardInterrupt, Terminated) as stop:
        from bgclean import io

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
