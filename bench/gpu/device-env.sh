# Sourced at the start of every GPU (device tool) command: installs whatever wheel folders
# were carried (.whl: bitsandbytes, datasets, pydantic...; .whl2: this checkout + pinned
# transformers/peft) into /tmp/site, which outlives the call while the machine stays warm.
for d in /tmp/w3 .whl .whl2; do  # /tmp/w3: bench/gpu/pack-peers, staged by an earlier call
  if [ -d "$d" ] && [ ! -e "$d/.installed" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $d/*.whl 2>&1 | grep -v -i "warning" || true
    [ "$d" = /tmp/w3 ] && touch /tmp/w3/.installed
  fi
done
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
