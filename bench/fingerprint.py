"""Same behaviour, bit for bit: a digest of every output frame and mask the pipeline makes on the
bundled clips, to compare a code change that must not change results (a restructuring) against
the code before it.

    python bench/fingerprint.py > before.txt          # on the old code
    python bench/fingerprint.py --against before.txt   # on the new: exit 1 and the first difference

Runs the public API (``Pipeline.run``) with the default configuration on CPU over the first frames
of each bundled clip (automatic masks), the demo's sample, and one photo with a person-shaped hole
(the still-image fill). Needs no benchmark data.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _frames(path: Path, count: int) -> list[np.ndarray]:
    from bgclean import io

    out = []
    for f in io.read_frames(io.probe(path)):
        if f.index >= count:
            break
        out.append(f.rgb)
    return out


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def cases(frames: int):
    """(name, frames, masks or None) for each run."""
    from conftest import person_hole, photo

    data = ROOT / "tests" / "data"
    yield "schoolgirls", _frames(data / "schoolgirls" / "schoolgirls.mp4", frames), None
    yield "dogs_jump", _frames(data / "dogs_jump" / "dogs_jump.mp4", frames), None
    yield "vtest_20.avi", _frames(data / "vtest_20.avi", frames), None
    yield "sample", _frames(ROOT / "samples" / "vtest_6s.mp4", frames), None
    still = photo("coffee")  # 400x600
    hole = np.zeros(still.shape[:2], bool)
    hole[:, 100:500] = person_hole(400, frac=0.2)
    yield "coffee+hole", [still], [hole]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=24, help="frames of each clip (default 24)")
    ap.add_argument("--against", type=Path, help="a previous run's output: exit 1 where any digest differs")
    args = ap.parse_args()

    from bgclean.pipeline.config import load_config
    from bgclean.pipeline.runner import Pipeline

    pipe = Pipeline(load_config(None, {"runtime.device": "cpu"}))
    lines = []
    for name, frames, masks in cases(args.frames):
        out = list(pipe.run(frames, masks))
        lines.append(f"{name} {len(out)} {_digest(out)}")
        print(lines[-1], flush=True)
    if args.against:
        before = args.against.read_text().split("\n")
        differ = [f"{b!r} -> {a!r}" for b, a in zip(before, lines) if a != b]
        if differ or len(lines) != len([b for b in before if b]):
            print("differs: " + "; ".join(differ) if differ else "a different set of runs", file=sys.stderr)
            return 1
        print("same output", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
