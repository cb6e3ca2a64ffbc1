"""A Serifu plugin: a data source (chat logs), a character pack (朝霧澪) and a base model.

Enough to run the documented pipeline on the plugin's own pieces:
``serifu data build --character mio`` → ``serifu train --model example-tiny-llama`` →
``serifu eval`` → ``serifu chat``/``serifu play``. Malformed input is an error naming the
file and line (:class:`serifu.errors.SerifuError`), never a traceback or a silent skip.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError
from serifu.hookspecs import hookimpl
from serifu.kinds import Utterance

HERE = Path(__file__).parent

# `[12:03] 名前: text` — a timestamp, a speaker, a colon and the line.
LINE = re.compile(r"^\[(?P<time>\d{1,2}:\d{2})\]\s*(?P<speaker>[^:：]+)[:：]\s*(?P<text>.+)$")


class ChatLogSource:
    """Reads chat logs; a line `--- title` starts a new scene, `#` starts a comment.

    Any other line that is not `[hh:mm] name: text` is malformed: a
    :class:`SerifuError` names the file and line (the CLI prints it as one paragraph
    and exits 2).
    """

    id = "chatlog"
    description = "Chat logs: `[hh:mm] name: text`; `--- title` starts a scene (example plugin)"
    has_speakers = True

    def read(self, text: str, *, path: Path, options: Mapping[str, Any]) -> list[Utterance]:
        out: list[Utterance] = []
        scene = 0
        for no, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("---"):
                scene += 1
                continue
            m = LINE.match(line)
            if m is None:
                raise SerifuError(
                    f"not a chat-log line (expected `[hh:mm] name: text` or `--- scene`): {line[:40]!r}",
                    path=path,
                    line=no,
                )
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


@hookimpl
def register_base_models(register: Callable[[Any], None]) -> None:
    from serifu_example_plugin.model import EXAMPLE_TINY_LLAMA

    register(EXAMPLE_TINY_LLAMA)
