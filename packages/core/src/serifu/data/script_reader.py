"""The ``script`` reader: configurable game scripts (speaker tags, scenes, choices, comments).

Its defaults parse the sample cast's format (``serifu/cast/FORMAT.md``)::

    [scene] 春・放課後の教室
    夕日が差し込む教室。            <- narration (no tag): not speech
    【茜】「なあ、帰ろか」           <- bracket tag
    // a comment

Other styles: ``colon`` (``茜：「…」`` or ``茜: …``) and ``hash`` (a ``#茜`` line, then
the speech on the following lines up to a blank line or the next tag).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serifu.data.options import parse_options
from serifu.errors import SerifuError
from serifu.kinds import Utterance

TagStyle = Literal["bracket", "colon", "hash"]
_BRACKET = re.compile(r"^【(?P<name>[^【】]*)】\s*(?P<text>.*)$")
_COLON = re.compile(r"^(?P<name>[^\s:：「」【】#＃/]{1,16})\s*[:：]\s*(?P<text>.+)$")
_HASH = re.compile(r"^[#＃](?P<name>[^\s#＃].{0,15})$")


def _default_styles() -> list[TagStyle]:
    return ["bracket"]


class ScriptOptions(BaseModel):
    """Options of the ``script`` reader; the defaults read the sample cast's format."""

    model_config = ConfigDict(extra="forbid")
    tag_styles: list[TagStyle] = Field(
        default_factory=_default_styles, description="Speaker-tag styles accepted."
    )
    scene_pattern: str = Field(
        default=r"^\[scene\]", description="Regex of a scene-start line (e.g. '^\\*scene')."
    )
    comment_prefixes: list[str] = Field(
        default_factory=lambda: ["//"], description="Lines starting with one of these are comments."
    )
    choice_pattern: str = Field(
        default=r"^\[choice\]\s*(?P<text>.+)$",
        description="Regex of a player-choice line; group 'text' is the choice.",
    )
    choices: Literal["skip", "protagonist"] = Field(
        default="skip", description="Choices: skipped, or read as the protagonist's lines."
    )
    protagonist: str = Field(default="主人公", description="Speaker name used for choices.")
    strip_quotes: bool = Field(default=True, description="Remove the outer 「」 of a line.")


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == "「" and text[-1] == "」":
        return text[1:-1]
    return text


class ScriptReader:
    """Data source ``script``."""

    id = "script"
    description = (
        "game scripts: 【名前】「…」 (or 名前：「…」, #名前), [scene], [choice], // comments"
    )
    has_speakers = True
    options_model = ScriptOptions

    def read(self, text: str, *, path: Path, options: Mapping[str, Any]) -> list[Utterance]:
        opts = parse_options(ScriptOptions, options, self.id)
        try:
            scene_re = re.compile(opts.scene_pattern)
            choice_re = re.compile(opts.choice_pattern)
        except re.error as exc:
            raise SerifuError(f"invalid regex in script options: {exc}") from None
        styles = set(opts.tag_styles)
        out: list[Utterance] = []
        scene = 0
        hash_speaker: tuple[str, int] | None = None  # (name, line) of an open #name block
        hash_parts: list[str] = []

        def text_of(raw: str) -> str:
            return _unquote(raw) if opts.strip_quotes else raw.strip()

        def flush_hash() -> None:
            nonlocal hash_speaker, hash_parts
            if hash_speaker is not None and hash_parts:
                out.append(
                    Utterance(
                        hash_speaker[0],
                        text_of("".join(hash_parts)),
                        scene,
                        hash_speaker[1],
                        str(path),
                    )
                )
            hash_speaker, hash_parts = None, []

        for lineno, raw in enumerate(text.split("\n"), start=1):
            line = raw.strip()
            if not line:
                flush_hash()
                continue
            if any(line.startswith(p) for p in opts.comment_prefixes):
                continue
            if scene_re.search(line):
                flush_hash()
                scene += 1
                continue
            if m := choice_re.match(line):
                flush_hash()
                if opts.choices == "protagonist":
                    out.append(
                        Utterance(
                            opts.protagonist, text_of(m.group("text")), scene, lineno, str(path)
                        )
                    )
                continue
            if "bracket" in styles and line.startswith("【"):
                flush_hash()
                m = _BRACKET.match(line)
                if m is None or not m.group("name").strip():
                    raise SerifuError(
                        "malformed speaker tag: expected 【名前】「台詞」 with a closing 】 and a name",
                        path=path,
                        line=lineno,
                    )
                if m.group("text").strip():
                    out.append(
                        Utterance(
                            m.group("name").strip(),
                            text_of(m.group("text")),
                            scene,
                            lineno,
                            str(path),
                        )
                    )
                continue
            if "hash" in styles and (m := _HASH.match(line)):
                flush_hash()
                hash_speaker = (m.group("name").strip(), lineno)
                continue
            if hash_speaker is not None:
                hash_parts.append(line)
                continue
            if "colon" in styles and (m := _COLON.match(line)):
                out.append(
                    Utterance(m.group("name"), text_of(m.group("text")), scene, lineno, str(path))
                )
            # anything else is narration
        flush_hash()
        return out
