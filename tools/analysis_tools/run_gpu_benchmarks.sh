#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md, in the stages used on the lent H100 (one call each).
#
#   bash tools/analysis_tools/run_gpu_benchmarks.sh eager    OUTDIR   # correctness + eager infer/train sweeps
#   bash tools/analysis_tools/run_gpu_benchmarks.sh compiled OUTDIR   # torch.compile (CUDA graphs) inference
#   BUDGET_S=S bash tools/analysis_tools/run_gpu_benchmarks.sh quick OUTDIR  # all in one call (compiled: 16 clips,
#                                                                            # only if S leaves 200 s for it)
#
# CONFIG (env) overrides the config. Each step has its own time limit so one slow step cannot eat the call, and
# every JSON is rewritten after each record, so what finished comes back even if a later step is killed.
set -uo pipefail
stage=${1:?quick, eager or compiled}
out=${2:?output folder}
cfg=${CONFIG:-configs/ccformer/ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py}
py=${PYTHON:-python3}
bench=tools/analysis_tools/benchmark.py
log=$out/$stage.log
export PYTHONUNBUFFERED=1
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw,memory.used \
  --format=csv >>"$log" 2>&1
step() {  # step LIMIT_S NAME CMD...
  local limit=$1 name=$2; shift 2
  echo "=== $name: $* (limit ${limit}s) $(date -u +%T)" | tee -a "$log"
  timeout "$limit" "$@" 2>&1 | tee -a "$log"
  echo "=== $name: rc ${PIPESTATUS[0]} $(date -u +%T)" | tee -a "$log"
}
left() { echo $(( ${BUDGET_S:-100000} - SECONDS )); }  # seconds left of BUDGET_S (env) for this script
compiled_infer() {  # compiled_infer BATCH_SIZES...: model + backbone per batch size, compiled in parallel
  rm -rf /tmp/ccformer_barrier
  local n=$(( 2 * $# )) limit=$(( $(left) - 15 ))
  echo "=== compiled-infer bs=$* ($n processes, limit ${limit}s) $(date -u +%T)" | tee -a "$log"
  for bs in "$@"; do
    for part in model backbone; do
      timeout "$limit" $py $bench "$cfg" --mode infer --amp bf16 --batch-size $bs --parts $part --iters 100 \
        --warmup 10 --compile --compile-mode reduce-overhead --barrier /tmp/ccformer_barrier \
        --barrier-count $n --barrier-timeout $(( limit - 60 )) --json "$out/infer_compiled_${part}_bs${bs}.json" \
        >"/tmp/compiled_${part}_${bs}.log" 2>&1 &
    done
  done
  wait
  for f in /tmp/compiled_*.log; do echo "=== $f" >>"$log"; tail -n 30 "$f" >>"$log"; done
  grep -h -E 'frames/s|ERROR|OOM' /tmp/compiled_*.log
}
case $stage in
  quick)  # everything in one call when device time is short: fewer iterations, compiled at 16 clips only
    step 100 infer-eager $py $bench "$cfg" --mode infer --amp bf16 none --batch-size 2 16 \
      --iters 30 --warmup 5 --json "$out/infer_eager.json"
    step 120 correctness $py tools/analysis_tools/check_equivalence.py "$cfg" --device cuda \
      --checks autocast train-amp msda --amp bf16 fp16 --batch-size 2 --json "$out/equivalence.json"
    step 150 train-eager $py $bench "$cfg" --mode train --amp bf16 none --batch-size 2 16 \
      --iters 10 --warmup 3 --json "$out/train_eager.json"
    if [ "$(left)" -gt 200 ]; then compiled_infer 16
    else echo "=== compiled skipped: $(left)s left" | tee -a "$log"; fi
    ;;
  eager)
    step 150 correctness $py tools/analysis_tools/check_equivalence.py "$cfg" --device cuda \
      --checks autocast train-amp msda --amp bf16 fp16 --batch-size 2 --json "$out/equivalence.json"
    step 150 infer-eager $py $bench "$cfg" --mode infer --amp bf16 fp16 none --batch-size 2 16 \
      --iters 50 --warmup 10 --json "$out/infer_eager.json"
    step 240 train-eager $py $bench "$cfg" --mode train --amp bf16 none --batch-size 2 16 \
      --iters 20 --warmup 5 --json "$out/train_eager.json"
    ;;
  compiled)
    compiled_infer 2 16
    ;;
  *) echo "unknown stage $stage (quick, eager or compiled)" >&2; exit 2 ;;
esac
