"""'Which character said this': character n-gram TF-IDF + logistic regression.

scikit-learn fits the model; the fitted weights are then kept as plain arrays, so that
prediction is a few numpy operations and ``save``/``load`` need no pickle (a JSON file
plus an ``.npz`` of float arrays). The game reuses this class for its in-character score.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serifu.errors import SerifuError
from serifu.fsutil import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    import numpy as np

FORMAT_VERSION = 1


def _prepare(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


@dataclass
class _Weights:
    vocabulary: dict[str, int]
    idf: np.ndarray
    coef: np.ndarray  # (n_classes, n_features); one row for two classes, as sklearn stores it
    intercept: np.ndarray


class CharacterClassifier:
    """Attributes lines to speakers. ``fit(texts, labels)`` then ``predict_proba(texts)``."""

    def __init__(self, *, ngram_range: tuple[int, int] = (1, 3), c: float = 10.0, seed: int = 0):
        self.ngram_range = ngram_range
        self.c = c
        self.seed = seed
        self.classes: list[str] = []
        self._weights: _Weights | None = None

    # -- fitting -----------------------------------------------------------------
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> CharacterClassifier:
        """Fit on real lines; needs at least two distinct labels."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        if len(texts) != len(labels):
            raise ValueError("texts and labels differ in length")
        if len(set(labels)) < 2:
            raise SerifuError(
                f"the character classifier needs lines of at least two speakers, got {sorted(set(labels))}"
            )
        prepared = [_prepare(t) for t in texts]
        try:  # n-grams seen at least twice; tiny corpora fall back to every n-gram
            vectorizer = TfidfVectorizer(
                analyzer="char",
                ngram_range=self.ngram_range,
                lowercase=False,
                sublinear_tf=True,
                min_df=2,
            )
            features = vectorizer.fit_transform(prepared)
        except ValueError:
            vectorizer = TfidfVectorizer(
                analyzer="char", ngram_range=self.ngram_range, lowercase=False, sublinear_tf=True
            )
            features = vectorizer.fit_transform(prepared)
        model = LogisticRegression(
            C=self.c,
            solver="newton-cg",
            max_iter=1000,
            class_weight="balanced",
            random_state=self.seed,
        )
        model.fit(features, list(labels))
        self.classes = [str(c) for c in model.classes_]
        self._weights = _Weights(
            vocabulary={str(k): int(v) for k, v in vectorizer.vocabulary_.items()},
            idf=vectorizer.idf_.astype("float64"),
            coef=model.coef_.astype("float64"),
            intercept=model.intercept_.astype("float64"),
        )
        return self

    # -- prediction --------------------------------------------------------------
    def _require(self) -> _Weights:
        if self._weights is None:
            raise RuntimeError("the classifier is not fitted; call fit() or load() first")
        return self._weights

    def _features(self, texts: Sequence[str]) -> Any:
        import numpy as np
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.preprocessing import normalize

        weights = self._require()
        counts = CountVectorizer(
            analyzer="char",
            ngram_range=self.ngram_range,
            lowercase=False,
            vocabulary=weights.vocabulary,
        ).transform([_prepare(t) for t in texts])
        counts = counts.astype("float64")
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf, as fitted
        return normalize(counts.multiply(weights.idf).tocsr())

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape (len(texts), len(classes)), columns in ``classes`` order.

        Empty or unseen text gets the intercept-only (prior-like) distribution.
        """
        import numpy as np

        weights = self._require()
        if not texts:
            return np.zeros((0, len(self.classes)))
        logits = self._features(texts) @ weights.coef.T + weights.intercept
        logits = np.asarray(logits)
        if len(self.classes) == 2 and logits.shape[1] == 1:
            logits = np.hstack([np.zeros_like(logits), logits])
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most likely speaker of each text."""
        probs = self.predict_proba(texts)
        return [self.classes[i] for i in probs.argmax(axis=1)] if len(texts) else []

    def score(self, texts: Sequence[str], labels: Sequence[str]) -> float:
        """Accuracy on labelled lines."""
        if not texts:
            return 0.0
        return sum(p == y for p, y in zip(self.predict(texts), labels, strict=True)) / len(texts)

    # -- persistence -------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write ``path`` (JSON: classes, vocabulary, settings) and ``path.npz`` (weights)."""
        import io

        import numpy as np

        weights = self._require()
        path = Path(path)
        buffer = io.BytesIO()
        np.savez(buffer, idf=weights.idf, coef=weights.coef, intercept=weights.intercept)
        atomic_write_bytes(path.with_name(path.name + ".npz"), buffer.getvalue())
        meta = {
            "format": "serifu-character-classifier",
            "version": FORMAT_VERSION,
            "ngram_range": list(self.ngram_range),
            "c": self.c,
            "seed": self.seed,
            "classes": self.classes,
            "vocabulary": weights.vocabulary,
        }
        atomic_write_text(path, json.dumps(meta, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> CharacterClassifier:
        """Read a classifier written by :meth:`save` (no pickle involved)."""
        import numpy as np

        path = Path(path)
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            with np.load(path.with_name(path.name + ".npz"), allow_pickle=False) as arrays:
                idf, coef, intercept = arrays["idf"], arrays["coef"], arrays["intercept"]
        except FileNotFoundError as exc:
            raise SerifuError(f"classifier file missing: {exc.filename}", path=path) from None
        except (ValueError, KeyError) as exc:
            raise SerifuError(f"not a Serifu classifier file ({exc})", path=path) from None
        if (
            meta.get("format") != "serifu-character-classifier"
            or meta.get("version") != FORMAT_VERSION
        ):
            raise SerifuError("not a Serifu classifier file (format/version mismatch)", path=path)
        clf = cls(ngram_range=tuple(meta["ngram_range"]), c=meta["c"], seed=meta["seed"])
        clf.classes = list(meta["classes"])
        clf._weights = _Weights(meta["vocabulary"], idf, coef, intercept)
        return clf
