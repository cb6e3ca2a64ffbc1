# GPU job: the sample cast's adapters with the issue-12 recipe (augmented dialogue data), their
# 111-query evaluations base vs tuned, and decoding ablations. Usage (device tool, back to back):
#   staging: bench/gpu/stage-gemma, then one call per .gstage/cNN.d chunk (see that script)
#   bash bench/gpu/job-cast.sh train akane,himari,hina,kaede    # carry [".whl2", ".gpu-data"]
#   bash bench/gpu/job-cast.sh train himari,...                 # the rest
#   bash bench/gpu/job-cast.sh ablate akane,yuzuha
#   bash bench/gpu/job-cast.sh variant NAME "epochs = 5;real_only_epochs = 2" akane,hina  # recipe variants
#   bash bench/gpu/job-cast.sh scores akane,hina [/tmp/var/NAME]  # perplexity + coherence only
#   bash bench/gpu/job-cast.sh ptrain NAME "KEY = VALUE;..." IDS [DATA]  # one process per heroine at
#     once (launch-bound steps overlap on one GPU): train, 111-query eval, scores, paraphrased
#     profile questions (sets A,B,C), then one results archive per two heroines ("" = the recipe as is);
#     env: BUDGET (s before stopping what still runs, 480), LIMIT (queries per eval), SETS
#   bash bench/gpu/job-cast.sh uint4 IDS   # adapters trained on the uint4 grid vs the shipped, on uint4
#   bash bench/gpu/job-cast.sh soup IDS SEEDS   # per heroine: the shipped recipe with other training
#     seeds (e.g. 1,2), then the soup of the shipped adapter and those (serifu.training.soup), each
#     scored (perplexity + coherence, prompt on and off) and the soup and seeds evaluated (111
#     queries, prompt on); one archive per heroine in $OUT; env: BUDGET (s, 480), SOUP_RANK (cut the
#     soup back to that rank, as shipped: 8; unset = the exact rank k·r soup, not brought back),
#     EVAL_DIR + EVAL_IDS (the adapters mode on EVAL_DIR/<id>/adapter at the same time)
#   bash bench/gpu/job-cast.sh adapters IDS DIR  # DIR/<id>/adapter (staged in /tmp): scores, then the
#     111-query evaluation (prompt on), each report copied to $OUT/ad/ as soon as it exists
#   bash bench/gpu/job-cast.sh sweep IDS NAME "RECIPE" DATA [NAME "RECIPE" DATA ...]  # several
#     variants at once, each as ptrain (DATA: a folder of datasets, e.g. one built with another
#     --augment); results in $OUT/NAME/
#   bash bench/gpu/job-cast.sh cv IDS K   # k-fold cross-validated coherence of her recipe (seed 0,
#     her [ID.train] overrides, no soup): .gpu-folds/f<i>/<id> (python bench/coherence_folds.py build),
#     every fold of every heroine trained at once, each adapter scored (coherence, prompt on, base on
#     the same lines); reports in $OUT/cv.tgz (carry [".whl2", ".gpu-folds"]); env: BUDGET (s, 480)
# .gpu-data/<id> are the datasets built here with `serifu data build --character ID
# --config configs/cast-adapter.toml` (the GPU image lacks the Japanese analyser that
# learns her sentence endings for augmentation).
set -uo pipefail
source bench/gpu/device-env.sh
if [ ! -d /tmp/gemma/p4 ]; then
  mkdir -p /tmp/gemma && cat /tmp/gs/c* | tar x -C /tmp/gemma
fi
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/gemma/p*/*.whl 2>&1 | grep -v -i warn
export SERIFU_CACHE=/tmp/serifu-cache
mode=$1; ids=$2; EVAL_IDS=${EVAL_IDS:-}
scores() {  # scores ADAPTER ID OUT [DATA]: exact perplexity + coherence, prompt on and off, base
  # scored on the same lines (no replies generated); DATA: the datasets' folder (.gpu-data)
  python3 -m serifu eval --model gemma-3-270m --adapter "$1" --character "$2" --data "${4:-.gpu-data}/$2" \
    -e perplexity -e coherence --system-prompt both --out "$3"
}
adone() {  # adone DIR ID: DIR/ID/adapter scored, then its 111-query evaluation (prompt on), each
  # report copied to $OUT/ad/ as soon as it exists
  local dir=$1 c=$2
  mkdir -p "$OUT/ad"
  scores "$dir/$c/adapter" $c "/tmp/ad/scores-$c" && cp "/tmp/ad/scores-$c/report.json" "$OUT/ad/$c-scores.json"
  python3 scripts/train_cast_adapters.py --characters $c --out /tmp/ad/eval --data-dir .gpu-data \
    --eval-only "$dir" --no-ship --system-prompt on || return
  ( cd /tmp/ad/eval/$c/eval-tuned && tar czf "$OUT/ad/$c-eval.tgz" report.json generations.jsonl )
}
recipe() {  # recipe NAME "KEY = VALUE;...": configs/cast-adapter.toml with those [train] keys
  # replaced (or added under [train]), as /tmp/cfg-NAME.toml; variants train every heroine with
  # exactly that (configs/cast-adapter-overrides.toml is not applied)
  local cfg=/tmp/cfg-$1.toml line key kv
  cp configs/cast-adapter.toml $cfg
  [ -n "$2" ] || return 0
  IFS=';' read -ra kv <<< "$2"
  for line in "${kv[@]}"; do
    key=${line%% =*}
    if grep -q "^$key = " $cfg; then sed -i "s|^$key = .*|$line|" $cfg
    else sed -i "s|^\[train\]$|[train]\n$line|" $cfg; fi
  done
}
if [ "$mode" = train ]; then
  python3 scripts/train_cast_adapters.py --characters "$ids" --out /tmp/cast --data-dir .gpu-data --skip-base \
    2>&1 | grep -v -i "warn\|Loading\|it/s\|func(" | tail -12
  cp /tmp/cast/summary.json "$OUT/summary-${ids%%,*}.json"
elif [ "$mode" = ptrain ] || [ "$mode" = sweep ]; then
  # ptrain NAME "RECIPE" IDS [DATA] is sweep IDS NAME "RECIPE" DATA: one variant
  if [ "$mode" = ptrain ]; then set -- sweep "$4" "$2" "$3" "${5:-.gpu-data}"; fi
  ids=$2; shift 2
  python3 -c "from serifu_models.gemma import prepare_gemma; prepare_gemma()" 2>&1 | tail -1
  one() {  # one VARIANT_ROOT CFG DATA ID: every step of one heroine, logged to ROOT/ID.log
    local root=$1 cfg=$2 data=$3 c=$4 run=$1/$4
    python3 scripts/train_cast_adapters.py --characters "$c" --out "$run" --data-dir "$data" \
      --skip-base --no-ship --config $cfg --overrides '' ${LIMIT:+--limit $LIMIT} || return
    [ -e /tmp/p/.stop ] && return
    scores "$run/$c/adapter" "$c" "$run/scores" "$data"
    [ -e /tmp/p/.stop ] && return
    python3 bench/profile_paraphrase.py --characters "$c" --set "${SETS:-A,B,C}" --profile-best-of 3 \
      --device cuda --adapters "$run" --out "$run/paraphrase.json"
  }
  rm -f /tmp/p/.stop
  pids=(); names=()
  while [ $# -ge 3 ]; do  # NAME "RECIPE" DATA, repeated: every heroine of every variant at once
    name=$1; root=/tmp/p/$1; names+=("$1")
    rm -rf $root; mkdir -p $root "$OUT/$name"
    recipe "$name" "$2"; cp /tmp/cfg-$name.toml $root/recipe.toml; echo "# datasets: $3" >> $root/recipe.toml
    for c in ${ids//,/ }; do one $root /tmp/cfg-$name.toml "$3" "$c" > "$root/$c.log" 2>&1 & pids+=($!); done
    shift 3
  done
  # past BUDGET seconds (default 480) stop what still runs, so the archives below still come back
  ( sleep "${BUDGET:-480}"; touch /tmp/p/.stop; pkill -f "train_cast_adapters|serifu eval|profile_paraphrase" ) & watch=$!
  wait "${pids[@]}"; kill $watch 2>/dev/null
  for name in "${names[@]}"; do
    root=/tmp/p/$name
    set -- ${ids//,/ }
    while [ $# -gt 0 ]; do  # two heroines per archive: a call brings back at most 8 files
      for c in $1 ${2:-}; do echo "[$name $c]"; grep -v -i "warn\|Loading\|it/s\|func(" "$root/$c.log" | tail -3; done
      tar czf "$OUT/$name/$1.tgz" -C $root --exclude='*/data' --exclude='*/checkpoint*' --exclude='*/logs' \
        recipe.toml "$1" "$1.log" ${2:+"$2" "$2.log"}
      shift; if [ $# -gt 0 ]; then shift; fi
    done
  done
elif [ "$mode" = variant ]; then  # variant NAME "KEY = VALUE;KEY = VALUE" IDS: recipe variants, perplexity + profile-QA only
  name=$2; sets=$3; ids=$4
  recipe "$name" "$sets"
  python3 scripts/train_cast_adapters.py --characters "$ids" --out /tmp/var/$name --data-dir .gpu-data --skip-base \
    --config /tmp/cfg-$name.toml --overrides '' --no-ship 2>&1 | grep -v -i "warn\|Loading\|it/s\|func(" | tail -4
  mkdir -p "$OUT/var"
  for c in ${ids//,/ }; do cp /tmp/var/$name/$c/eval-tuned/report.json "$OUT/var/$name-$c.json"; done
  cp /tmp/var/$name/summary.json "$OUT/var/$name-summary.json"
elif [ "$mode" = scores ]; then  # scores IDS [ROOT]: perplexity + coherence (base in the same run) of
  # the shipped adapters, or of ROOT/<id>/adapter; no replies generated
  root=${3:-}
  mkdir -p "$OUT/scores"
  for c in ${ids//,/ }; do
    adapter=${root:+$root/$c/adapter}; adapter=${adapter:-packages/core/src/serifu/cast/$c/adapters/gemma-3-270m}
    tag=$(basename "${root:-shipped}")
    scores "$adapter" "$c" "/tmp/scores/$tag-$c" 2>&1 | grep -v -i "warn\|Loading\|it/s" | tail -2
    cp "/tmp/scores/$tag-$c/report.json" "$OUT/scores/$tag-$c.json"
  done
elif [ "$mode" = uint4 ]; then  # uint4 IDS: adapters trained on the uint4 grid
  # (train.quant_type = "uint4", the recipe otherwise as shipped, per-heroine overrides too),
  # evaluated on GemLite's uint4 base; the shipped NF4-trained adapters on the same uint4 base
  # and in bf16 (111-query protocol, prompt on), all heroines at once; each report is copied
  # to $OUT/u4/ as soon as it is written (a call past its limit still brings them back)
  python3 -c "from serifu_models.gemma import prepare_gemma; prepare_gemma()" 2>&1 | tail -1
  recipe u4 'quant_type = "uint4"'
  mkdir -p /tmp/old "$OUT/u4"
  keep() { [ -f "/tmp/$1/$2/eval-tuned/report.json" ] && cp "/tmp/$1/$2/eval-tuned/report.json" "$OUT/u4/$2-$1.json"; }
  u4one() {
    local c=$1
    mkdir -p /tmp/old/$c; ln -sfn "$PWD/packages/core/src/serifu/cast/$c/adapters/gemma-3-270m" /tmp/old/$c/adapter
    python3 scripts/train_cast_adapters.py --characters $c --out /tmp/u4 --data-dir .gpu-data --skip-base \
      --no-ship --config /tmp/cfg-u4.toml --weights uint4 --system-prompt on || return
    cp /tmp/u4/$c/adapter/serifu.json "$OUT/u4/$c-u4-train.json"; keep u4 $c
    tar czf "$OUT/u4/$c-adapter.tgz" -C /tmp/u4/$c adapter/adapter_model.safetensors adapter/adapter_config.json adapter/serifu.json
    python3 scripts/train_cast_adapters.py --characters $c --out /tmp/old-uint4 --data-dir .gpu-data \
      --eval-only /tmp/old --no-ship --weights uint4; keep old-uint4 $c
    python3 scripts/train_cast_adapters.py --characters $c --out /tmp/old-bf16 --data-dir .gpu-data \
      --eval-only /tmp/old --no-ship; keep old-bf16 $c
  }
  pids=()
  for c in ${ids//,/ }; do u4one $c > /tmp/u4-$c.log 2>&1 & pids+=($!); done
  wait "${pids[@]}"
  for c in ${ids//,/ }; do echo "[$c]"; grep -v -i "warn\|Loading\|it/s\|func(" /tmp/u4-$c.log | tail -4; done
elif [ "$mode" = soup ]; then
  seeds=$3
  python3 -c "from serifu_models.gemma import prepare_gemma; prepare_gemma()" 2>&1 | tail -1
  for s in ${seeds//,/ }; do recipe s$s "seed = $s"; done
  score() { scores "$1" "$2" "/tmp/soup/scores/$3-$2"; }  # score ADAPTER ID TAG
  soupone() {
    local c=$1 s pids=() members
    members="$PWD/packages/core/src/serifu/cast/$c/adapters/gemma-3-270m"
    for s in ${seeds//,/ }; do  # the recipe (with her overrides) and another seed, evaluated prompt on
      python3 scripts/train_cast_adapters.py --characters $c --out /tmp/soup/s$s --data-dir .gpu-data \
        --skip-base --no-ship --config /tmp/cfg-s$s.toml --system-prompt on & pids+=($!)
      members="$members /tmp/soup/s$s/$c/adapter"
    done
    wait "${pids[@]}"
    [ -e /tmp/soup/.stop ] && return
    mkdir -p /tmp/soup/mix/$c
    python3 -c "import sys; from pathlib import Path; from serifu.training.soup import average_adapters; \
average_adapters([Path(p) for p in sys.argv[3:]], Path(sys.argv[1]), rank=int(sys.argv[2]) or None)" \
      /tmp/soup/mix/$c/adapter "${SOUP_RANK:-0}" $members || return
    score /tmp/soup/mix/$c/adapter $c mix
    [ -e /tmp/soup/.stop ] && return
    python3 scripts/train_cast_adapters.py --characters $c --out /tmp/soup/mix-eval --data-dir .gpu-data \
      --eval-only /tmp/soup/mix --no-ship --system-prompt on
    for s in ${seeds//,/ }; do [ -e /tmp/soup/.stop ] || score /tmp/soup/s$s/$c/adapter $c s$s; done
  }
  rm -rf /tmp/soup; mkdir -p /tmp/soup
  pids=()
  for c in ${ids//,/ }; do soupone $c > /tmp/soup/$c.log 2>&1 & pids+=($!); done
  # EVAL_DIR + EVAL_IDS: the adapters mode on those at the same time (soups built elsewhere)
  for c in ${EVAL_IDS//,/ }; do adone "$EVAL_DIR" $c > /tmp/ad-$c.log 2>&1 & pids+=($!); done
  ( sleep "${BUDGET:-480}"; touch /tmp/soup/.stop; pkill -f "train_cast_adapters|serifu eval" ) & watch=$!
  wait "${pids[@]}"; kill $watch 2>/dev/null
  for c in ${EVAL_IDS//,/ }; do echo "[$c]"; grep -v -i "warn\|Loading\|it/s\|func(" /tmp/ad-$c.log | tail -3; done
  for c in ${ids//,/ }; do
    echo "[$c]"; grep -v -i "warn\|Loading\|it/s\|func(" /tmp/soup/$c.log | tail -4
    # the exact soup (rank k·r) stays behind; a cut-back one (SOUP_RANK) is the size of one adapter
    keep=(); [ -n "${SOUP_RANK:-}" ] || keep=(--exclude='mix/*/adapter/adapter_model.safetensors')
    ( cd /tmp/soup && tar czf "$OUT/soup-$c.tgz" --exclude='*/data' --exclude='*/checkpoint*' --exclude='*/logs' \
      "${keep[@]}" $c.log s*/$c mix/$c mix-eval/$c scores/*-$c 2>/dev/null )
  done
elif [ "$mode" = adapters ]; then
  dir=$3
  python3 -c "from serifu_models.gemma import prepare_gemma; prepare_gemma()" 2>&1 | tail -1
  pids=()
  for c in ${ids//,/ }; do adone "$dir" $c > /tmp/ad-$c.log 2>&1 & pids+=($!); done
  wait "${pids[@]}"
  for c in ${ids//,/ }; do echo "[$c]"; grep -v -i "warn\|Loading\|it/s\|func(" /tmp/ad-$c.log | tail -3; done
elif [ "$mode" = cv ]; then
  k=$3
  python3 -c "from serifu_models.gemma import prepare_gemma; prepare_gemma()" 2>&1 | tail -1
  cvone() {  # cvone ID FOLD: her recipe on the fold's data, then its coherence against the base
    local c=$1 i=$2 run=/tmp/cv/f$2/$1 sets
    sets=$(python3 -c "import sys; sys.path.insert(0, 'scripts'); from train_cast_adapters import read_overrides; \
print(' '.join('--set ' + x for x in read_overrides('configs/cast-adapter-overrides.toml').get(sys.argv[1], [])))" $c)
    python3 -m serifu train --model gemma-3-270m --data .gpu-folds/f$i/$c --out $run/adapter \
      --config configs/cast-adapter.toml $sets || return
    [ -e /tmp/cv/.stop ] && return
    python3 -m serifu eval --model gemma-3-270m --adapter $run/adapter --character $c --data .gpu-folds/f$i/$c \
      -e coherence --system-prompt on --out $run/scores && mkdir -p /tmp/cv/reports/$c-f$i \
      && cp $run/scores/report.json /tmp/cv/reports/$c-f$i/
  }
  rm -rf /tmp/cv; mkdir -p /tmp/cv/reports
  pids=()
  for c in ${ids//,/ }; do for ((i = 0; i < k; i++)); do
    cvone $c $i > /tmp/cv/$c-f$i.log 2>&1 & pids+=($!)
  done; done
  ( sleep "${BUDGET:-480}"; touch /tmp/cv/.stop; pkill -f "serifu train|serifu eval" ) & watch=$!
  wait "${pids[@]}"; kill $watch 2>/dev/null
  for log in /tmp/cv/*.log; do echo "[$log]"; grep -v -i "warn\|Loading\|it/s\|func(" $log | tail -2; done
  tar czf "$OUT/cv.tgz" -C /tmp/cv reports $(cd /tmp/cv && ls *.log) $(cd /tmp/cv && ls f*/*/adapter/serifu.json 2>/dev/null)
elif [ "$mode" = pack ]; then  # two heroines per file: results come back in files of <= 16 MiB
  set -- ${ids//,/ }
  while [ $# -gt 0 ]; do
    tar czf "$OUT/run-$1.tgz" -C /tmp/cast --exclude='*/data' --exclude='*/checkpoint*' --exclude='*/logs' "$1" ${2:-}
    shift; if [ $# -gt 0 ]; then shift; fi
  done
else
  mkdir -p /tmp/old
  for c in ${ids//,/ }; do mkdir -p /tmp/old/$c; ln -sfn "$PWD/packages/core/src/serifu/cast/$c/adapters/gemma-3-270m" /tmp/old/$c/adapter; done
  run() {  # name, adapters dir, extra options
    local name=$1 dir=$2; shift 2
    python3 scripts/train_cast_adapters.py --characters "$ids" --out /tmp/abl/$name --data-dir .gpu-data --skip-base \
      --eval-only "$dir" --no-ship "$@" 2>&1 | grep -v -i "warn\|Loading\|it/s\|func(" | tail -3
    for c in ${ids//,/ }; do cp /tmp/abl/$name/$c/eval-tuned/report.json "$OUT/abl/$name-$c.json"; done
  }
  mkdir -p "$OUT/abl"
  run old-raw /tmp/old --vocabulary raw --best-of 1
  run old-mask /tmp/old --vocabulary off --best-of 1
  run new-mask /tmp/cast --vocabulary off --best-of 1
  run new-vocab /tmp/cast --vocabulary on --best-of 1
  run new-vocab-bo4 /tmp/cast --vocabulary on --best-of 4
  run new-vocab-bo8 /tmp/cast --vocabulary on --best-of 8
  run new-vocab-bo4-ex3 /tmp/cast --vocabulary on --best-of 4 --examples 3
fi
