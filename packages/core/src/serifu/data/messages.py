"""Conversational ``messages`` export of a dialogue dataset, for TRL, axolotl and the like.

One JSONL file per split (``train.jsonl``, ``validation.jsonl``, ``test.jsonl``); each line
is ``{"messages": [...]}`` with OpenAI-style ``{"role", "content"}`` turns: the
character's profile system prompt (when the dataset names a registered character), the
earlier turns of the row's context as user/assistant pairs — as ``serifu train`` renders
them — then the protagonist's line (``user``) and her reply (``assistant``). TRL's
``SFTTrainer`` and axolotl's ``chat_template`` datasets read this format as is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError

FORMATS = ("messages",)


def row_messages(
    row: Mapping[str, Any], *, character: str, system: str | None
) -> list[dict[str, str]]:
    """One dataset row as chat messages (system, history, user, assistant)."""
    from serifu.training.examples import context_history

    messages = [{"role": "system", "content": system}] if system else []
    for query, reply in context_history(row.get("context") or [], character):
        messages += [{"role": "user", "content": query}, {"role": "assistant", "content": reply}]
    messages += [
        {"role": "user", "content": str(row["query"])},
        {"role": "assistant", "content": str(row["reply"])},
    ]
    return messages


def _system_prompt(build: Mapping[str, Any]) -> str | None:
    character_id = build.get("character_id")
    if not character_id:
        return None
    from serifu import plugins
    from serifu.characters import system_prompt

    return system_prompt(plugins.get_character(str(character_id)).card())


def export_messages(
    data_dir: Path, out: Path, *, system_prompt: bool = True, force: bool = False
) -> dict[str, Any]:
    """Write ``out/<split>.jsonl`` for every split of ``data_dir``; returns a summary.

    ``data_dir`` must be a ``dialogue`` dataset (``serifu data build --format dialogue``):
    a ``lines`` dataset has no user turn to pair a reply with.
    """
    from datasets import load_from_disk

    from serifu.data.build import load_build_info
    from serifu.fsutil import atomic_output_dir

    build = load_build_info(data_dir)
    if build.get("format") != "dialogue":
        raise SerifuError(
            f"the messages export needs a dialogue dataset (query -> reply); this one is "
            f"{build.get('format')!r}: rebuild it with `serifu data build --format dialogue`",
            path=data_dir,
        )
    system = _system_prompt(build) if system_prompt else None
    character = str(build.get("character") or "")
    splits = load_from_disk(str(data_dir))
    counts: dict[str, int] = {}
    with atomic_output_dir(out, kind="messages", inputs=[data_dir], force=force) as tmp:
        for name in splits:
            rows = [
                json.dumps(
                    {"messages": row_messages(row, character=character, system=system)},
                    ensure_ascii=False,
                )
                for row in splits[name]
            ]
            (tmp / f"{name}.jsonl").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
            counts[name] = len(rows)
    return {
        "out": str(out),
        "format": "messages",
        "character": character,
        "system_prompt": system is not None,
        "splits": counts,
    }
