# GPU job: the issue-15 measurements built in session 18 (all three ran in session 20; re-run after
# changing what they measure), in priority order,
# each under its own time limit so one that hangs leaves time for the rest. Usage (device tool):
#   1. bash bench/gpu/pack-wheels && bash bench/gpu/pack-peers   (here, once)
#   2. mkdir -p /tmp/w3 && cp .whl3t/*.whl /tmp/w3/ && bash bench/gpu/job-pending.sh [capture,memory,gemv]
#      (one device call, carry [".whl2", ".whl3t"]: TRL and Liger travel beside .whl2)
# Results land in $OUT/*.json and $OUT/*.log; docs/benchmarks.md names the sections they settle:
#   capture  whole-step CUDA-graph capture of gemma-3-270m's step, with and without the fused
#            (compiled) softmax of the loss (bench/gpu/train_capture.py)
#   memory   the loss's peak memory (closed form, autograd, a 64 MiB chunk, Liger FLCE) against TRL (train_speed.py)
#   gemv     GemLite's H100 config and widest autotune on line-3.6b's shapes (gemv_shapes.py)
set -uo pipefail
source bench/gpu/device-env.sh
parts=${1:-capture,memory,gemv}
out=${OUT:-/tmp/out}
mkdir -p "$out"
run() {  # run NAME LIMIT_S COMMAND...
  local name=$1 limit=$2; shift 2
  echo "== $name ($(date +%T), limit ${limit}s)"
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  echo "== $name exit $? ($(date +%T))"
  tail -n 25 "$out/$name.log"
}
if [[ ,$parts, == *,capture,* ]]; then
  run capture 240 python3 bench/gpu/train_capture.py --model gemma-3-270m --steps 12 --warmup 3 --profile \
    --rows eager,static,captured,fused,captured-fused \
    --out "$out/train-capture-gemma.json"
fi
if [[ ,$parts, == *,memory,* ]]; then
  run memory 420 python3 bench/gpu/train_speed.py --peers trl --models gemma-3-270m,stablelm-beta-7b \
    --rows liger,liger-autograd-head,liger-chunk64m,liger-flce --no-auto-row --warmup 2 --timed 3 --out "$out/train-head-memory.json"
fi
if [[ ,$parts, == *,gemv,* ]]; then
  run gemv 240 python3 bench/gpu/gemv_shapes.py --model line-3.6b \
    --kernels bf16,gemlite,gemlite-gemv,gemlite-gemv_splitk,halves-cdt --gemlite-passes h100,max \
    --out "$out/gemv-shapes-passes.json"
fi
