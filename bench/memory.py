"""Peak memory is bounded by the window, not the video length: vtest's first 100 frames against all
795, each run in a fresh process, default configuration on CPU.

    python bench/memory.py [--frames 100 795] [--from 0 300 ...] [--trace FILE]

``--from S`` adds a run of the 100 frames from frame S (cut as its own clip): the long run should
peak no higher than its worst 100-frame piece run alone. ``--trace FILE`` writes, for each run, the
process's resident memory after every window (current and peak so far, MB) as JSON lines: where the
long run's peak was set, and whether memory climbs with the frame count.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, SHARED, cut_clip, machine  # noqa: E402

CHILD = """
import json, os, resource, sys, time
from bgclean.pipeline.config import load_config
from bgclean.pipeline.runner import Pipeline
page = os.sysconf("SC_PAGE_SIZE") / 2**20
trace = []
def progress(done, total):
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * page
    trace.append([done, round(rss), round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)])
t = time.perf_counter()
rep = Pipeline(load_config(None, {"runtime.device": "cpu"})).run_file(sys.argv[1], sys.argv[2], progress=progress)
print(json.dumps({"frames": rep.frames, "seconds": time.perf_counter() - t, "trace": trace,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, nargs="*", default=[100, 795], help="first N frames (795: the whole file)")
    ap.add_argument("--from", dest="starts", type=int, nargs="*", default=[],
                    help="also the 100 frames from each of these frames, run alone")
    ap.add_argument("--trace", type=Path, help="per-window memory of every run, JSON lines")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    src = SHARED / "videos" / "vtest.avi"
    runs = [(f"first {n}", src if n >= 795 else cut_clip(src, n, OUT / f"vtest_{n}.mp4")) for n in args.frames]
    runs += [(f"{s}-{s + 99}", cut_clip(src, 100, OUT / f"vtest_from{s}.mp4", start=s)) for s in args.starts]
    print(f"# {machine()}")
    print("| frames | count | peak RSS (MB) | peak set after frame | seconds | fps |")
    print("|---|---|---|---|---|---|")
    for name, clip in runs:
        res = subprocess.run([sys.executable, "-c", CHILD, str(clip), str(OUT / f"mem_{clip.stem}.mp4")],
                             capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        trace = r["trace"]
        top = max((peak for _, _, peak in trace), default=None)
        at = next((done for done, _, peak in trace if peak == top), None)
        print(f"| {name} | {r['frames']} | {r['peak_rss_mb']:.0f} | {at} | {r['seconds']:.0f} | "
              f"{r['frames'] / r['seconds']:.2f} |", flush=True)
        if args.trace:
            with args.trace.open("a") as f:
                f.write(json.dumps({"run": name, "trace": trace}) + "\n")


if __name__ == "__main__":
    main()
