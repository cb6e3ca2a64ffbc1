# GPU job: honest-numerics curves, then the sample cast's adapters (+ ロミオ) with their evaluations.
# Needs the gemma wheels staged in /tmp/gemma (see ../shared/tools/gemma-stage) and .corpus/ carried.
source bench/gpu/device-env.sh
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site /tmp/gemma/*.whl 2>&1 | grep -v -i warn
export SERIFU_CACHE=/tmp/serifu-cache
python3 bench/gpu/numerics.py --out /tmp/num 2>&1 | grep -v -i "warn\|Loading\|{'" | tail -4
cp /tmp/num/numerics.json /tmp/num/numerics.png "$OUT"/
python3 scripts/train_cast_adapters.py --out /tmp/cast --script .corpus/000264_42773_romeo-to-juliet.txt \
  --speaker ロミオ --name romeo 2>&1 | grep -v -i "warn\|Loading\|it/s" | tail -12
cp /tmp/cast/summary.json "$OUT"/cast-summary.json
tar czf "$OUT"/cast.tgz docs/results packages/core/src/serifu/cast/*/adapters
