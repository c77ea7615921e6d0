#!/usr/bin/env bash
# The GPU session's checks, prepared so that a lent device's 15 minutes go to measuring, not to
# setting up. Here first: `.venv/bin/python bench/device_pack.py` (fills the git-ignored .device/).
# Then through the device tool, from the repository root (what each call carries must stay under
# 64 MiB with the working tree):
#
#   seg     carry [".device/whl", ".device/home", ".device/videos"], timeout_s 420
#           the CUDA tests, then bench/segmentation.py on CUDA at 1280x720 (issue 4's GPU target:
#           >= 100 fps batched): the four clips with windows of 8 (profiled), tennis with windows
#           of 32 and with the detector on onnxruntime (CPU) instead of torch
#   (15 minutes in all: `seg`, then at once `train 4` on the warm machine, then give_back)
#   train [MINUTES]
#           carry [".device/whl/base", ".device/home", ".device/photos", ".device/videos/schoolgirls",
#           ".device/videos/dogs_jump", and "runs/inpaint-gpu-refine" once it exists], timeout_s MINUTES*60 + 150
#           `bgclean train --config gpu-refine` (the shipped weights refined at 256 px with perceptual,
#           style and adversarial terms) for MINUTES (default 4), resumed where runs/inpaint-gpu-refine
#           is carried too; exported weights, the log and the checkpoint come back in $OUT. Here:
#           `.venv/bin/python bench/device_pack.py --merge FILES_AT` rebuilds runs/inpaint-gpu-refine
#           (the next train call carries it), then bench it: bench/inpaint.py --methods telea
#           auto "learned:checkpoint=runs/inpaint-gpu-refine/last.pt" (and bench/places2_sheet.py).
#
# Environment for a rehearsal on a CPU machine: PY (python), DEVICE (cpu), SKIP_WHEELS=1, CLIPS,
# STEPS.
set -uo pipefail
part=${1:?usage: bench/device_run.sh seg|train [MINUTES]}
OUT=${OUT:-$PWD/out/device}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
shopt -s nullglob
if [ -z "${SKIP_WHEELS:-}" ]; then
    wheels=(.device/whl/*/*.whl)
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "${wheels[@]}" || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export BGCLEAN_HOME=$PWD/.device/home BGCLEAN_SHARED=/tmp/bgclean-shared
$PY bench/device_pack.py --unpack "$BGCLEAN_SHARED" || exit 1
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
$PY -c "import torch, os; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), os.cpu_count(), 'CPUs')"
step() { echo "== $* ($(date +%T))"; }

case $part in
seg)
    if [ "$DEVICE" = cuda ]; then
        step CUDA tests
        $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_inpaint_texture.py tests/test_superres.py \
            tests/test_segment.py 2>&1 | tail -4
    fi
    # the bench also runs propagation (its shadows join the final mask) on the CPU: the full
    # quality table once, the speed variants on tennis only, so the part fits about 5 minutes
    clips=${CLIPS:-schoolgirls tennis bmx-trees dogs_jump}
    step segmentation 1280x720, window 8, profiled
    $PY bench/segmentation.py --segmenters yolox+u2net.small --clips $clips --size 1280x720 --window 8 \
        --set runtime.device=$DEVICE --profile 30 > "$OUT/seg_720_w8.txt" 2>&1
    head -n 8 "$OUT/seg_720_w8.txt"; grep -A 36 "Ordered by" "$OUT/seg_720_w8.txt" | cut -c1-150
    step tennis 1280x720, window 32
    $PY bench/segmentation.py --segmenters yolox+u2net.small --clips tennis --size 1280x720 --window 32 \
        --set runtime.device=$DEVICE 2>&1 | tee "$OUT/seg_720_w32.md"
    if [ "$DEVICE" = cuda ]; then
        step tennis 1280x720, window 8, the detector on onnxruntime on the CPU cores
        $PY bench/segmentation.py --segmenters yolox+u2net.small --clips tennis --size 1280x720 \
            --set runtime.device=cuda segment.detector_runtime=onnxruntime 2>&1 | tee "$OUT/seg_720_ort.md"
    fi
    ;;
train)
    minutes=${2:-4}
    run=$PWD/runs/inpaint-gpu-refine  # carried there (bench/device_pack.py --merge put it here): resumed
    # data workers pass their batches through /dev/shm (about 15 MB each, 4 ahead per worker)
    shm_mb=$(( $(df -k --output=avail /dev/shm 2>/dev/null | tail -1 || echo 0) / 1024 ))
    workers=-1; [ "$shm_mb" -lt 2048 ] && workers=$(( shm_mb / 100 > 1 ? shm_mb / 100 : 0 ))
    echo "/dev/shm: $shm_mb MB free, workers $workers"
    step train "$minutes" minutes
    $PY -m bgclean train --config "$BGCLEAN_SHARED/gpu-refine.yaml" --set out=$run time_limit_min=$minutes workers=$workers \
        ${STEPS:+steps=$STEPS eval_every=$STEPS ckpt_every=$STEPS} 2>&1 | tail -30
    cp $run/log.jsonl "$OUT/train_log.jsonl"
    cp $run/last.pt /tmp/last.pt
    for ck in last best; do
        [ -f $run/$ck.pt ] && $PY -m bgclean train --export $run/$ck.pt "$OUT/inpaint_dmfn_gpu_$ck.pth"
    done
    # a returned file may have 16 MiB and the checkpoint has 17 MB: it comes back in two halves,
    # joined here by bench/device_pack.py --merge, so the next GPU session resumes it
    $PY -c "
import sys, torch
ck = torch.load('/tmp/last.pt', map_location='cpu', weights_only=False)
torch.save({k: ck.pop(k) for k in ('disc', 'opt_d')}, sys.argv[1] + '/train_last_d.pt')
torch.save(ck, sys.argv[1] + '/train_last_g.pt')" "$OUT"
    $PY - "$OUT/train_log.jsonl" <<'EOF'
import json, sys
rows = [json.loads(x) for x in open(sys.argv[1])]
steps = [r for r in rows if "seconds" in r]
starts = [i for i in range(1, len(steps)) if steps[i]["seconds"] < steps[i - 1]["seconds"]]
steps = steps[starts[-1] if starts else 0 :]  # this call's run (the log holds resumed runs too)
if len(steps) > 1 and steps[-1]["seconds"] > steps[0]["seconds"]:
    a, b = steps[0], steps[-1]
    print(f"steps {a['step']}-{b['step']}: {(b['step'] - a['step']) / (b['seconds'] - a['seconds']):.2f} steps/s")
for r in rows:
    if "eval_psnr" in r:
        print(f"step {r['step']}: eval {r['eval_psnr']:.2f} dB (classical {r['eval_psnr_classical']:.2f})")
EOF
    ;;
*)
    echo "unknown part $part (seg or train)"; exit 2 ;;
esac
step done
