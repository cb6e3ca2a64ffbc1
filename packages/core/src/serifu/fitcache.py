"""Fitted scikit-learn pipelines kept in Serifu's cache, so a reply never waits for a refit.

The reranker's two classifiers (the cast's voice classifier and the profile-question
classifier, :mod:`serifu.profile_intent`) are fitted from the package's own data: 5-10 s
on a CPU, paid by the first reranked reply of every process (chat, game, server).
:func:`cached_fit` keys a fitted pipeline by a hash of everything it was fitted from
(texts, labels, settings, the scikit-learn version), stores it as a skops archive (no
pickle; loading refuses any type outside scikit-learn, numpy and scipy, as
:class:`serifu.evaluation.classifier.CharacterClassifier` does), and refits when the
archive is missing, unreadable or foreign. A cache that cannot be written is not an error,
and without skops (it comes with ``serifu[eval]``; chat needs only scikit-learn) every
process simply fits again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cache_path(name: str, material: Any) -> Path:
    """Where the pipeline fitted from ``material`` (JSON-able) is kept."""
    import sklearn

    from serifu.paths import cache_dir

    raw = json.dumps([material, sklearn.__version__], ensure_ascii=False, sort_keys=True)
    key = hashlib.sha256(raw.encode()).hexdigest()[:24]
    return cache_dir() / "fitted" / f"{name}-{key}.skops"


def load_trusted(data: bytes) -> Any | None:
    """A skops archive's object, or None when it is unreadable or holds a foreign type."""
    import skops.io as sio

    from serifu.evaluation.classifier import TRUSTED_PREFIXES

    try:
        untrusted = sio.get_untrusted_types(data=data)
        if any(not t.startswith(TRUSTED_PREFIXES) for t in untrusted):
            return None
        return sio.loads(data, trusted=untrusted)
    except Exception:  # not a zip, truncated, another skops format: refit instead
        return None


def cached_fit(name: str, material: Any, fit: Callable[[], Any]) -> Any:
    """The pipeline ``fit()`` makes from ``material``, from the cache when it is there."""
    try:
        import skops.io as sio
    except ImportError:  # no archive format: fit in this process, cache nothing
        return fit()

    from serifu.errors import SerifuError
    from serifu.fsutil import atomic_write_bytes

    path = cache_path(name, material)
    try:
        found = load_trusted(path.read_bytes())
    except OSError:
        found = None
    if found is not None:
        return found
    fitted = fit()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, sio.dumps(fitted))
    except (OSError, SerifuError):
        pass  # a read-only or full cache: the next process fits again
    return fitted
