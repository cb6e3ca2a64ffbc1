"""The classifier's skops persistence: round trip, and no foreign code loaded from a file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serifu.errors import SerifuError
from serifu.evaluation.classifier import CharacterClassifier

TEXTS = ["ほんまに？せやな", "せやせや、ほんま", "わたくし、参りますわ", "ごきげんよう、ですわ"] * 3
LABELS = ["akane", "akane", "sayaka", "sayaka"] * 3


def test_prediction_is_scikit_learns_pipeline() -> None:
    clf = CharacterClassifier().fit(TEXTS, LABELS)
    probe = ["せやな", "ですわ", ""]
    expected = clf.pipeline.predict_proba(probe)
    np.testing.assert_array_equal(clf.predict_proba(probe), expected)
    assert list(clf.pipeline.classes_) == clf.classes


def test_saved_file_is_a_skops_archive_without_pickle(tmp_path: Path) -> None:
    clf = CharacterClassifier().fit(TEXTS, LABELS)
    clf.save(tmp_path / "clf.skops")
    data = (tmp_path / "clf.skops").read_bytes()
    assert data[:2] == b"PK" and b"pickle" not in data.lower()
    loaded = CharacterClassifier.load(tmp_path / "clf.skops")
    assert (loaded.c, loaded.ngram_range, loaded.classes) == (10.0, (1, 3), ["akane", "sayaka"])


def test_load_refuses_foreign_types(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    clf = CharacterClassifier().fit(TEXTS, LABELS)
    evil = Pipeline([("hook", FunctionTransformer(json.dumps)), *clf.pipeline.steps])
    (tmp_path / "evil.skops").write_bytes(sio.dumps(evil))
    with pytest.raises(SerifuError, match="foreign types: json.dumps"):
        CharacterClassifier.load(tmp_path / "evil.skops")
