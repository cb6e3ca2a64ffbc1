"""``serifu export``: an adapter merged into its full-precision base."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from serifu.errors import SerifuError
from serifu.fsutil import atomic_output_dir


def export_merged(adapter: Path, out: Path) -> Path:
    """Load the base unquantised, merge the LoRA, save safetensors + tokenizer to ``out``."""
    from peft import PeftModel

    from serifu.modeling import load_model, load_tokenizer, resolve_base

    adapter = Path(adapter)
    info_file = adapter / "serifu.json"
    if not info_file.is_file():
        raise SerifuError("not an adapter written by `serifu train` (no serifu.json)", path=adapter)
    info = json.loads(info_file.read_text(encoding="utf-8"))
    base = resolve_base(info["base_model"])
    model = load_model(base, quantize=False, device="cpu")
    merged = PeftModel.from_pretrained(model, str(adapter), use_safetensors=True).merge_and_unload()
    tokenizer = load_tokenizer(base)
    with atomic_output_dir(Path(out)) as tmp:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        shutil.copy(info_file, tmp / "serifu.json")
    return Path(out)
