# GPU job: the issue-15 measurements still pending, each under its own time limit so one that
# hangs leaves time for the rest. Session 23 ran, on an H100 (docs/benchmarks.md "Session 23 on
# an H100"): memtrace (stablelm-beta-7b), capture,product (CAPTURE_ROWS with the -lean-ckpt
# rows), capture-trl, and train_speed.py rows liger-autocast-offload / liger-auto directly.
# Still pending, one call each (each under the 600 s a call may run):
#   MEMTRACE_MODELS=gemma-3-270m MEMTRACE_ROWS=liger,liger-autocast,liger-autocast-offload,liger-capture-amp-lean-ckpt memtrace
#            (what holds gemma's captured, checkpointed dialogue step 30 MiB above TRL's)
#   lean     (the microbench at stablelm's widths; lean did not help in the full step)
#   h100     (an H200 capped at 79 GiB; the real H100 already showed 1 layer in 2)
# Session 24 (built without a GPU; int8 and hash then ran on an H100, docs/benchmarks.md
# "Session 24"; an H200 run of int8 is still pending, the target names that card):
#   int8     the uint4 path's tied embedding/head table in int8 (serifu.accel.int8_table):
#            GemLite's 8-bit head against the dequantised table (uint4_check.py), its GEMV by
#            group size against bf16 cuBLAS (gemv_shapes.py), and line-3.6b's whole replies:
#            uint4 + LoRA with the table in int8 / in bf16, uint4 merged, against bf16
#   hash     gemma's captured, checkpointed step with the lean masks from a hash
#            (serifu.accel.mask_hash: nothing kept from forward to backward) against TRL, and
#            in train_capture.py next to the captured step without checkpointing
# Session 25 (ran on an H100, one profiled H200 run; docs/benchmarks.md "Session 25"):
#   levers   the decoder's Triton GEMV and split-key attention (now the default) each off and
#            on, unprofiled, on line-3.6b (the H200 roofline target) and gemma-3-270m; then the
#            uint4 replies against the new bf16 step in the same run (generate_speed.py)
#            (session 26 ran this on an H200 for split-kv-gemv against default, with the norms
#            folded in, and uint4; still pending: the folded GEMV on an H100, all variants)
# Session 26 (built without a GPU; uint4s ran in session 27 for line-3.6b on an H100,
# docs/benchmarks.md "Session 27"; since session 28 it runs the rewritten kernel, which
# uint4v3 below measures with the per-layer rows first):
#   uint4s   Serifu's own uint4 GEMV (serifu.accel.uint4_gemv, SERIFU_UINT4_KERNEL=serifu)
#            against GemLite's layers and bf16, same run: line-3.6b and stablelm-beta-7b
#            replies, uint4 + LoRA unmerged (generate_speed.py kinds uint4-lora, uint4s-lora)
# Session 27 (ran on an H100 / H200 for line-3.6b: docs/benchmarks.md "Session 27"):
#   uint4v2  why the uint4 GEMV v2 lost (bench/gpu/uint4_v2.py, bench-only): the kernel alone
#            (x already float32 / read in bf16 by the kernel, no split-K; and each tile's loads
#            issued a tile ahead) against v2 as the op ran it (a cast and a sum kernel around
#            it), v1 and GemLite, line-3.6b's shapes
# Session 28 (built without a GPU; ran in session 29 on an H100, docs/benchmarks.md "Session 29"):
#   uint4v3  Serifu's uint4 GEMV rewritten (eight rows to a word, one LOP3 and one FFMA a code,
#            serifu.accel.uint4_gemv_kernels): per layer against GemLite and the bf16 GEMV
#            (line-3.6b and stablelm-beta-7b shapes), then line-3.6b's replies, uint4 + LoRA
#            on it (uint4s-lora) and on GemLite (uint4-lora) against bf16, same run; the
#            decoder folds line-3.6b's MLP norm and GELU into the uint4 layers (SERIFU_GEMV_FOLD)
#   uint4fold the same replies with SERIFU_GEMV_FOLD=0 (bf16 and uint4 both unfolded): what
#            folding into the uint4 layers is worth, against uint4v3's run on the same machine
#   hfbatch  line-3.6b's replies at batch 8 and 32 against HF's static cache + compile (the
#            issue names batch 1 / 8 / 32; the peer was skipped there for time in 2026-12-03)
# Session 29 (built after its device time ran out):
#   fuse     (session 30: with glu and pdl variants, FUSE_VARIANTS / FUSE_MODELS / FUSE_PEER / FUSE_LIMIT)
#            sibling GEMVs on one input (q/k/v, gate/up) as one launch (serifu.accel.gemv_fuse,
#            SERIFU_GEMV_FUSE=1 then; the default since session 31): decode_levers.py default against
#            gemv-fuse on stablelm-beta-7b and novel-gptj-6b (the two models under 1.5x HF's
#            peer at batch 1). Session 29's other fix (the folded norms' sums no longer hold
#            a float32 copy of each weight) shows in generate_speed.py's peak GiB, e.g. in
#            uint4v3: line-3.6b's folded bf16 decoder 14.5 GiB there, ~7.1 expected
# Session 30 (one H100 run of fuse, docs/benchmarks.md "Session 30"; its GLU rows and GPT-J's ran
# uncompiled, a fake-kernel bug since fixed). Session 31 ran them (H200, "Session 31"): fusion is
# now the decoder's default (no-fuse: the decoder before), and the HF peer runs before the
# variants (FUSE_PEER=1; FUSE_PEER=last: after them, as before session 31). Still pending (~5 min):
#   FUSE_PEER=1 FUSE_MODELS=stablelm-beta-7b FUSE_VARIANTS=default,no-fuse,default,gemv-residual,default fuse
#   FUSE_PEER=1 FUSE_MODELS=novel-gptj-6b FUSE_VARIANTS=no-fuse,default,no-fuse fuse
#   (on an H200: the HF peer first, the target card's ratio for the two Llama/GPT-J models; the
#   first variant is a throwaway, a process's first decoder runs ~6 % faster; gemv-residual is
#   session 31's residual adds inside o_proj's and down_proj's GEMVs, built without a GPU run)
# Session 32 (ran those two on an H200; in-process order still moved the ratio, so the three
# parts below, which ran on an H100: docs/benchmarks.md "Session 32"):
#   fresh    every contender alone in its own process, round-robin (bench/gpu/fresh_processes.py):
#            HF's peer and FRESH_VARIANTS (default,gemv-residual) on FRESH_MODELS
#            (stablelm-beta-7b), FRESH_ROUNDS (3) rounds; medians over processes and x HF
#   shared   train.shared_prefix: a step's common prompt prefix (the template and her card, ~90 % of
#            a dialogue example) run once per packed row (serifu.training.shared_prefix), on the
#            heroine-shaped dialogue workload and the old all-random one (dialogue-unshared), next
#            to TRL (train_speed.py rows SHARED_ROWS: liger,liger-auto; ckpt,auto for line-3.6b and
#            novel-gptj-6b, which have no Liger kernels; SHARED_MODELS, SHARED_WORKLOADS)
#   order    why later decoders in one process run slower (bench/gpu/decoder_order.py): A, B
#            built after it, A again, A after B is deleted, C; each with the device's idle gaps
# Session 33 (ran the two session-32 parts above: fresh on an H200, shared on an H100 with
# SHARED_WORKLOADS=dialogue, plus train_speed.py rows ckpt,auto for line-3.6b / novel-gptj-6b and
# liger-capture-amp-lean-ckpt for gemma-3-270m; docs/benchmarks.md "Session 33"):
#   gaps     graphs of plain kernels (no model) replayed with a host wait each, back to back, and
#            two copies in turn: the device's idle time between graphs (bench/gpu/graph_gaps.py)
#   (not a part) bench/gpu/split_kv_sweep.py --heads H --kv-heads K --dim D: the split-key
#            kernels' keys / programs / warps at one model's head shape, 32 layers in one graph
# Session 34 (four H100s, docs/benchmarks.md "Session 34"): fresh with FRESH_VARIANTS
#   default,s32-default / default,s33-default / default (s33-default: the split-key combine as
#   its own kernel again), fuse on gemma-3-270m with s33-default,default, and split_kv_sweep.py
#   --fused 0 1. No H200 came. Still pending, on an H200 (~5 min): session 34's default against HF,
#   FRESH_MODELS=stablelm-beta-7b FRESH_VARIANTS=default,s33-default FRESH_ROUNDS=3 fresh
#   and (any card) the gated product inside the down GEMV, built without a GPU (glu-down,
#   SERIFU_GEMV_GLU=down) and one cache length for every layer (shared-length,
#   SERIFU_DECODE_SHARED_LENGTH=1): FRESH_MODELS=stablelm-beta-7b
#   FRESH_VARIANTS=default,glu-down,shared-length fresh, and FUSE_PEER=0 FUSE_MODELS=gemma-3-270m
#   FUSE_VARIANTS=default,glu-down,shared-length,default,glu-down,shared-length fuse
#   (short of time: FRESH_VARIANTS=default,glu-down-shared-length, both levers at once)
# Session 35 (four H100s, docs/benchmarks.md "Session 35") ran both: glu-down lost (-0.4 % in
#   fresh processes, +43 us of device time a token), shared-length lost (-2 to -3 % on gemma);
#   and the prompt pass compiled with the step (s34-default: eager prompt) in fuse on
#   stablelm-beta-7b and gemma-3-270m. Still pending (a 7B decoder now takes ~2.5 min to build):
#   FRESH_MODELS=stablelm-beta-7b FRESH_VARIANTS=default FRESH_ROUNDS=2 fresh  (against HF; an
#   H200 if one comes; FRESH_ROUNDS=1 if the two rounds overrun; calls on one warm machine join
#   with python3 bench/gpu/fresh_processes.py --merge A.json B.json --out AB.json), and the compile of the length
#   alone (session 35's runs marked every dimension dynamic): FUSE_PEER=0 FUSE_PROFILE=
#   FUSE_MODELS=gemma-3-270m FUSE_VARIANTS=s34-default,default,s34-default,default fuse
# Session 36 (no machine came; docs/benchmarks.md "Session 36"): the step's key and value written
# by the split-key kernel (serifu.accel.kv_write, opt-in SERIFU_DECODE_KV_WRITE=1), one call:
#   FRESH_LIMIT=380 FRESH_MODELS=stablelm-beta-7b FRESH_VARIANTS=default,kv-write-shared FRESH_ROUNDS=1 fresh
#   (also session 35's pending compiled prompt against HF), then, same call,
#   SERIFU_DECODE_COMPILE_PROMPT=0 FUSE_PEER=0 FUSE_PROFILE= FUSE_LIMIT=110 FUSE_MODELS=gemma-3-270m
#   FUSE_VARIANTS=default,kv-write-shared,default,kv-write-shared fuse
# Session 37 (ran both on an H100: stablelm-beta-7b +0.7 %, gemma-3-270m -3.5 %, where inductor
# had already fused the write into the rotary kernel and the writing kernel ran 1.9 us a layer
# slower; docs/benchmarks.md "Session 37"). The kernel's store moved after its loop, then:
#   kvw      the kernel alone, write off/on (split_kv_sweep.py --write), and gemma's replies
# (ran on a second H100: stablelm-beta-7b +1.8 %, gemma -0.2 / -1.1 %). Still pending, on an
# H200, one call each (fresh_processes.py now compares the replies' digests across processes):
#   FRESH_MODELS=stablelm-beta-7b FRESH_VARIANTS=default,kv-write-shared FRESH_ROUNDS=2 fresh
#   FRESH_MODELS=novel-gptj-6b FRESH_VARIANTS=default,kv-write-shared FRESH_ROUNDS=2 fresh
#   kvw
#   and, with time left: FRESH_VARIANTS=kv-write-shared,kv-write-shared-pdl (the GEMVs' PDL on
#   top of the writing kernel; fresh_processes.py's first variant is the one compared)
# Session 38: a Llama attention's rotary embedding of the step's query and key inside the
# writing kernel (serifu.accel.rope_fold, opt-in SERIFU_DECODE_KV_ROPE=1; the variant
# kv-write-shared-rope). Ran on two H100s (docs/benchmarks.md "Session 38"): three variants
# and the peer over two rounds do not fit one call (~65 s a process); the first build left
# q/k/v unfused (-2.7 to -4.6 %), the mended one is neutral (-0.46 % device time):
#   FRESH_MODELS=stablelm-beta-7b FRESH_VARIANTS=default,kv-write-shared,kv-write-shared-rope FRESH_ROUNDS=2 fresh
#   rope     the kernel alone at stablelm-beta-7b's shapes, writing without and with the rotation
# Still pending, on an H200: FRESH_MODELS=stablelm-beta-7b FRESH_VARIANTS=default,kv-write-shared
# FRESH_ROUNDS=2 fresh (the issue's card; last run there in session 33), then novel-gptj-6b.
# Session 39: each GEMV shape's one configuration (serifu.accel.gemv_tiles, the same sums in every
# process; SERIFU_GEMV_TUNE=1 autotunes as before). Ran on H100s (docs/benchmarks.md "Session
# 39"): gemv_configs.py and same_reply.py for stablelm-beta-7b under earlier rules, configs for
# the other three; fresh stablelm-beta-7b against HF. Still pending (the fitted rule, ~5 min):
#   same     fresh processes, one configuration per shape against autotuned (SAME_MODELS, space-
#            separated: line-3.6b gemma-3-270m novel-gptj-6b; and line-3.6b's uint4 weights):
#            the same reply, and its cost
#   configs  every configuration at the shapes, bf16 (CONFIG_MODELS) and uint4 (stablelm-beta-7b)
#   FRESH_MODELS=stablelm-beta-7b FRESH_VARIANTS=default,inductor-deterministic FRESH_ROUNDS=2 fresh
#            (the compiled step's own reductions chosen without timing: its cost, and whether
#            two machines then give the same tokens)
# Session 40 ran all three on an H200 (docs/benchmarks.md "Session 40"): stablelm-beta-7b 1.592x
# HF in fresh processes, inductor-deterministic +0.1 %; same on line/gemma/gptj (the rule costs
# gptj 2.8 % there), configs for gptj and stablelm (CONFIG_MODELS=novel-gptj-6b,stablelm-beta-7b).
# Still pending (one call, ~6 min): the uncompiled reply of stablelm-beta-7b on an H200 (does
# session 39's H100 digest a2839fc0... hold on the other card?), then gptj against HF:
#   python3 bench/gpu/same_reply.py --model stablelm-beta-7b --processes 2 --settings pinned
#   FRESH_MODELS=novel-gptj-6b FRESH_VARIANTS=default FRESH_ROUNDS=2 FRESH_LIMIT=240 fresh
# and line-3.6b's uint4 reply in four processes: SAME_MODELS= same (SAME_UINT4=0 skips it).
# Usage (device tool):
#   a. bash bench/gpu/pack-wheels && bash bench/gpu/pack-peers   (here, once); for `product`:
#      serifu data build --character akane --format dialogue|lines --out .gpu-prod/akane-…
#      (.gpu-data/akane is the dialogue one; .gpu-prod is git-ignored and carried)
#   b. mkdir -p /tmp/w3 && cp .whl3t/*.whl /tmp/w3/ && bash bench/gpu/job-pending.sh [parts]
#      (one device call, carry [".whl2", ".whl3t", ".gpu-prod"]: ~63 MiB of the 64 allowed;
#      the device tool brings back few files: each call leaves two to four in $OUT)
# Results land in $OUT/*.json and $OUT/*.log; docs/benchmarks.md names the sections they settle:
#   capture  whole-step CUDA-graph capture of gemma-3-270m's step (bench/gpu/train_capture.py):
#            the static step eager/captured, the loss's softmax compiled (fused), the next batch
#            built ahead, the forward under bf16 autocast (-amp), the lean LoRA function (-lean),
#            every layer checkpointed without RNG replay (-ckpt: the captured step at TRL's memory?)
#   product  the product's own `serifu train`, train.capture off and auto (eval on), on
#            gemma-3-270m's architecture with random weights (bench/gpu/random_folder.py) and
#            akane's data: the cast recipe (batch 8) and 16k-token lines steps; and 16k-token
#            lines captured with checkpointing (train.lora_backward = "lean")
#   memtrace what is alive at the peak, Serifu's step (float32 LoRA, and under bf16 autocast:
#            rows liger-autocast, liger-lean, liger-lean-autocast; the checkpointed layers'
#            inputs on the host: liger-offload, liger-lean-autocast-offload, and torch's
#            save_on_cpu liger-offload-torch) against TRL's (BENCH_MEMTRACE=1,
#            bench/gpu/memory_trace.py)
#   offload  stablelm-beta-7b's step with the checkpointed inputs on the host: Serifu's side
#            stream against torch's save_on_cpu on the compute stream (train_speed.py rows
#            liger-offload, liger-offload-torch next to liger and TRL; no allocator recording)
#   lean     one step of a 4-layer model of stablelm's widths (16k tokens): PEFT's LoRA layers
#            against train.lora_backward = "lean", with and without autocast, and with
#            train.checkpoint_offload (bench/lora_backward.py)
#   capture-trl  gemma-3-270m's captured step (train.capture = "on", with and without
#            autocast) against TRL's best settings in the same run (train_speed.py rows
#            liger-capture, liger-capture-amp)
#   h100     auto checkpointing on an 80 GiB card (this one capped at 79 GiB): stablelm-beta-7b's
#            16k-token step checkpoints every 2nd layer instead of all (train_speed.py
#            --memory-gib 79, rows liger and liger-auto, next to TRL under the same cap)
#   memory   the loss's peak memory (closed form, autograd, a 64 MiB chunk, Liger FLCE) against
#            TRL (train_speed.py; ran in session 20)
#   gemv     GemLite's H100 config and widest autotune on line-3.6b's shapes (gemv_shapes.py;
#            ran in session 20)
set -uo pipefail
source bench/gpu/device-env.sh
parts=${1:-capture,product,memtrace}
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
    --rows "${CAPTURE_ROWS:-eager,static,captured,fused,captured-fused,captured-fused-ahead,eager-amp,captured-fused-ahead-amp}" \
    --out "$out/train-capture-gemma.json"
fi
if [[ ,$parts, == *,h100,* ]]; then
  run h100 240 python3 bench/gpu/train_speed.py --peers trl --models stablelm-beta-7b --memory-gib 79 \
    --workloads dialogue,lines --rows liger,liger-auto --warmup 2 --timed 3 --out "$out/train-auto-79gib.json"
  grep " vs TRL\|checkpointing" "$out/h100.log" | cut -c1-300 | head -8
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
if [[ ,$parts, == *,product,* ]]; then
  python3 bench/gpu/random_folder.py "${PROD_MODEL:-gemma-3-270m}" /tmp/gemma-random >/tmp/random-folder.log 2>&1
  prod() {  # prod NAME DATA SETTINGS...: one `serifu train` run, its serifu.json kept
    local name=$1 data=$2; shift 2  # (its log stays on the machine: the device tool
    # brings back few files; serifu.json holds the numbers, the tail is printed)
    out=/tmp/prodlogs run "product-$name" 200 python3 -m serifu train --model /tmp/gemma-random \
      --data "$data" --out "/tmp/prod/$name" --force --max-steps "${PROD_STEPS:-40}" --json "$@"
    cp "/tmp/prod/$name/serifu.json" "/tmp/prodlogs/product-$name.json" 2>/dev/null
  }
  mkdir -p /tmp/prodlogs
  for cap in off auto; do  # auto: the default  # the shipped adapters' recipe (batch 8), then 16k-token lines steps
    prod "dialogue-$cap" .gpu-prod/akane-dialogue --config configs/cast-adapter.toml --set train.capture=$cap
    prod "lines-$cap" .gpu-prod/akane-lines --epochs 400 --set train.max_tokens=16384 \
      --set train.packing=true --set train.capture=$cap
  done
  prod "lines-on-ckpt" .gpu-prod/akane-lines --epochs 400 --set train.max_tokens=16384 \
    --set train.packing=true --set train.capture=on --set train.gradient_checkpointing=true \
    --set train.lora_backward=lean
  python3 - "$out/train-product.json" /tmp/prodlogs/product-*.json <<'PY'  # one file back
import json, pathlib, sys
runs = {pathlib.Path(p).stem: json.loads(pathlib.Path(p).read_text()) for p in sys.argv[2:]}
pathlib.Path(sys.argv[1]).write_text(json.dumps(runs, indent=1) + "\n")
PY
fi
if [[ ,$parts, == *,int8,* ]]; then  # the uint4 path's tied table in int8 (session 24)
  run int8-check 150 python3 bench/gpu/uint4_check.py --out "$out/uint4-check-int8.json"
  run int8-gemv 100 python3 bench/gpu/gemv_shapes.py --shapes 51200x3072,262144x640 \
    --kernels bf16,int8,int8-g64,int8-g128,int8-g3072 --out "$out/gemv-int8.json"
  run int8-replies 360 python3 bench/gpu/generate_speed.py --models line-3.6b --batches 1 --peers '' \
    --no-ablation --no-vocab --quant uint4-lora,uint4-lora-bf16table,uint4 --budget-s 330 \
    --out "$out/generate-int8-table.json"
fi
if [[ ,$parts, == *,levers,* ]]; then  # Serifu's Triton GEMV and split-key attention (session 25)
  for m in line-3.6b gemma-3-270m; do
    run "levers-$m" 200 python3 bench/gpu/decode_levers.py --model "$m" \
      --variants plain,split-kv-gemv,default,gemv-fold --budget-s 180 --out "$out/decode-levers-$m.json"
  done
  run levers-uint4 200 python3 bench/gpu/generate_speed.py --models line-3.6b --batches 1 --peers '' \
    --no-ablation --no-vocab --quant uint4-lora --budget-s 180 --out "$out/generate-uint4-vs-gemv.json"
fi
if [[ ,$parts, == *,uint4s,* ]]; then  # Serifu's uint4 GEMV against GemLite's (session 26)
  for m in line-3.6b stablelm-beta-7b; do
    run "uint4s-$m" 280 python3 bench/gpu/generate_speed.py --models "$m" --batches 1 --peers '' \
      --no-ablation --no-vocab --quant uint4s-lora,uint4-lora --budget-s 260 --out "$out/generate-uint4s-$m.json"
  done
fi
if [[ ,$parts, == *,uint4v2,* ]]; then  # the uint4 GEMV v2 alone against the op around it (session 27)
  run uint4v2 200 python3 bench/gpu/gemv_shapes.py --model line-3.6b \
    --kernels uint4s,uint4s-v2,uint4s-v2-raw,uint4s-v2-bf16x,uint4s-v2-bf16x-split,uint4s-v2-bf16x-prefetch,uint4s-v2-bf16x-split-prefetch,gemlite \
    --out "$out/gemv-uint4v2-line36b.json"
fi
if [[ ,$parts, == *,uint4v3,* ]]; then  # the rewritten uint4 GEMV (session 28)
  for m in line-3.6b stablelm-beta-7b; do  # rows land shape by shape: a cut run keeps its rows
    limit=120 && [ "$m" = stablelm-beta-7b ] && limit=90
    run "uint4v3-shapes-$m" "$limit" python3 bench/gpu/gemv_shapes.py --model "$m" \
      --kernels serifu,uint4s,gemlite --out "$out/gemv-uint4v3-$m.json"
  done
  run uint4v3-replies "${REPLY_LIMIT:-300}" python3 bench/gpu/generate_speed.py --models "${REPLY_MODEL:-line-3.6b}" \
    --batches 1 --peers '' --no-ablation --no-vocab --quant uint4s-lora,uint4-lora \
    --budget-s "$(( ${REPLY_LIMIT:-300} - 20 ))" --out "$out/generate-uint4v3.json"
fi
if [[ ,$parts, == *,uint4fold,* ]]; then  # the same replies, nothing folded (session 28)
  SERIFU_GEMV_FOLD=0 run uint4fold-replies 300 python3 bench/gpu/generate_speed.py --models line-3.6b \
    --batches 1 --peers '' --no-ablation --no-vocab --quant uint4s-lora --budget-s 280 \
    --out "$out/generate-uint4v3-nofold.json"
fi
if [[ ,$parts, == *,hfbatch,* ]]; then  # Serifu against HF static + compile at batch 8 / 32
  run hfbatch 560 python3 bench/gpu/generate_speed.py --models line-3.6b --batches 8,32 \
    --peers hf-static --no-ablation --no-4bit --no-vocab --budget-s 540 --out "$out/generate-hf-batch8-32.json"
fi
if [[ ,$parts, == *,fuse,* ]]; then  # sibling GEMVs fused (session 29)
  # session 30: + a gated MLP's product in its gate/up GEMV (glu) and the GEMVs launched as
  # programmatic dependents (pdl); FUSE_PEER=1: HF's peer in the same run, before the variants
  # (session 31); FUSE_PROFILE= (empty): no kernel profile
  for m in ${FUSE_MODELS:-stablelm-beta-7b novel-gptj-6b}; do
    peer=() && limit=${FUSE_LIMIT:-240} && [ "${FUSE_PEER:-0}" = 1 ] && peer=(--peer)
    [ "${FUSE_PEER:-0}" = last ] && peer=(--peer --peer-last)  # before session 31 (~6 % against HF)
    variants=${FUSE_VARIANTS:-default,gemv-fuse,gemv-fuse-glu,gemv-fuse-glu-pdl}
    run "fuse-$m" "$limit" python3 bench/gpu/decode_levers.py --model "$m" --variants "$variants" \
      "${peer[@]}" ${FUSE_PROFILE---profile} --budget-s "$((limit - 40))" --out "$out/decode-levers-fuse-$m.json"
  done
fi
if [[ ,$parts, == *,fresh,* ]]; then  # every contender alone in a fresh process (session 32)
  for m in ${FRESH_MODELS:-stablelm-beta-7b}; do
    run "fresh-$m" "${FRESH_LIMIT:-560}" python3 bench/gpu/fresh_processes.py --model "$m" \
      --variants "${FRESH_VARIANTS:-default,gemv-residual}" --rounds "${FRESH_ROUNDS:-3}" \
      --budget-s "$((${FRESH_LIMIT:-560} - 30))" --out "$out/fresh-processes-$m.json"
  done
fi
if [[ ,$parts, == *,kvw,* ]]; then  # the split-key kernel writing the step's key/value (session 37)
  # the kernel alone at the product's setting, write off / on: stablelm-beta-7b's and
  # gemma-3-270m's attention shapes; then gemma's replies, each variant twice in one process
  run kvw-sweep-stablelm 90 python3 bench/gpu/split_kv_sweep.py --block-n 64 --programs 264 \
    --warps 2 --fused 1 --write 0 1 0 1 --out "$out/split-kv-sweep-write-stablelm7b.json"
  run kvw-sweep-gemma 90 python3 bench/gpu/split_kv_sweep.py --layers 18 --heads 4 --kv-heads 1 \
    --dim 256 --block-n 32 --programs 264 --warps 2 --fused 1 --write 0 1 0 1 \
    --out "$out/split-kv-sweep-write-gemma.json"
  SERIFU_DECODE_COMPILE_PROMPT=0 run kvw-gemma 150 python3 bench/gpu/decode_levers.py \
    --model gemma-3-270m --variants default,kv-write-shared,default,kv-write-shared \
    --budget-s 110 --out "$out/decode-levers-kv-write-gemma.json"
fi
if [[ ,$parts, == *,same,* ]]; then  # one GEMV configuration per shape (session 39)
  for m in ${SAME_MODELS-line-3.6b gemma-3-270m novel-gptj-6b}; do  # SAME_MODELS= : none
    run "same-$m" 200 python3 bench/gpu/same_reply.py --model "$m" --processes 2 \
      --out "$out/same-reply-$m.json"
  done
  if [[ ${SAME_UINT4:-1} == 1 ]]; then  # ~75 s a process (H200, session 40): four need ~320 s
    run same-uint4 330 python3 bench/gpu/same_reply.py --model line-3.6b --weights uint4 \
      --processes 2 --out "$out/same-reply-uint4-line36b.json"
  fi
fi
if [[ ,$parts, == *,configs,* ]]; then
  run configs 300 python3 bench/gpu/gemv_configs.py --models "${CONFIG_MODELS:-line-3.6b,gemma-3-270m}" \
    --retunes 3 --out "$out/gemv-configs.json"
  run configs-uint4 200 python3 bench/gpu/gemv_configs.py --models stablelm-beta-7b --weights uint4 \
    --retunes 2 --out "$out/gemv-configs-uint4.json"
fi
if [[ ,$parts, == *,rope,* ]]; then  # the rotary embedding inside the writing kernel (session 38)
  run rope-sweep-stablelm 90 python3 bench/gpu/split_kv_sweep.py --block-n 64 --programs 264 \
    --warps 2 --fused 1 --write 1 2 1 2 --out "$out/split-kv-sweep-rope-stablelm7b.json"
fi
if [[ ,$parts, == *,shared,* ]]; then  # dialogue's shared prompt prefix run once (session 32)
  run shared "${SHARED_LIMIT:-300}" python3 bench/gpu/train_speed.py --peers trl \
    --models "${SHARED_MODELS:-stablelm-beta-7b}" --workloads "${SHARED_WORKLOADS:-dialogue,dialogue-unshared}" \
    --rows "${SHARED_ROWS:-liger,liger-auto}" --warmup 2 --timed 3 --out "$out/train-shared-prefix.json"
  grep " vs TRL" "$out/shared.log" | cut -c1-330
fi
if [[ ,$parts, == *,gaps,* ]]; then  # the device's idle time between graphs (session 33)
  run gaps 120 python3 bench/gpu/graph_gaps.py --out "$out/graph-gaps.json"
fi
if [[ ,$parts, == *,order,* ]]; then  # later decoders in one process (session 32)
  run "order-${ORDER_MODEL:-line-3.6b}" 240 python3 bench/gpu/decoder_order.py \
    --model "${ORDER_MODEL:-line-3.6b}" --out "$out/decoder-order-${ORDER_MODEL:-line-3.6b}.json"
fi
if [[ ,$parts, == *,hash,* ]]; then  # gemma's captured, checkpointed step with hashed lean masks
  run hash-trl 300 python3 bench/gpu/train_speed.py --peers trl --models gemma-3-270m \
    --rows liger-capture-amp-lean-ckpt --no-auto-row --warmup 2 --timed 3 --out "$out/train-gemma-hash-trl.json"
  grep " vs TRL" "$out/hash-trl.log" | cut -c1-300
  run hash-capture 200 python3 bench/gpu/train_capture.py --model gemma-3-270m --steps 12 --warmup 3 \
    --rows eager-amp,captured-fused-ahead-amp,captured-fused-ahead-amp-lean-ckpt \
    --out "$out/train-capture-gemma-hash.json"
fi
if [[ ,$parts, == *,memtrace,* ]]; then
  models=${MEMTRACE_MODELS:-stablelm-beta-7b}; tag=${models//,/-}
  BENCH_MEMTRACE=1 run "memtrace-$tag" "${MEMTRACE_LIMIT:-520}" python3 bench/gpu/train_speed.py --peers trl \
    --models "$models" --no-auto-row --warmup 2 --timed 3 --out "$out/train-memtrace-$tag.json" \
    --rows "${MEMTRACE_ROWS:-liger,liger-autocast,liger-lean-autocast,liger-offload,liger-lean-autocast-offload}"
  # Serifu's rows minus TRL by package and frame; the traces as a results file (its log,
  # whose memtrace lines it holds, stays on the machine: the device tool brings back few files)
  mv "$out/memtrace-$tag.log" "/tmp/memtrace-$tag.log"
  python3 bench/gpu/memory_trace.py "/tmp/memtrace-$tag.log" --out "$out/train-memtrace-traces-$tag.json"
fi
if [[ ,$parts, == *,offload,* ]]; then  # the side stream against the compute stream
  run offload 300 python3 bench/gpu/train_speed.py --peers trl --models stablelm-beta-7b \
    --rows liger,liger-offload,liger-offload-torch --no-auto-row --warmup 2 --timed 3 \
    --out "$out/train-offload.json"
  grep " vs TRL" "$out/offload.log" | cut -c1-300
fi
if [[ ,$parts, == *,lean,* ]]; then  # PEFT's LoRA layers vs the lean function, stablelm's widths
  run lean 300 python3 bench/lora_backward.py --device cuda --hidden 4096 --intermediate 11008 \
    --layers 4 --vocab 32000 --tokens 16384 --repeats 4 --threads 8 --out "$out/lora-backward-cuda.json" \
    --rows peft,peft-autocast,lean,lean-autocast,peft-offload,lean-autocast-offload
fi
if [[ ,$parts, == *,capture-trl,* ]]; then
  run capture-trl 240 python3 bench/gpu/train_speed.py --peers trl --models gemma-3-270m \
    --rows liger,liger-capture,liger-capture-amp --no-auto-row --warmup 3 --timed 5 \
    --out "$out/train-capture-trl.json"
  grep " vs TRL" "$out/capture-trl.log" | cut -c1-400
fi
