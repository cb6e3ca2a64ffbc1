"""Retrieve the k real exchanges (protagonist line → her reply) most similar to a query.

BM25 from the maintained ``bm25s`` library over character bigrams (Japanese has no spaces;
bigrams need no dictionary and match inflected forms well enough for short lines).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = "{name}の実際の会話の例："
ADAPTER_FILE = "examples.json"
"""Her training split's exchanges, written next to an adapter by training: what retrieval
may show for a character without a pack (a play's speaker)."""


def bigrams(text: str) -> list[str]:
    """Character bigrams of the NFKC text without spaces and punctuation (unigram if short)."""
    chars = [
        c
        for c in unicodedata.normalize("NFKC", text)
        if not c.isspace() and not unicodedata.category(c).startswith("P")
    ]
    if len(chars) < 2:
        return chars or ["∅"]
    return [a + b for a, b in zip(chars, chars[1:], strict=False)]


@dataclass
class ExampleRetriever:
    """BM25 index over ``pairs`` (query, reply); :meth:`render` gives the prompt block."""

    pairs: Sequence[tuple[str, str]]
    k: int = 3
    protagonist: str = "主人公"
    _index: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import bm25s

        self.pairs = [(q, r) for q, r in self.pairs if q.strip() and r.strip()]
        if self.pairs:
            self._index = bm25s.BM25()
            self._index.index([bigrams(q) for q, _ in self.pairs], show_progress=False)

    def retrieve(self, query: str, k: int | None = None) -> list[tuple[str, str]]:
        """The ``k`` most similar exchanges, best first (fewer if the index is smaller)."""
        k = min(k or self.k, len(self.pairs))
        if self._index is None or k <= 0:
            return []
        docs, scores = self._index.retrieve([bigrams(query)], k=k, show_progress=False)
        return [self.pairs[int(i)] for i, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def render(self, query: str, name: str) -> str:
        """The block added to the system prompt ("" when nothing matches)."""
        found = self.retrieve(query)
        if not found:
            return ""
        lines = [HEADER.format(name=name)]
        for q, r in found:
            lines.append(f"{self.protagonist}「{q}」")
            lines.append(f"{name}「{r}」")
        return "\n".join(lines)


def write_adapter_examples(folder: Path, pairs: Iterable[tuple[str, str]]) -> None:
    """Keep her training exchanges next to an adapter (:data:`ADAPTER_FILE`), each once."""
    kept = list(
        dict.fromkeys((str(q), str(r)) for q, r in pairs if str(q).strip() and str(r).strip())
    )
    record = {"what": "(protagonist line, her reply) pairs of her training split", "pairs": kept}
    text = json.dumps(record, ensure_ascii=False)
    (Path(folder) / ADAPTER_FILE).write_text(text, encoding="utf-8")


def read_adapter_examples(folder: Path | None) -> list[tuple[str, str]]:
    """Her exchanges kept with an adapter; empty when it has none (or an unreadable file:
    retrieval then has nothing to show, as for adapters trained before it existed)."""
    path = Path(folder) / ADAPTER_FILE if folder is not None else None
    if path is None or not path.is_file():
        return []
    try:
        pairs = json.loads(path.read_text(encoding="utf-8"))["pairs"]
        return [(str(q), str(r)) for q, r in pairs]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return []
