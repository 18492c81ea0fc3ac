#!/usr/bin/env bash
# The GPU check of docs/benchmarks.md in one run of at most 8 minutes on a bare lent H100 / H200:
#
#   bash tools/analysis_tools/gpu_check.sh OUT
#
# On the device tool: prepare the wheels once here (`bash ../shared/gpu/prepare.sh`: .gpu-wheels/), then
# run: command "bash tools/analysis_tools/gpu_check.sh $OUT", carry [".gpu-wheels"], timeout_s 540.
# The script installs the wheels (.gpu-wheels/install.sh, PYTHONPATH=/tmp/site) and runs the stage `check` of
# run_gpu_benchmarks.sh, each step with its own time limit, all within BUDGET_S (default 480 s, install included):
#   in parallel: the CUDA tests; inference with CUDA graphs (inductor reduce-overhead), bf16, model and backbone at 2
#   and 16 clips; one compiled bf16 training step at 2 clips (these five compile at the same time, then are timed one
#   after another); then eager bf16 inference (model and backbone, 2 and 16 clips) and one eager bf16 training step
#   (2 clips); peak memory per record. Writes OUT/gpu_check.json, OUT/gpu_check.md, the JSON of each step and a log.
#
# CPU smoke test of the script (tiny config, 64 x 64, 2 iterations, dynamo 'eager' backend; the CUDA tests skip):
#   GPU_CHECK_CPU=1 bash tools/analysis_tools/gpu_check.sh /tmp/gpu_check_smoke
set -uo pipefail
out=${1:?usage: bash tools/analysis_tools/gpu_check.sh OUT}
cd "$(dirname "$0")/../.."
mkdir -p "$out"
out=$(cd "$out" && pwd)
budget=${BUDGET_S:-480}
if [ "${GPU_CHECK_CPU:-0}" = 1 ]; then
  export CONFIG=${CONFIG:-configs/ccformer/ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py}
  export PYTHON=${PYTHON:-python}
  export BENCH_ARGS="--device cpu --size ${GPU_CHECK_SIZE:-64} --iters 2 --warmup 2 --compile-backend eager --threads 1"
elif [ -f .gpu-wheels/install.sh ]; then
  echo "=== installing .gpu-wheels $(date -u +%T)"
  timeout 150 bash .gpu-wheels/install.sh >"$out/install.log" 2>&1 || {
    tail -n 20 "$out/install.log"; echo "gpu_check: installing .gpu-wheels failed (log: $out/install.log)" >&2; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export BUDGET_S=$(( budget - SECONDS ))
exec bash tools/analysis_tools/run_gpu_benchmarks.sh check "$out"
