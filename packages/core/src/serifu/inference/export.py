"""``serifu export``: an adapter merged into its full-precision base."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from serifu.fsutil import atomic_output_dir, check_output_dir


def export_merged(
    adapter: Path, out: Path, *, model: str | None = None, force: bool = False
) -> Path:
    """Load the base unquantised, merge the LoRA, save safetensors + tokenizer to ``out``
    (the tokenizer carries the ``chat_template`` she was trained with).

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
    set_chat_template(tokenizer, base, info)
    with atomic_output_dir(Path(out), kind="export", inputs=[adapter], force=force) as tmp:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        shutil.copy(adapter / "serifu.json", tmp / "serifu.json")
    return Path(out)


def set_chat_template(tokenizer: Any, base: Any, info: dict[str, Any]) -> None:
    """Give ``tokenizer`` a ``chat_template`` rendering Serifu's prompt template for this
    base (her name from the adapter's character, for the novel template), so
    ``apply_chat_template`` (vLLM, text-generation-webui…) builds the prompts she was trained
    on. A tokenizer whose own template Serifu uses keeps it."""
    from serifu import plugins
    from serifu.errors import SerifuError
    from serifu.prompts.chat_template import ChatTemplate, jinja_chat_template, template_for

    template = template_for(base, tokenizer)
    if isinstance(template, ChatTemplate):
        return
    from serifu.inference.chatbot import GENERIC_NAME, trained_name

    name = trained_name(info) or GENERIC_NAME  # Chatbot.character_name without a card
    character = (info.get("dataset") or {}).get("character_id")
    if isinstance(character, str):
        with contextlib.suppress(SerifuError):  # not registered here: a generic name
            name = str(plugins.get_character(character).card().short_name)
    ids = tokenizer("a", add_special_tokens=base.add_special_tokens)["input_ids"]
    bos = bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id
    jinja = jinja_chat_template(template, name, bos=bos)
    if jinja is not None:
        tokenizer.chat_template = jinja
