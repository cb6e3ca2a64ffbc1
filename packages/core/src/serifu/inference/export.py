"""``serifu export``: an adapter merged into its full-precision base."""

from __future__ import annotations

import shutil
from pathlib import Path

from serifu.fsutil import atomic_output_dir, check_output_dir


def export_merged(
    adapter: Path, out: Path, *, model: str | None = None, force: bool = False
) -> Path:
    """Load the base unquantised, merge the LoRA, save safetensors + tokenizer to ``out``.

    ``model`` defaults to the adapter's base (its ``serifu.json``); another base is an
    error. ``out`` is checked before the model loads (:func:`serifu.fsutil.check_output_dir`)."""
    from serifu.errors import SerifuError
    from serifu.modeling import load_model, load_tokenizer, resolve_base
    from serifu.training.adapters import attach_adapter, read_adapter

    adapter = Path(adapter)
    info = read_adapter(adapter, model)
    if not info:
        raise SerifuError("not an adapter written by `serifu train` (no serifu.json)", path=adapter)
    if not isinstance(info.get("base_model"), str):
        raise SerifuError("serifu.json does not name the base model", path=adapter / "serifu.json")
    check_output_dir(out, inputs=[adapter], force=force)
    base = resolve_base(model or info["base_model"])
    lm = load_model(base, quantize=False, device="cpu")
    merged = attach_adapter(lm, adapter).merge_and_unload()
    tokenizer = load_tokenizer(base)
    with atomic_output_dir(Path(out), kind="export", inputs=[adapter], force=force) as tmp:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        shutil.copy(adapter / "serifu.json", tmp / "serifu.json")
    return Path(out)
