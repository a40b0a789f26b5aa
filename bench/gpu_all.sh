#!/usr/bin/env bash
# Every GPU benchmark in one go, for a session that is lent a GPU for a few minutes.
# Run by hand on the GPU machine from the repository root: bash bench/gpu_all.sh [OUTDIR]
# (python3 there must have torch, timm, numpy, scipy, pandas, pillow, scikit-image; no database is used).
# Each step's output goes to OUTDIR/<step>.log and to the terminal; a failing step does not stop the rest.
set -uo pipefail
out=${1:-${OUT:-/tmp/retcore-gpu}}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
jpegs=${RETCORE_BENCH_JPEGS:-/tmp/retcore-bench-jpegs}
workers=$(( $(nproc) - 1 ))
step() {  # step NAME SECONDS CMD...
    local name=$1 limit=$2; shift 2
    echo "=== $name ($(date -u +%T))"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    echo "=== $name: exit ${PIPESTATUS[0]}"
}
step env 60 bash -c "nvidia-smi -L; nproc; $py -c 'import torch, timm, PIL; print(torch.__version__, timm.__version__, PIL.__version__, torch.cuda.get_device_name())'"
step predict 150 "$py" bench/predict_throughput.py --folder "$jpegs" --images 6144 --batch 256 --workers "$workers"
step predict_float 120 "$py" bench/predict_throughput.py --folder "$jpegs" --images 6144 --batch 256 --workers "$workers" --float-transfer
step lrp_precision 150 "$py" bench/lrp_precision.py --model retfound_mae --batch 32 --methods lrp,lrp_pixels
step explain 180 "$py" bench/explain.py --model retfound_mae --device cuda --bf16 --batch 32 --repeats 3 --no-memory
step train_step 150 "$py" bench/train_step.py --model retfound_mae --device cuda --bf16 --batch 64 --steps 10 --rounds 3
step profile_lrp 120 "$py" bench/profile_explain.py --model retfound_mae --method lrp --batch 32 --device cuda --bf16 --rows 20
