"""Peak memory is bounded by the window, not the video length: vtest's first 100 frames against all
795, each run in a fresh process, default configuration on CPU.

    python bench/memory.py [--frames 100 795] [--from 0 300 ...] [--trace FILE] [--per-stage] [--clip FILE]

``--from S`` adds a run of the 100 frames from frame S (cut as its own clip): the long run should
peak no higher than its worst 100-frame piece run alone. ``--trace FILE`` writes, for each run, the
process's resident memory after every window (current and peak so far, MB, and the MB of arrays,
tensors and weights the pipeline object holds) as JSON lines: where the long run's peak was set,
whether memory climbs with the frame count, and whether the pipeline's own state is what climbs.
``--per-stage`` also prints, per run, each stage's highest peak: before every stage call the
kernel's high-water mark is reset (/proc/self/clear_refs), after it VmHWM is that call's peak; the
table gives the worst call's peak, the resident size before it and the frame its window began at
(the whole run's peak is still the highest mark seen, between calls included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, cut_clip, data_dir, machine, parse_args  # noqa: E402

CHILD = """
import collections, json, os, resource, sys, time
import numpy as np, torch
from bgclean.pipeline.config import load_config
from bgclean.pipeline.runner import Pipeline
from bgclean.tuning import tune_process
tune_process()  # as the command does
page = os.sysconf("SC_PAGE_SIZE") / 2**20
trace = []
pipe = Pipeline(load_config(None, {"runtime.device": "cpu"}))
def held(obj, seen, depth=0):
    # bytes of the arrays and tensors reachable from obj through bgclean objects and containers
    if id(obj) in seen or depth > 12:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, torch.Tensor):
        return obj.untyped_storage().nbytes()
    if isinstance(obj, torch.nn.Module):
        return sum(t.untyped_storage().nbytes() for t in obj.state_dict(keep_vars=True).values())
    if isinstance(obj, dict):
        return sum(held(v, seen, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple, set, collections.deque)):
        return sum(held(v, seen, depth + 1) for v in obj)
    if hasattr(obj, "__dict__") and type(obj).__module__.startswith("bgclean"):
        return sum(held(v, seen, depth + 1) for v in vars(obj).values())
    return 0
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key + ":"))
stages, top, done = {}, [0.0], [0]
def peak_so_far():  # with --per-stage the kernel's mark is reset before every stage call
    if os.environ.get("BGCLEAN_PER_STAGE"):
        return max(top[0], status("VmHWM"))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def progress(done, total):
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * page
    trace.append([done, round(rss), round(peak_so_far()),
                  round(held(pipe, set()) / 2**20, 1)])
t = time.perf_counter()
if os.environ.get("BGCLEAN_PER_STAGE"):
    timed = pipe._timed
    def per_stage(name, fn, *args, **kwargs):
        top[0] = max(top[0], status("VmHWM"))  # what came before this call (decoding, other stages)
        before = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the high-water mark starts again at the resident size
        out = timed(name, fn, *args, **kwargs)
        peak = status("VmHWM")
        top[0] = max(top[0], peak)
        if peak > stages.get(name, [0])[0]:
            stages[name] = [round(peak), round(before), done[0]]
        return out
    pipe._timed = per_stage
    def progress(d, total, progress=progress):
        done[0] = d
        progress(d, total)
rep = pipe.run_file(sys.argv[1], sys.argv[2], progress=progress)
peak = peak_so_far()
print(json.dumps({"frames": rep.frames, "seconds": time.perf_counter() - t, "trace": trace,
                  "peak_rss_mb": peak, "stages": stages}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, nargs="*", default=[100, 795], help="first N frames (795: all of them), cut to H.264 like the pieces")
    ap.add_argument("--from", dest="starts", type=int, nargs="*", default=[],
                    help="also the 100 frames from each of these frames, run alone")
    ap.add_argument("--trace", type=Path, help="per-window memory of every run, JSON lines")
    ap.add_argument("--per-stage", action="store_true", help="also each stage's worst call: peak, resident before it")
    ap.add_argument("--clip", type=Path, help="measure this video instead of the data set's vtest (e.g. a 4K clip)")
    args = parse_args(ap)
    OUT.mkdir(parents=True, exist_ok=True)
    src = args.clip or data_dir() / "videos" / "vtest.avi"
    # every run reads a clip cut the same way (H.264), the whole video too: the .avi's own decoder
    # holds different buffers, which is not what this measures
    stem = src.stem
    runs = [(f"first {n}", cut_clip(src, n, OUT / f"{stem}_{n}.mp4")) for n in args.frames]
    runs += [(f"{s}-{s + 99}", cut_clip(src, 100, OUT / f"{stem}_from{s}.mp4", start=s)) for s in args.starts]
    print(f"# {machine()}")
    print("| frames | count | peak RSS (MB) | peak set after frame | seconds | fps |")
    print("|---|---|---|---|---|---|")
    for name, clip in runs:
        env = {**os.environ, "BGCLEAN_PER_STAGE": "1"} if args.per_stage else None
        res = subprocess.run([sys.executable, "-c", CHILD, str(clip), str(OUT / f"mem_{clip.stem}.mp4")],
                             capture_output=True, text=True, check=True, env=env)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        trace = r["trace"]
        top = max((row[2] for row in trace), default=None)
        at = next((row[0] for row in trace if row[2] == top), None)
        print(f"| {name} | {r['frames']} | {r['peak_rss_mb']:.0f} | {at} | {r['seconds']:.0f} | "
              f"{r['frames'] / r['seconds']:.2f} |", flush=True)
        if args.per_stage:
            print("  per stage, worst call: " + "; ".join(
                f"{k} {v[0]} MB (resident before {v[1]}, window from frame {v[2]})" for k, v in r["stages"].items()),
                flush=True)
        if args.trace:
            with args.trace.open("a") as f:
                f.write(json.dumps({"run": name, "trace": trace}) + "\n")


if __name__ == "__main__":
    main()
