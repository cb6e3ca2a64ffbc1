"""'Which character said this': character n-gram TF-IDF + logistic regression.

A scikit-learn pipeline does the fitting *and* the prediction; ``save``/``load`` persist
the fitted pipeline with ``skops`` (no pickle: loading refuses any type outside the
pipeline's own). The game reuses this class for its in-character score.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serifu.errors import SerifuError
from serifu.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    import numpy as np

TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")
"""Types a saved classifier may contain; anything else (e.g. an arbitrary function) is refused."""


def _prepare(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


class CharacterClassifier:
    """Attributes lines to speakers. ``fit(texts, labels)`` then ``predict_proba(texts)``."""

    def __init__(self, *, ngram_range: tuple[int, int] = (1, 3), c: float = 10.0, seed: int = 0):
        self.ngram_range = ngram_range
        self.c = c
        self.seed = seed
        self.classes: list[str] = []
        self.pipeline: Any = None
        """The fitted ``sklearn.pipeline.Pipeline`` (``tfidf`` then ``logreg``)."""

    def _pipeline(self, min_df: int) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline

        tfidf = TfidfVectorizer(
            analyzer="char",
            ngram_range=self.ngram_range,
            lowercase=False,
            sublinear_tf=True,
            min_df=min_df,
        )
        logreg = LogisticRegression(
            C=self.c,
            solver="newton-cg",
            max_iter=1000,
            class_weight="balanced",
            random_state=self.seed,
        )
        return Pipeline([("tfidf", tfidf), ("logreg", logreg)])

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> CharacterClassifier:
        """Fit on real lines; needs at least two distinct labels."""
        if len(texts) != len(labels):
            raise ValueError("texts and labels differ in length")
        if len(set(labels)) < 2:
            raise SerifuError(
                f"the character classifier needs lines of at least two speakers, got {sorted(set(labels))}"
            )
        prepared = [_prepare(t) for t in texts]
        try:  # n-grams seen at least twice; tiny corpora fall back to every n-gram
            pipeline = self._pipeline(min_df=2).fit(prepared, list(labels))
        except ValueError:
            pipeline = self._pipeline(min_df=1).fit(prepared, list(labels))
        self.pipeline = pipeline
        self.classes = [str(c) for c in pipeline.classes_]
        return self

    def _require(self) -> Any:
        if self.pipeline is None:
            raise RuntimeError("the classifier is not fitted; call fit() or load() first")
        return self.pipeline

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape (len(texts), len(classes)), columns in ``classes`` order.

        Empty or unseen text gets the intercept-only (prior-like) distribution.
        """
        import numpy as np

        pipeline = self._require()
        if not texts:
            return np.zeros((0, len(self.classes)))
        return np.asarray(pipeline.predict_proba([_prepare(t) for t in texts]))

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most likely speaker of each text."""
        probs = self.predict_proba(texts)
        return [self.classes[i] for i in probs.argmax(axis=1)] if len(texts) else []

    def score(self, texts: Sequence[str], labels: Sequence[str]) -> float:
        """Accuracy on labelled lines."""
        if not texts:
            return 0.0
        return sum(p == y for p, y in zip(self.predict(texts), labels, strict=True)) / len(texts)

    def save(self, path: Path) -> None:
        """Write the fitted pipeline to ``path`` (a skops archive), atomically."""
        import skops.io as sio

        atomic_write_bytes(Path(path), sio.dumps(self._require()))

    @classmethod
    def load(cls, path: Path) -> CharacterClassifier:
        """Read a classifier written by :meth:`save`; refuses types outside scikit-learn's."""
        import skops.io as sio

        path = Path(path)
        try:
            data = path.read_bytes()
            untrusted = sio.get_untrusted_types(data=data)
        except FileNotFoundError:
            raise SerifuError("classifier file missing", path=path) from None
        except Exception as exc:  # not a zip / not a skops archive
            raise SerifuError(f"not a Serifu classifier file ({exc})", path=path) from None
        foreign = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
        if foreign:
            raise SerifuError(
                f"refusing to load a classifier file with foreign types: {', '.join(foreign)}",
                path=path,
            )
        pipeline = sio.loads(data, trusted=untrusted)
        if not {"tfidf", "logreg"} <= set(getattr(pipeline, "named_steps", {})):
            raise SerifuError("not a Serifu classifier file (not its pipeline)", path=path)
        return cls.from_pipeline(pipeline)

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> CharacterClassifier:
        """The classifier around a fitted ``tfidf`` + ``logreg`` pipeline (saved or cached)."""
        tfidf, logreg = pipeline.named_steps["tfidf"], pipeline.named_steps["logreg"]
        clf = cls(ngram_range=tuple(tfidf.ngram_range), c=logreg.C, seed=logreg.random_state or 0)
        clf.pipeline = pipeline
        clf.classes = [str(c) for c in pipeline.classes_]
        return clf
