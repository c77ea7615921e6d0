#!/usr/bin/env bash
# GPU checks and training, for a CUDA machine that may have no internet. Run from the repository
# root with bgclean installed (pip install . or make install) and the weights already in
# $BGCLEAN_HOME (`bgclean weights pull` on a machine with internet, then copy the folder).
#
#   bash bench/gpu.sh seg DATA        the CUDA tests, then bench/segmentation.py on CUDA at 1280x720
#                                     (batched windows of 8 and 32, the detector on torch and on
#                                     onnxruntime)
#   bash bench/gpu.sh train DATA [MINUTES]
#                                     bgclean train --config gpu-refine for MINUTES (default 60),
#                                     resumed from runs/inpaint-gpu-refine/last.pt where it exists;
#                                     exports the weights, then benchmarks them against the shipped ones
#
# DATA is the benchmark data folder (layout in bench/README.md). Output goes to $OUT (default
# out/gpu). PY picks the interpreter (default python3).
set -uo pipefail
part=${1:?usage: bench/gpu.sh seg|train DATA [MINUTES]}
data=${2:?usage: bench/gpu.sh seg|train DATA [MINUTES]}
OUT=${OUT:-$PWD/out/gpu}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || exit 1
step() { echo "== $* ($(date +%T))"; }

case $part in
seg)
    step CUDA tests
    $PY -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tail -4
    step segmentation 1280x720, window 8
    $PY bench/segmentation.py --data "$data" --segmenters yolox+u2net.small --size 1280x720 --window 8 \
        --set runtime.device=cuda 2>&1 | tee "$OUT/seg_720_w8.md"
    step tennis 1280x720, window 32
    $PY bench/segmentation.py --data "$data" --segmenters yolox+u2net.small --clips tennis --size 1280x720 \
        --window 32 --set runtime.device=cuda 2>&1 | tee "$OUT/seg_720_w32.md"
    step tennis 1280x720, the detector on onnxruntime on the CPU cores
    $PY bench/segmentation.py --data "$data" --segmenters yolox+u2net.small --clips tennis --size 1280x720 \
        --set runtime.device=cuda segment.detector_runtime=onnxruntime 2>&1 | tee "$OUT/seg_720_ort.md"
    ;;
train)
    minutes=${3:-60}
    run=runs/inpaint-gpu-refine
    step train "$minutes" minutes
    $PY -m bgclean train --config gpu-refine --data "$data" --set out=$run time_limit_min="$minutes" \
        2>&1 | tail -30
    cp $run/log.jsonl "$OUT/train_log.jsonl"
    for ck in last best; do
        [ -f $run/$ck.pt ] && $PY -m bgclean train --export $run/$ck.pt "$OUT/inpaint_dmfn_gpu_$ck.pth"
    done
    step benchmark against the shipped weights
    $PY bench/inpaint.py --data "$data" --methods telea auto "learned:checkpoint=$run/best.pt" \
        2>&1 | tee "$OUT/inpaint.md"
    ;;
*)
    echo "unknown part $part (seg or train)"; exit 2 ;;
esac
step done
