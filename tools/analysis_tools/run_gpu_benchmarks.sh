#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md, in the stages used on the lent H100 (one call each).
#
#   bash tools/analysis_tools/run_gpu_benchmarks.sh eager    OUTDIR   # correctness + eager infer/train sweeps
#   bash tools/analysis_tools/run_gpu_benchmarks.sh compiled OUTDIR   # torch.compile (CUDA graphs) inference
#   bash tools/analysis_tools/run_gpu_benchmarks.sh train-compiled OUTDIR   # compiled training step, bf16
#   bash tools/analysis_tools/run_gpu_benchmarks.sh cudagraphs OUTDIR       # CUDA graphs of the eager kernels
#   (also compiled-fp32 and train-compiled-fp32; COMPILE_MODE=default|reduce-overhead|... for the compiled stages)
#   BUDGET_S=S bash tools/analysis_tools/run_gpu_benchmarks.sh quick OUTDIR  # all in one call (compiled: 16 clips,
#                                                                            # only if S leaves 200 s for it)
#   BUDGET_S=480 bash tools/analysis_tools/run_gpu_benchmarks.sh check OUTDIR   # the 8-minute GPU check: run it
#                                                                            # through tools/analysis_tools/gpu_check.sh
#
# CONFIG (env) overrides the config; BENCH_ARGS (env) is appended to the compiled stages' benchmark.py commands (a
# CPU smoke run: BENCH_ARGS="--device cpu --size 64 --iters 2 --warmup 1 --compile-backend eager"). The correctness
# steps are the CUDA tests (tests/test_models/test_segmentors/test_ccformer_cuda.py: compiled MSDA kernel against its
# PyTorch path, bf16 / fp16 autocast against fp32, compile_cfg against eager), with a JUnit XML record. Each step
# has its own time limit so one slow step cannot eat the call, and every JSON is rewritten after each record, so
# what finished comes back even if a later step is killed.
set -uo pipefail
stage=${1:?quick, eager, compiled, cudagraphs, compiled-fp32, train-compiled, train-compiled-fp32 or check}
out=${2:?output folder}
cfg=${CONFIG:-configs/ccformer/ccformer_pvtv2-b5_1xb2-60e_avsbench-s4-224x224.py}
py=${PYTHON:-python3}
bench=tools/analysis_tools/benchmark.py
cuda_tests=tests/test_models/test_segmentors/test_ccformer_cuda.py
log=$out/$stage.log
export PYTHONUNBUFFERED=1
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw,memory.used \
  --format=csv >>"$log" 2>&1
step() {  # step LIMIT_S NAME CMD...: also appends "NAME<TAB>rc<TAB>seconds<TAB>limit" to $out/steps.tsv
  local limit=$1 name=$2 t0=$SECONDS rc; shift 2
  echo "=== $name: $* (limit ${limit}s) $(date -u +%T)" | tee -a "$log"
  timeout "$limit" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  echo "=== $name: rc $rc $(date -u +%T)" | tee -a "$log"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" $(( SECONDS - t0 )) "$limit" >>"$out/steps.tsv"
}
left() { echo $(( ${BUDGET_S:-100000} - SECONDS )); }  # seconds left of BUDGET_S (env) for this script
compiled_sweep() {  # compiled_sweep MODE AMP "BATCH_SIZES" "PARTS" [EXTRA_ARGS...]: one process per (batch, part),
  # all compiling in parallel (70-160 s each), then timed one after another (--barrier)
  local mode=$1 amp=$2 sizes=$3 parts=$4; shift 4
  local n=0 limit=$(( $(left) - 15 - ${RESERVE:-0} )) iters=100 warmup=10 tag="${NAME:-compiled}_${mode}_${amp}"
  [ "$mode" = train ] && iters=30 && warmup=5
  for bs in $sizes; do for part in $parts; do n=$(( n + 1 )); done; done
  rm -rf /tmp/ccformer_barrier_$tag /tmp/compiled_${tag}_*.log
  echo "=== $tag bs=$sizes parts=$parts ($n processes, limit ${limit}s) $(date -u +%T)" | tee -a "$log"
  for bs in $sizes; do
    for part in $parts; do
      timeout "$limit" $py $bench "$cfg" --mode "$mode" --amp "$amp" --batch-size $bs --parts $part \
        --iters $iters --warmup $warmup --compile --compile-mode "$CMODE" --barrier /tmp/ccformer_barrier_$tag \
        --barrier-count $n --barrier-timeout $(( limit - 60 )) "$@" ${BENCH_ARGS:-} \
        --json "$out/${mode}_${NAME:-compiled}_${amp}_${part}_bs${bs}.json" >"/tmp/compiled_${tag}_${part}_${bs}.log" 2>&1 &
    done
  done
  wait
  for f in /tmp/compiled_${tag}_*.log; do echo "=== $f" >>"$log"; tail -n 30 "$f" >>"$log"; done
  grep -h -E 'frames/s|ERROR|OOM' /tmp/compiled_${tag}_*.log
}
# inference: inductor + CUDA graphs; training: inductor without CUDA graphs (COMPILE_MODE=reduce-overhead to try
# CUDA graphs for training: fine here, one optimizer step per forward, but not with gradient accumulation)
case $stage in train-*) CMODE=${COMPILE_MODE:-default} ;; *) CMODE=${COMPILE_MODE:-reduce-overhead} ;; esac
case $stage in
  quick)  # everything in one call when device time is short: fewer iterations, compiled at 16 clips only
    step 100 infer-eager $py $bench "$cfg" --mode infer --amp bf16 none --batch-size 2 16 \
      --iters 30 --warmup 5 --json "$out/infer_eager.json"
    step 120 correctness $py -m pytest $cuda_tests -q -s -p no:cacheprovider -k "not compile_cfg" \
      --junitxml "$out/correctness.xml"
    step 150 train-eager $py $bench "$cfg" --mode train --amp bf16 none --batch-size 2 16 \
      --iters 10 --warmup 3 --json "$out/train_eager.json"
    if [ "$(left)" -gt 200 ]; then compiled_sweep infer bf16 16 "model backbone"
    else echo "=== compiled skipped: $(left)s left" | tee -a "$log"; fi
    ;;
  eager)
    step 150 correctness $py -m pytest $cuda_tests -q -s -p no:cacheprovider -k "not compile_cfg" \
      --junitxml "$out/correctness.xml"
    step 150 infer-eager $py $bench "$cfg" --mode infer --amp bf16 fp16 none --batch-size 2 16 \
      --iters 50 --warmup 10 --json "$out/infer_eager.json"
    step 240 train-eager $py $bench "$cfg" --mode train --amp bf16 none --batch-size 2 16 \
      --iters 20 --warmup 5 --json "$out/train_eager.json"
    ;;
  compiled)  # inference, bf16, CUDA graphs: model and backbone at 2 and 16 clips (~5 min)
    compiled_sweep infer bf16 "2 16" "model backbone"
    ;;
  cudagraphs)  # inference, bf16, CUDA graphs of the eager kernels (backend cudagraphs: no code generation)
    NAME=cudagraphs compiled_sweep infer bf16 "2 16" "model backbone" --compile-backend cudagraphs
    NAME=cudagraphs compiled_sweep infer bf16-pure "2 16" "model backbone" --compile-backend cudagraphs
    ;;
  compiled-fp32)  # inference, fp32, CUDA graphs: model and backbone at 2 and 16 clips (~5 min)
    compiled_sweep infer none "2 16" "model backbone"
    ;;
  train-compiled)  # training step, bf16 (no GradScaler, as BF16OptimWrapper), compiled (COMPILE_MODE, default
    # 'default': no CUDA graphs), fused AdamW: model and backbone at 2 and 16 clips, then the check of gradients
    RESERVE=200 compiled_sweep train bf16 "2 16" "model backbone" --fused-adamw
    step $(( $(left) - 10 )) train-compile-check $py -m pytest $cuda_tests -q -s -p no:cacheprovider \
      -k compile_cfg_training --junitxml "$out/correctness_train_compile.xml"
    ;;
  train-compiled-fp32)  # the fp32 twin of train-compiled (model only), for bf16 / fp32
    compiled_sweep train none "2 16" "model" --fused-adamw
    ;;
  check)  # the GPU check (gpu_check.sh): everything below within BUDGET_S (default 480 s), each step time-limited
    # 1. background, compiling in parallel (one barrier, then timed one after another): inference with CUDA graphs
    #    (inductor reduce-overhead), bf16, model and backbone at 2 and 16 clips; one compiled bf16 training step
    #    (inductor default, BF16OptimWrapper's AdamW) at 2 clips
    BUDGET_S=${BUDGET_S:-480}
    barrier=/tmp/ccformer_barrier_check_$$
    group=$(( $(left) - 130 ))  # leaves 130 s for the eager steps and the summary
    t0=$SECONDS
    rm -rf "$barrier"
    echo "=== compiled group: 5 processes (limit ${group}s) $(date -u +%T)" | tee -a "$log"
    declare -A names=()
    bg() {  # bg NAME ARGS...: one benchmark process of the group, in the background
      local name=$1; shift
      timeout "$group" $py $bench "$cfg" "$@" --barrier "$barrier" --barrier-count 5 \
        --barrier-timeout $(( group - 40 )) ${BENCH_ARGS:-} --json "$out/$name.json" >"$out/$name.log" 2>&1 &
      names[$!]=$name
    }
    for bs in 2 16; do
      for part in model backbone; do
        bg infer_compiled_bf16_${part}_bs$bs --mode infer --amp bf16 --batch-size $bs --parts $part --iters 50 \
          --warmup 5 --compile --compile-mode reduce-overhead
      done
    done
    bg train_compiled_bf16_model_bs2 --mode train --amp bf16 --batch-size 2 --parts model --iters 20 --warmup 5 \
      --compile --compile-mode default --fused-adamw
    # 2. meanwhile the CUDA tests (correctness: compiled MSDA kernel vs its PyTorch path, bf16 / fp16 autocast vs
    #    fp32, bf16 weights, compile_cfg with CUDA graphs; compile_cfg training is the stage train-compiled's check)
    step $(( group - 10 )) cuda-tests $py -m pytest $cuda_tests -q -s -p no:cacheprovider \
      -k "not compile_cfg_training" --junitxml "$out/cuda_tests.xml"
    for pid in "${!names[@]}"; do
      wait "$pid"; rc=$?
      echo "=== ${names[$pid]}: rc $rc" >>"$log"; tail -n 20 "$out/${names[$pid]}.log" >>"$log"
      printf '%s\t%s\t%s\t%s\n' "${names[$pid]}" "$rc" $(( SECONDS - t0 )) "$group" >>"$out/steps.tsv"
    done
    grep -h -E 'frames/s|ERROR|OOM|Error' "$out"/*_compiled_*.log | tee -a "$log"
    # 3. eager on a quiet machine: bf16 inference, model and backbone, 2 and 16 clips; a bf16 training step, 2 clips
    step $(( $(left) - 70 > 20 ? $(left) - 70 : 20 )) infer-eager $py $bench "$cfg" --mode infer --amp bf16 \
      --batch-size 2 16 --iters 30 --warmup 5 ${BENCH_ARGS:-} --json "$out/infer_eager_bf16.json"
    step $(( $(left) - 25 > 15 ? $(left) - 25 : 15 )) train-eager $py $bench "$cfg" --mode train --amp bf16 \
      --batch-size 2 --parts model --iters 10 --warmup 3 ${BENCH_ARGS:-} --json "$out/train_eager_bf16.json"
    printf 'total\t0\t%s\t%s\n' "$SECONDS" "$BUDGET_S" >>"$out/steps.tsv"  # wall seconds of the stage so far
    # 4. one JSON and one markdown table (peak memory per record included)
    step 20 summary $py tools/analysis_tools/benchmark_table.py "$out"/infer_*.json "$out"/train_*.json \
      --steps "$out/steps.tsv" --budget "$BUDGET_S" --json "$out/gpu_check.json" --markdown "$out/gpu_check.md"
    rm -rf "$barrier"
    ;;
  *) echo "unknown stage $stage (quick, eager, compiled, cudagraphs, compiled-fp32, train-compiled," \
       "train-compiled-fp32, check)" >&2
     exit 2 ;;
esac
