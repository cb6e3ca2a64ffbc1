"""The in-character score: how surely the cast classifier attributes a reply to her.

Uses :class:`serifu.evaluation.classifier.CharacterClassifier`, fitted once per process
on the lines of every registered character that has any (scikit-learn is imported then,
from a worker thread, never at start).
"""

from __future__ import annotations

import threading
from typing import Any

from serifu import plugins
from serifu_game.pairs import her_lines

_lock = threading.Lock()
_fitted: dict[tuple[str, ...], Any] = {}


def cast_classifier() -> Any | None:
    """The classifier fitted on all registered characters' lines (None with fewer than two)."""
    from serifu.evaluation.classifier import CharacterClassifier

    texts: list[str] = []
    labels: list[str] = []
    ids = tuple(sorted(plugins.characters()))
    with _lock:
        if ids in _fitted:
            return _fitted[ids]
        for char_id in ids:
            lines = her_lines(plugins.get_character(char_id))
            texts += lines
            labels += [char_id] * len(lines)
        clf = CharacterClassifier().fit(texts, labels) if len(set(labels)) >= 2 else None
        _fitted[ids] = clf
        return clf


def in_character(character: str, reply: str) -> float | None:
    """P(the reply is hers) under the cast classifier; None when it cannot tell."""
    clf = cast_classifier()
    if clf is None or character not in clf.classes or not reply.strip():
        return None
    probs = clf.predict_proba([reply])[0]
    return float(probs[clf.classes.index(character)])
