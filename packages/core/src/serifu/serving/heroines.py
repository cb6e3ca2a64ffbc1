"""Loading the served heroines: one base model in memory, one LoRA adapter per heroine."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError
from serifu.serving.engine import Heroine


def load_heroines(
    characters: list[str],
    *,
    model: str | None = None,
    adapter: Path | None = None,
    device: str | None = None,
    quantize: bool | None = None,
    vocabulary: str = "auto",
    best_of: int | None = None,
) -> dict[str, Heroine]:
    """Her model ids (character ids) plus the bare base's id, each with its chatbot.

    The base loads once. Each heroine's adapter is ``--adapter`` (one character only) or
    the one shipped with her pack for this base; all adapters are loaded into one PEFT
    model and switched per batch. A heroine without an adapter talks with the plain base.
    ``adapter`` with no ``characters``: that adapter alone, as a heroine without a character
    pack (trained on any script's speaker), named by its folder; the base defaults to the
    adapter's.
    """
    from serifu import plugins
    from serifu.inference.chatbot import load_chatbot
    from serifu.training.adapters import check_adapter_base, read_adapter

    if adapter is not None and len(characters) > 1:
        raise SerifuError(
            "--adapter needs one --character, or none to serve the adapter as a heroine of "
            "its own (others use their shipped adapters)"
        )
    solo = Path(adapter) if adapter is not None and not characters else None
    info = read_adapter(solo) if solo is not None else {}
    base = load_chatbot(
        model=model or info.get("base_model"),  # a solo adapter: on its own base
        system_prompt=False,
        device=device,
        quantize=quantize,
        vocabulary="off",
        best_of=best_of,
    )
    if solo is not None:
        check_adapter_base(info, base.model_id, solo)  # another --model than its base: error
        return heroines_on(base, {heroine_id(solo): solo}, vocabulary=vocabulary, packless=True)
    adapters = {
        cid: adapter
        if adapter is not None
        else plugins.get_character(cid).adapters.get(base.model_id)
        for cid in characters
    }
    return heroines_on(base, adapters, vocabulary=vocabulary)


def heroine_id(adapter: Path) -> str:
    """The model id a heroine without a pack is served under: her adapter folder's name."""
    return Path(adapter).resolve().name


def heroines_on(
    base: Any,
    adapters: Mapping[str, Path | str | None],
    *,
    vocabulary: str = "auto",
    packless: bool = False,
) -> dict[str, Heroine]:
    """The heroines (character id -> her adapter folder, or None) on an already loaded base
    chatbot (no card, vocabulary off), plus the bare base's id. ``packless``: the ids are
    not registered characters but adapters of their own (no card, no system prompt; her
    name and output vocabulary from the adapter).

    All adapters are loaded into one PEFT model around ``base.model`` (the engine decodes
    every batch through the stacked adapters, :mod:`serifu.serving.mixed_lora`, so CUDA
    graphs stay on). :func:`load_heroines`
    calls this; so does ``bench/gpu/serve_speed.py`` with a random-weight base.
    """
    from serifu import plugins
    from serifu.characters import system_prompt
    from serifu.inference.chatbot import token_rules, trained_name
    from serifu.inference.vocab import read_adapter_vocabulary
    from serifu.training.adapters import read_adapter

    heroines: dict[str, Heroine] = {}
    peft = None
    for cid, path in adapters.items():
        pack = None if packless else plugins.get_character(cid)
        if pack is None and path is None:
            raise SerifuError(f"heroine {cid!r} has neither a character pack nor an adapter")
        name = None
        info: dict[str, Any] = {}
        if path is not None:
            from peft import PeftModel

            info = read_adapter(Path(path))  # an adapter folder, with weights
            name = cid
            if peft is None:
                peft = PeftModel.from_pretrained(
                    base.model, str(path), adapter_name=name, use_safetensors=True
                )
                peft.eval()
            else:
                peft.load_adapter(str(path), adapter_name=name, use_safetensors=True)
        card = pack.card() if pack is not None else None
        bot = dataclasses.replace(
            base,
            adapter=Path(path) if path else None,
            card=card,
            system=system_prompt(card) if card is not None else None,
            name=trained_name(info) if card is None else None,
        )
        her_ids = read_adapter_vocabulary(Path(path)) if path else None
        bot.rules = token_rules(bot, pack, vocabulary, her_ids=her_ids)
        if bot.best_of_n > 1:
            from serifu.inference.rerank import Reranker

            bot.rerank = Reranker.for_character(cid, card)
        heroines[cid] = Heroine(cid, bot, name)
    if base.model_id in heroines:
        raise SerifuError(f"a character id equals the base model id {base.model_id!r}")
    heroines[base.model_id] = Heroine(base.model_id, base, None)
    if peft is not None:
        for h in heroines.values():
            h.bot.model = peft
    request_tokenizer = copy.deepcopy(base.tokenizer)  # the worker thread keeps the original
    for h in heroines.values():
        h.encoder = dataclasses.replace(h.bot, tokenizer=request_tokenizer)
    return heroines
