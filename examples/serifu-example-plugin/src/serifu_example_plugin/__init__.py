"""A Serifu plugin: one data source (chat logs) and one character pack (朝霧澪)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from serifu.hookspecs import hookimpl
from serifu.kinds import Utterance

HERE = Path(__file__).parent

# `[12:03] 名前: text` — a timestamp, a speaker, a colon and the line.
LINE = re.compile(r"^\[(?P<time>\d{1,2}:\d{2})\]\s*(?P<speaker>[^:：]+)[:：]\s*(?P<text>.+)$")


class ChatLogSource:
    """Reads chat logs; a line `--- title` starts a new scene."""

    id = "chatlog"
    description = "Chat logs: `[hh:mm] name: text`; `--- title` starts a scene (example plugin)"
    has_speakers = True

    def read(self, text: str, *, path: Path, options: Mapping[str, Any]) -> list[Utterance]:
        out: list[Utterance] = []
        scene = 0
        for no, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if line.startswith("---"):
                scene += 1
                continue
            m = LINE.match(line)
            if m:
                out.append(Utterance(m["speaker"].strip(), m["text"].strip(), scene, no, str(path)))
        return out


@hookimpl
def register_data_sources(register: Callable[[Any], None]) -> None:
    register(ChatLogSource())


@hookimpl
def register_characters(register: Callable[[Any], None]) -> None:
    from serifu.characters import CharacterPack

    register(
        CharacterPack(
            id="mio",
            card_path=HERE / "mio" / "card.toml",
            scripts=[HERE / "mio" / "chat.log"],
            source="chatlog",
        )
    )
