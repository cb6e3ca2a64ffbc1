"""Fit the character classifier on a reference's train split; measure it on the held-out split."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serifu.evaluation.classifier import CharacterClassifier
from serifu.evaluation.splits import LabeledLine, split_by_scene


@dataclass
class HeldOut:
    """How well the classifier separates speakers on real held-out lines (the ceiling)."""

    accuracy: float
    chance: float
    """Accuracy of always answering the most frequent training label."""
    n_train: int
    n_test: int
    speakers: list[dict[str, Any]]
    """Per speaker: name, train/test lines, recall on held-out lines."""
    confusions: list[dict[str, Any]]
    """Most frequent (true -> predicted) mistakes."""

    def to_json(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "chance": round(self.chance, 4),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "speakers": self.speakers,
            "confusions": self.confusions,
        }


def fit_and_test(
    lines: Sequence[LabeledLine], *, seed: int = 0, test_fraction: float = 0.2
) -> tuple[CharacterClassifier, HeldOut]:
    """Split by scene, fit on train, score on test."""
    train, test = split_by_scene(lines, test_fraction=test_fraction, seed=seed)
    clf = CharacterClassifier(seed=seed).fit([x.text for x in train], [x.label for x in train])
    predicted = clf.predict([x.text for x in test])
    truth = [x.label for x in test]
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    train_counts, test_counts = Counter(x.label for x in train), Counter(truth)
    hits = Counter(t for p, t in zip(predicted, truth, strict=True) if p == t)
    speakers = [
        {
            "name": name,
            "train": train_counts[name],
            "test": test_counts[name],
            "recall": round(hits[name] / test_counts[name], 4) if test_counts[name] else None,
        }
        for name in clf.classes
    ]
    mistakes = Counter((t, p) for p, t in zip(predicted, truth, strict=True) if p != t)
    confusions = [{"true": t, "predicted": p, "count": n} for (t, p), n in mistakes.most_common(10)]
    majority = train_counts.most_common(1)[0][0]
    held = HeldOut(
        accuracy=correct / len(test) if test else 0.0,
        chance=test_counts[majority] / len(test) if test else 0.0,
        n_train=len(train),
        n_test=len(test),
        speakers=speakers,
        confusions=confusions,
    )
    return clf, held
