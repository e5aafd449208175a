#!/usr/bin/env bash
# The GPU check: one call of about 8 minutes on a machine with one GPU and no network.
#
#   1. builds a full-size synthetic set (10,661 training cells at 450x450, the official counts) in the
#      background while one smoke run and the tests marked gpu check the engine on the GPU;
#   2. runs the timing benchmarks at the specs' real sizes: a training epoch under torch.profiler (how busy
#      the GPU is, kernels and operators per batch), fastai's loop against a bare PyTorch loop, that
#      loop's step replayed as a CUDA graph and the suite with its training passes as CUDA graphs (never run
#      on a GPU so far), torch.compile weighed for ResNet50, data feeding, training per architecture, and
#      evaluation with the last partial batch padded to the batch size against as it is (never run on a GPU);
#   3. runs every spec once at the published sizes with one epoch per stage (profile "timing"), and the
#      k-fold spec again with --deterministic;
#   4. prints gpu_summary.py's table last: seconds per epoch, peak memory, the whole study projected.
#
# Every step has its own time limit, all of them end within BUDGET seconds (default 470), and the steps
# after a failed one still run. On one H100 the whole check takes two calls of about 8 minutes: the second
# with STEPS="timing deterministic" and SPECS naming the specs the first did not reach. What it measures lands in
# $OUT (default /tmp/gpu_check): check.log (everything printed), gpu.txt, bench_*.json, summary.txt and
# results.tgz (each timing run's result.json and epochs.jsonl).
#
# The GPU image may lack the suite's pure-Python dependencies (fastai and what it imports, bayes_opt): make
# wheels of them beforehand with benchmarks/gpu_wheels.sh and carry .whl/.
# A dry run on a CPU: DEVICE=cpu SYNTH=small SPECS="alexnet ensembles" bash benchmarks/gpu_check.sh
# Part of it again: STEPS="timing compile" SPECS="densenet121" bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
DEVICE=${DEVICE:-cuda}
SYNTH=${SYNTH:-full}
# the specs of the targets first: a run stopped by its time limit still leaves those finished before it
SPECS=${SPECS:-kfold resnet50 loss_penalisation alexnet squeezenet vgg19 densenet121 ensembles progressive_resizing \
bayesian_search kfold_independent kfold_subjects}
WORK=${WORK:-/tmp/cnmc-gpu-check}
STEPS=${STEPS:-smoke gputests profile overhead graphs compile data train evalpad timing deterministic}  # a subset reruns part of the check
mkdir -p "$OUT" "$WORK"
exec > >(tee "$OUT/check.log") 2>&1
export PYTHONUNBUFFERED=1 CNMC_REPRO_CACHE="$WORK/cache" PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
DEADLINE=$(($(date +%s) + ${BUDGET:-470}))  # every step ends by then, leaving 25 s for the summary
step() { echo "=== $1 ($(date +%T), $((DEADLINE - $(date +%s))) s left)"; }
limit() {  # limit SECONDS COMMAND...: SIGINT first, so that a stopped run leaves nothing half-written
    local cap=$1 left=$((DEADLINE - $(date +%s) - 25))
    shift
    ((left < cap)) && cap=$left
    ((cap < 5)) && { echo "skipped, no time left: $*"; return 124; }
    timeout -s INT -k 10 "$cap" "$@"
}

if ! $PY -c "import fastai, bayes_opt" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:$WORK/site"
fi
step environment
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi"
    $PY -c "import sys, torch, torchvision, fastai, bayes_opt; print('python', sys.version.split()[0], 'torch', \
torch.__version__, 'torchvision', torchvision.__version__, 'fastai', fastai.__version__, 'bayes_opt', bayes_opt.__version__)"
    echo "cpus $(nproc)"
} | tee "$OUT/gpu.txt"

has() { [[ " $STEPS " == *" $1 "* ]]; }
step "synthetic $SYNTH set, in the background"
t0=$(date +%s)
limit 100 $PY -m reproduce data synth --out "$WORK/data" --size "$SYNTH" >"$WORK/synth.log" 2>&1 &
synth=$!
need_data() {
    [ -z "$synth" ] && return
    wait $synth || { echo "synthetic set failed: $?"; cat "$WORK/synth.log"; }
    echo "synthetic $SYNTH set ready after $(($(date +%s) - t0)) s" | tee -a "$OUT/gpu.txt"
    synth=
}
bench() {  # bench NAME LIMIT FILES...
    local name=$1 secs=$2
    shift 2
    step "benchmark $name"
    BENCH_DATA="$WORK/data" limit "$secs" $PY -m pytest "$@" -n 0 -o python_files='bench_*.py' --benchmark-only \
        --benchmark-json="$OUT/bench_$name.json" -q -s -p no:cacheprovider -W ignore::UserWarning \
        || echo "benchmark $name stopped: $?"
}

if has smoke; then
    step "a smoke run on $DEVICE (built-in data)"
    limit 90 $PY -m reproduce run alexnet resnet50 --profile smoke --device "$DEVICE" --no-pretrained \
        --results "$WORK/smoke" || echo "smoke run failed: $?"
fi
if has gputests; then
    step "the tests that need a GPU (pytest -m gpu)"
    limit 90 $PY -m pytest tests -m gpu -n 0 -q -p no:cacheprovider -W ignore::UserWarning || echo "GPU tests failed: $?"
fi
has profile && bench profile 60 benchmarks/bench_train.py -k test_step_profile
has overhead && bench overhead 60 benchmarks/bench_train.py -k test_fastai_overhead
[ "$DEVICE" = cuda ] && has graphs && bench graphs 90 benchmarks/bench_train.py -k "cuda_graph"
[ "$DEVICE" = cuda ] && has compile && bench compile 100 benchmarks/bench_train.py -k test_compile
if has data; then need_data; bench data 50 benchmarks/bench_data.py; fi
has train && bench train 110 benchmarks/bench_train.py -k test_training_images_per_second
has evalpad && bench evalpad 40 benchmarks/bench_train.py -k test_evaluation_padding
if has timing; then
    need_data
    step "specs, one epoch per stage at the published sizes (profile timing): $SPECS"
    # shellcheck disable=SC2086
    limit 180 $PY -m reproduce run $SPECS --data "$WORK/data" --profile timing --device "$DEVICE" \
        --no-pretrained --results "$WORK/timing" || echo "timing runs stopped: $?"
fi
if has deterministic; then
    need_data
    step "the k-fold spec again with --deterministic"
    limit 40 $PY -m reproduce run kfold --data "$WORK/data" --profile timing --device "$DEVICE" --no-pretrained \
        --deterministic --results "$WORK/deterministic" || echo "deterministic run stopped: $?"
fi

step summary
(cd "$WORK" && tar czf "$OUT/results.tgz" --exclude='*.pt' --exclude='*.pth' timing deterministic 2>/dev/null)
$PY benchmarks/gpu_summary.py "$WORK/timing" --deterministic "$WORK/deterministic" \
    --bench "$OUT"/bench_*.json | tee "$OUT/summary.txt"
