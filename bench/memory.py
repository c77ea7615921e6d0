"""Peak memory is bounded by the window, not the video length: vtest's first 100 frames against all
795, each run in a fresh process, default configuration on CPU.

    python bench/memory.py [--frames 100 795]
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
import json, resource, sys, time
from bgclean.pipeline.config import load_config
from bgclean.pipeline.runner import Pipeline
t = time.perf_counter()
rep = Pipeline(load_config(None, {"runtime.device": "cpu"})).run_file(sys.argv[1], sys.argv[2])
print(json.dumps({"frames": rep.frames, "seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 795])
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"# {machine()}")
    print("| input | frames | peak RSS (MB) | seconds | fps |")
    print("|---|---|---|---|---|")
    for n in args.frames:
        src = SHARED / "videos" / "vtest.avi"
        clip = src if n >= 795 else cut_clip(src, n, OUT / f"vtest_{n}.mp4")
        res = subprocess.run([sys.executable, "-c", CHILD, str(clip), str(OUT / f"mem_{n}.mp4")],
                             capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"| {clip.name} | {r['frames']} | {r['peak_rss_mb']:.0f} | {r['seconds']:.0f} | "
              f"{r['frames'] / r['seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
