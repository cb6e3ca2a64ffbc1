"""Replies and scores from chatbots (``serifu.inference``), one bot per (system prompt, adapter)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serifu.evaluation.run import Reply, Scorer
from serifu.queries import Query


@dataclass
class BotPool:
    """The chatbots an evaluation needs, sharing one loaded model where possible.

    The "off" condition reuses the loaded model with the system prompt removed; the base
    model's scores come from the same PEFT model with its adapter disabled.
    """

    model: str
    adapter: Path | None
    character: str | None
    quantize: bool | None = None
    device: str | None = None
    decoding: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Extra ``load_chatbot`` options: vocabulary, best_of, examples."""
    _bot: Any = None

    def _load(self, system_prompt: bool) -> Any:
        from serifu.inference import load_chatbot

        return load_chatbot(
            model=self.model,
            adapter=self.adapter,
            character=self.character,
            system_prompt=system_prompt,
            quantize=self.quantize,
            device=self.device,
            merge=False,  # scorers switch the adapter off for the base's numbers
            **self.decoding,
        )

    def get(self, *, system_prompt: bool) -> Any:
        """The chatbot with or without the character's system prompt (same weights where possible)."""
        if self._bot is None:
            self._bot = self._load(True)
        if system_prompt:
            return self._bot
        if (
            dataclasses.is_dataclass(self._bot)
            and not isinstance(self._bot, type)
            and hasattr(self._bot, "system")
        ):
            return dataclasses.replace(self._bot, system=None)
        return self._load(False)

    def adapter_switchable(self) -> bool:
        """Whether the base can be scored by switching the adapter off (not once the adapter
        is merged into quantised reply weights, ``--weights nf4|int4``)."""
        return hasattr(self.get(system_prompt=True).model, "disable_adapter")

    def scorer(self, *, system_prompt: bool, base: bool = False, batch_size: int = 8) -> Scorer:
        """Scores with the tuned model, or (``base=True``) with its adapter switched off."""
        bot = self.get(system_prompt=system_prompt)
        score = scorer(bot, batch_size=batch_size)
        if not base:
            return score

        def score_base(queries: Sequence[str], replies: Sequence[str]) -> list[tuple[float, int]]:
            with bot.model.disable_adapter():
                return score(queries, replies)

        return score_base


def generate_replies(
    bot: Any,
    queries: Sequence[Query],
    condition: str,
    *,
    batch_size: int,
    max_new_tokens: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> list[Reply]:
    """Batched, seeded generation; batch ``i`` uses seed ``seed + i`` (stable across runs)."""
    replies: list[Reply] = []
    for start in range(0, len(queries), batch_size):
        batch = list(queries[start : start + batch_size])
        outputs = bot.generate_batch(
            [q.text for q in batch], max_new_tokens=max_new_tokens, seed=seed + start
        )
        for query, out in zip(batch, outputs, strict=True):
            replies.append(
                Reply(
                    condition=condition,
                    kind=query.kind,
                    index=query.index,
                    query=query.text,
                    text=str(out.text),
                    stopped=bool(out.stopped),
                    n_tokens=int(getattr(out, "n_tokens", 0)),
                    seconds=round(float(getattr(out, "seconds", 0.0)), 4),
                    answers=query.answers,
                )
            )
        if progress is not None:
            progress(len(batch))
    return replies


def reply_end(bot: Any) -> str:
    """What ends a reply for this bot's template (``"\\n"`` unless it says otherwise)."""
    template = getattr(bot, "template", None)
    return str(getattr(template, "reply_end", "\n"))


def scorer(bot: Any, *, batch_size: int = 8) -> Scorer:
    """(queries, replies) -> (sum NLL, tokens) of ``reply + reply_end`` after the rendered prompt."""

    def score(queries: Sequence[str], replies: Sequence[str]) -> list[tuple[float, int]]:
        if hasattr(bot, "score_replies"):  # tokenised exactly as in training and chat
            return [
                (float(nll), int(n))
                for nll, n in bot.score_replies(queries, replies, batch_size=batch_size)
            ]
        end = reply_end(bot)
        prompts = [bot.render_prompt(q) for q in queries]
        continuations = [r + end for r in replies]
        out: list[tuple[float, int]] = []
        for i in range(0, len(prompts), batch_size):
            out += [
                (float(nll), int(n))
                for nll, n in bot.score(
                    prompts[i : i + batch_size], continuations[i : i + batch_size]
                )
            ]
        return out

    return score
