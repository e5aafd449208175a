#!/usr/bin/env bash
# The GPU check: one call of at most 8 minutes on a machine with one GPU and no network.
#
#   1. builds a full-size synthetic set (10,661 training cells at 450x450, as the official counts);
#   2. runs the timing benchmarks at the specs' real sizes (data feeding, training per architecture);
#   3. runs every spec once at the published sizes with one epoch per stage (profile "timing") and projects
#      the whole study (`reproduce all --profile full`) from the measured seconds per epoch;
#   4. prints a short table last. Everything it measures lands in $OUT (default /tmp/gpu_check).
#
# The GPU image may lack the suite's pure-Python dependencies (fastai and its helpers, bayes_opt): make
# wheels of them beforehand with benchmarks/gpu_wheels.sh (on a machine with pip) and carry .whl/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CNMC_REPRO_CACHE=/tmp/cnmc-cache PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
if ! $PY -c "import fastai, bayes_opt" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt" || true
$PY -c "import torch, torchvision, fastai; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'fastai', fastai.__version__)" | tee -a "$OUT/gpu.txt"

t0=$(date +%s)
$PY -m reproduce data synth --out /tmp/cnmc-full --size full
echo "full-size synthetic set: $(( $(date +%s) - t0 ))s" | tee -a "$OUT/gpu.txt"

BENCH_DATA=/tmp/cnmc-full timeout 200 $PY -m pytest benchmarks/bench_data.py benchmarks/bench_train.py \
    -o python_files='bench_*.py' --benchmark-only --benchmark-json="$OUT/gpu_bench.json" -q -s -p no:cacheprovider \
    2>&1 | tee "$OUT/bench.log" | grep -E "img/s|cells/s|passed|failed" || true

timeout 240 $PY -m reproduce all --data /tmp/cnmc-full --profile timing --device cuda --no-pretrained \
    --results /tmp/cnmc-timing-results 2>&1 | tee "$OUT/timing.log" | grep -E "^\[|done in" || true

$PY benchmarks/gpu_summary.py /tmp/cnmc-timing-results "$OUT/gpu_bench.json" | tee "$OUT/summary.txt"
