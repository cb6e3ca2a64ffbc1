"""The four built-in prompt templates (LINE, Llama-2, novel continuation, Gemma).

Every template renders the text up to where the reply starts. In training data the
reply is followed by ``reply_end``, which always ends with ``"\\n"``: generation stops at
the first newline, and :func:`reply_text` strips what ``reply_end`` puts before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def reply_text(generated: str, reply_end: str) -> tuple[str, bool]:
    """Cut generated text at the first newline; returns ``(reply, stopped)``.

    ``stopped`` is True when a newline was found. The part of ``reply_end`` before its
    newline (``"」"`` for the novel template) is removed from the end of the reply.
    """
    head, newline, _ = generated.partition("\n")
    before = reply_end.removesuffix("\n")
    if before and head.endswith(before):
        head = head[: -len(before)]
    return head, bool(newline)


@dataclass(frozen=True)
class LineTemplate:
    """The report's format: ``ユーザー: {q}\\nシステム: ``, the system prompt on lines before."""

    id: str = "line"
    description: str = "LINE instruction format: 'ユーザー: {q}\\nシステム: ' (the report's)"
    reply_end: str = "\n"
    user: str = "ユーザー"
    assistant: str = "システム"

    def render(
        self,
        query: str,
        *,
        character: str,
        system: str | None = None,
        history: Sequence[tuple[str, str]] = (),
    ) -> str:
        parts = [system + "\n"] if system else []
        for user_line, reply in history:
            parts.append(f"{self.user}: {user_line}\n{self.assistant}: {reply}{self.reply_end}")
        parts.append(f"{self.user}: {query}\n{self.assistant}: ")
        return "".join(parts)


@dataclass(frozen=True)
class Llama2Template:
    """Llama-2 chat: ``[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{q} [/INST] ``.

    The tokenizer adds ``<s>``; earlier turns are written as ``[INST] {u} [/INST] {r}\\n``.
    """

    id: str = "llama2"
    description: str = "Llama-2 chat: '[INST] <<SYS>>…<</SYS>> {q} [/INST] '"
    reply_end: str = "\n"

    def render(
        self,
        query: str,
        *,
        character: str,
        system: str | None = None,
        history: Sequence[tuple[str, str]] = (),
    ) -> str:
        sys_block = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if system else ""
        parts = []
        for i, (user_line, reply) in enumerate(history):
            head = sys_block if i == 0 else ""
            parts.append(f"[INST] {head}{user_line} [/INST] {reply}{self.reply_end}")
        head = sys_block if not history else ""
        parts.append(f"[INST] {head}{query} [/INST] ")
        return "".join(parts)


@dataclass(frozen=True)
class NovelTemplate:
    """Plain novel continuation: ``主人公「{q}」\\n{name}「`` (the reply closes with ``」``)."""

    id: str = "novel"
    description: str = "Novel continuation: '主人公「{q}」\\n{name}「'"
    reply_end: str = "」\n"
    protagonist: str = "主人公"

    def render(
        self,
        query: str,
        *,
        character: str,
        system: str | None = None,
        history: Sequence[tuple[str, str]] = (),
    ) -> str:
        parts = [system + "\n"] if system else []
        for user_line, reply in history:
            parts.append(f"{self.protagonist}「{user_line}」\n{character}「{reply}{self.reply_end}")
        parts.append(f"{self.protagonist}「{query}」\n{character}「")
        return "".join(parts)


@dataclass(frozen=True)
class GemmaTemplate:
    """Gemma turns; the system prompt opens the first user turn (Gemma has no system role)."""

    id: str = "gemma"
    description: str = (
        "Gemma chat turns: '<start_of_turn>user\\n{q}<end_of_turn>\\n<start_of_turn>model\\n'"
    )
    reply_end: str = "<end_of_turn>\n"

    def render(
        self,
        query: str,
        *,
        character: str,
        system: str | None = None,
        history: Sequence[tuple[str, str]] = (),
    ) -> str:
        turns = [*history, (query, None)]
        parts = []
        for i, (user_line, reply) in enumerate(turns):
            text = f"{system}\n\n{user_line}" if (system and i == 0) else user_line
            parts.append(f"<start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n")
            if reply is not None:
                parts.append(f"{reply}{self.reply_end}")
        return "".join(parts)


def builtin_templates() -> list[LineTemplate | Llama2Template | NovelTemplate | GemmaTemplate]:
    return [LineTemplate(), Llama2Template(), NovelTemplate(), GemmaTemplate()]
