"""Fitted pipelines kept in the cache (serifu.fitcache): reused, refitted when damaged or
foreign, and never an error when the cache cannot be written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from serifu.fitcache import cache_path, cached_fit

TEXTS = ["好きな食べ物は？", "誕生日はいつ？", "おはよう", "好物を教えて", "何月生まれ？", "またね"]
LABELS = ["food", "birthday", "none", "food", "birthday", "none"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERIFU_CACHE", str(tmp_path / "cache"))


def _fit(calls: list[int]) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    calls.append(1)
    model = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 2)), LogisticRegression()
    )
    return model.fit(TEXTS, LABELS)


def test_second_use_loads_the_fitted_pipeline_instead_of_fitting() -> None:
    calls: list[int] = []
    first = cached_fit("t", {"texts": TEXTS}, lambda: _fit(calls))
    second = cached_fit("t", {"texts": TEXTS}, lambda: _fit(calls))
    assert calls == [1]
    assert (second.predict_proba(TEXTS) == first.predict_proba(TEXTS)).all()
    # other material is another entry
    cached_fit("t", {"texts": TEXTS[:4]}, lambda: _fit(calls))
    assert calls == [1, 1]


def test_a_damaged_archive_is_refitted_and_replaced() -> None:
    calls: list[int] = []
    cached_fit("t", "m", lambda: _fit(calls))
    path = cache_path("t", "m")
    path.write_bytes(path.read_bytes()[:100])  # truncated
    model = cached_fit("t", "m", lambda: _fit(calls))
    assert calls == [1, 1] and list(model.classes_) == ["birthday", "food", "none"]
    cached_fit("t", "m", lambda: _fit(calls))
    assert calls == [1, 1]  # the rewritten archive is good again


def test_an_archive_with_a_foreign_type_is_never_loaded() -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = cache_path("t", "x")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sio.dumps(FunctionTransformer(func=os.system)))  # not scikit-learn's
    calls: list[int] = []
    model = cached_fit("t", "x", lambda: _fit(calls))
    assert calls == [1] and hasattr(model, "predict_proba")


def test_a_cache_that_cannot_be_written_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x", encoding="utf-8")
    monkeypatch.setenv("SERIFU_CACHE", str(blocked))
    calls: list[int] = []
    assert cached_fit("t", "m", lambda: _fit(calls)) is not None
    assert cached_fit("t", "m", lambda: _fit(calls)) is not None
    assert calls == [1, 1]


def test_without_skops_every_use_fits_and_nothing_is_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Chat needs only scikit-learn: without skops (serifu[eval]) the reranker still works."""
    import sys

    monkeypatch.setitem(sys.modules, "skops.io", None)  # import skops.io -> ImportError
    calls: list[int] = []
    first = cached_fit("t", {"texts": TEXTS}, lambda: _fit(calls))
    cached_fit("t", {"texts": TEXTS}, lambda: _fit(calls))
    assert calls == [1, 1]
    assert list(first.predict(["好きな食べ物は？"])) == ["food"]
    assert not (tmp_path / "cache" / "fitted").exists()
