"""The character classifier on the sample cast's real lines (held out by scene)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from serifu.errors import SerifuError
from serifu.evaluation.attribution import fit_and_test
from serifu.evaluation.classifier import CharacterClassifier
from serifu.evaluation.run import Reference
from serifu.evaluation.splits import LabeledLine, split_by_scene


def test_cast_classifier_held_out_accuracy(cast_ref: Reference) -> None:
    clf, held = fit_and_test(cast_ref.lines)
    print(
        f"\nsample cast: held-out accuracy {held.accuracy:.3f} on {held.n_test} lines, "
        f"{len(clf.classes)} heroines; confusions {held.confusions[:3]}"
    )
    assert len(clf.classes) >= 6
    assert held.accuracy > 0.8, held.confusions
    assert all(s["test"] > 0 for s in held.speakers), "every heroine must be in the test split"


def test_split_never_shares_a_scene(cast_ref: Reference) -> None:
    train, test = split_by_scene(cast_ref.lines, seed=3)
    scenes = lambda lines: {(x.source, x.scene) for x in lines}  # noqa: E731
    assert not scenes(train) & scenes(test)
    assert 0.15 < len(test) / len(cast_ref.lines) < 0.3
    assert split_by_scene(cast_ref.lines, seed=3) == (train, test)
    assert split_by_scene(cast_ref.lines, seed=4)[1] != test


def test_save_load_roundtrip_without_pickle(tmp_path: Path) -> None:
    texts = [
        "うちはたこ焼きが好きやねん",
        "ほんまに？せやな",
        "わたくし、参りますわ",
        "ごきげんよう、ですわ",
    ] * 3
    labels = ["akane", "akane", "sayaka", "sayaka"] * 3
    clf = CharacterClassifier().fit(texts, labels)
    probe = ["せやな、たこ焼きや", "参りましょう、ですわ", "", "@@@"]
    clf.save(tmp_path / "clf.json")
    loaded = CharacterClassifier.load(tmp_path / "clf.json")
    assert loaded.classes == ["akane", "sayaka"]
    np.testing.assert_allclose(loaded.predict_proba(probe), clf.predict_proba(probe))
    assert loaded.predict(probe[:2]) == ["akane", "sayaka"]
    probs = clf.predict_proba(probe)
    assert probs.shape == (4, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_load_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(SerifuError, match="x.json"):
        CharacterClassifier.load(tmp_path / "x.json")


def test_needs_two_speakers() -> None:
    with pytest.raises(SerifuError, match="two speakers"):
        CharacterClassifier().fit(["a", "b"], ["x", "x"])


def test_few_scenes_are_split_in_blocks() -> None:
    lines = [LabeledLine(f"line {i}", "ab"[i % 2], "play.txt", 0, i) for i in range(200)]
    train, test = split_by_scene(lines)
    assert len(test) == 50  # two blocks of 25 consecutive lines
    assert {x.line // 25 for x in train}.isdisjoint({x.line // 25 for x in test})
