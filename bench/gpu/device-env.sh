# Sourced at the start of every GPU (device tool) command: installs whatever wheel folders
# were carried (.whl: bitsandbytes, datasets, pydantic...; .whl2: this checkout + pinned
# transformers/peft) into /tmp/site, which outlives the call while the machine stays warm.
for d in .whl .whl2; do
  if [ -d "$d" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $d/*.whl 2>&1 | grep -v -i "warning" || true
  fi
done
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
