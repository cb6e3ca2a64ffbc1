"""Her card's answer, in her voice, when none of the sampled replies states the asked fact.

A line that asks about her profile (``Reranker.asked``: topic patterns, else the question
classifier) is answered from N sampled candidates. When none of them states the asked fact
(``serifu.profile.states``) the reply would be wrong whichever the reranker picks; then she
answers from her card instead, with the answer frames the knowledge augmentation trains on
(``serifu.data.augment``): her first person and her sentence endings, learned from her own
lines. Replies that took this path are marked (``Generation.grounded``) and counted by the
benchmarks apart from the model's own right answers.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serifu.profile import Fact, asks_her_fact, states


@dataclass
class CardAnswers:
    """Answers stating one card fact, in her voice."""

    voice: Any  # serifu.data.augment.Voice
    personality: str

    @classmethod
    def for_character(cls, character_id: str, card: Any) -> CardAnswers:
        from serifu import plugins
        from serifu.data.augment import learn_voice
        from serifu.data.characters import character_utterances

        pack = plugins.get_character(character_id)
        lines = [u.text for u in character_utterances(pack) if u.speaker == card.short_name]
        voice = learn_voice(lines, getattr(card, "first_person", None) or "私")
        return cls(voice, str(getattr(card, "personality", "") or ""))

    def answer(self, fact: Fact, query: str) -> str:
        """The same answer for the same question (seeded by the question's text)."""
        from serifu.data.augment import answer_in_voice

        rng = random.Random(zlib.crc32(f"{fact.key}\n{query}".encode()))
        return answer_in_voice(fact, self.voice, self.personality, rng)


def needs_card_answer(asked: Sequence[Fact], query: str, texts: Sequence[str]) -> bool:
    """Whether ``query`` asks for a fact that none of the candidate ``texts`` states."""
    if not asked or not asks_her_fact(query):
        return False
    return not any(states(fact, text) for fact in asked for text in texts)
