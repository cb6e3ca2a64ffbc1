"""Best-of-N reranking: sample N replies in one batch, keep the one that is most her.

Score of a candidate (higher is better), each part documented in docs/evaluation.md:

- ``voice``: log-probability that the cast classifier attributes the reply to her
  (her own lines vs the other heroines'); 0 when no classifier fits (no reference cast);
- ``card``: consistency with her card (``serifu.profile``): + the share of asked facts the
  reply states, − 1 for every fact it contradicts (another age, birthday, blood type …);
  when no topic pattern finds the asked fact, the learned question classifier
  (``serifu.profile_intent``) may name it;
- ``likelihood``: the model's mean log-probability per token of the reply;
- ``format``: − 2 for an empty or unclean reply (special tokens, foreign script, mojibake)
  or a transcript line (her name first, :func:`serifu.evaluation.reply_format.is_transcript`),
  − 1 for one cut at the token limit, − 1 for one with a broken piece of sentence
  (:mod:`serifu.evaluation.fragments`), − 0.5 for one that parrots the line
  (:mod:`serifu.evaluation.echo`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from serifu.profile import Fact, asked_facts, card_facts, consistency

WEIGHTS = {"voice": 1.0, "card": 2.0, "likelihood": 0.5, "format": 1.0}


@lru_cache(maxsize=8)
def _cast_classifier(character_id: str) -> tuple[Any, str] | None:
    """The cast classifier fitted on real lines, and her label (None outside the cast)."""
    from serifu.errors import SerifuError
    from serifu.evaluation.attribution import fit_and_test
    from serifu.evaluation.classifier import CharacterClassifier
    from serifu.evaluation.reference import cast_reference
    from serifu.fitcache import cached_fit

    try:
        reference = cast_reference(character_id)
    except (SerifuError, KeyError):
        return None
    lines = reference.lines
    material = {"lines": [[x.text, x.label, x.scene] for x in lines], "fit": "fit_and_test seed 0"}
    pipeline = cached_fit("cast-voice", material, lambda: fit_and_test(lines)[0].pipeline)
    return CharacterClassifier.from_pipeline(pipeline), reference.target


@dataclass
class Reranker:
    """Scores candidates for one character (see the module docstring)."""

    facts: list[Fact] = field(default_factory=list)
    classifier: Any | None = None
    target: str | None = None
    weights: dict[str, float] = field(default_factory=lambda: dict(WEIGHTS))
    intent: bool = True
    """Ask :mod:`serifu.profile_intent` when no topic pattern matches."""
    name: str | None = None
    """Her name, to tell a transcript line (「妻「…」」) from a reply."""

    @classmethod
    def for_character(cls, character_id: str | None, card: Any | None) -> Reranker:
        fitted = _cast_classifier(character_id) if character_id else None
        classifier, target = fitted if fitted else (None, None)
        facts = card_facts(card) if card is not None else []
        return cls(facts, classifier, target, name=card.short_name if card is not None else None)

    def parts(self, query: str, candidates: Sequence[Any]) -> list[dict[str, float]]:
        """Each candidate's score parts (``candidates``: objects with ``text``, ``stopped``,
        ``n_tokens``, ``logprob``)."""
        from serifu.evaluation.echo import echoes
        from serifu.evaluation.fragments import can_tag, fragments
        from serifu.evaluation.reply_format import is_clean, is_transcript

        voice = [0.0] * len(candidates)
        if self.classifier is not None and self.target in self.classifier.classes:
            column = list(self.classifier.classes).index(self.target)
            probs = self.classifier.predict_proba([c.text or "…" for c in candidates])
            voice = [math.log(max(float(p[column]), 1e-4)) for p in probs]
        asked = self.asked(query)
        out = []
        for c, v in zip(candidates, voice, strict=True):
            fmt = 0.0
            if not c.text.strip() or not is_clean(c.text) or is_transcript(c.text, self.name):
                fmt -= 2.0
            if not c.stopped:
                fmt -= 1.0
            if fragments(c.text, stopped=c.stopped, tags=can_tag()):
                fmt -= 1.0
            if c.text.strip() and (c.text.strip() in query or echoes(query, c.text)):
                fmt -= 0.5
            out.append(
                {
                    "voice": v,
                    "card": consistency(self.facts, query, c.text, asked).score
                    if self.facts
                    else 0.0,
                    "likelihood": c.logprob / max(c.n_tokens, 1),
                    "format": fmt,
                }
            )
        return out

    def asked(self, query: str) -> list[Fact]:
        """The facts ``query`` asks about: topic patterns first, else the classifier."""
        found = asked_facts(self.facts, query)
        if found or not self.facts or not self.intent:
            return found
        from serifu.profile_intent import MIN_PROBABILITY, question_fact

        key, p = question_fact(query)
        return [f for f in self.facts if f.key == key] if p >= MIN_PROBABILITY else []

    def scores(self, query: str, candidates: Sequence[Any]) -> list[float]:
        return [
            sum(self.weights[k] * v for k, v in p.items()) for p in self.parts(query, candidates)
        ]

    def best(self, query: str, candidates: Sequence[Any]) -> int:
        """Index of the best candidate (the first on ties)."""
        scores = self.scores(query, candidates)
        return max(range(len(scores)), key=lambda i: (scores[i], -i))
