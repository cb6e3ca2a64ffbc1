"""The evaluation's query sets: 100 conversation openers (package data) + a card's profile questions."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from serifu.errors import SerifuError

if TYPE_CHECKING:
    from serifu.characters import CharacterCard

OPENER = "opener"
PROFILE = "profile"


@dataclass(frozen=True)
class Query:
    """One line the protagonist says; profile questions carry their expected-answer keywords."""

    kind: str
    """``"opener"`` or ``"profile"``."""
    text: str
    index: int
    """Position within its kind (0-based)."""
    answers: list[list[str]] = field(default_factory=list)


def parse_query_lines(text: str, *, path: Path | str) -> list[str]:
    """One query per line; blank lines and ``#`` comments are skipped."""
    queries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\t" in line:
            raise SerifuError(
                "a query may not contain a tab; write one query per line", path=path, line=number
            )
        queries.append(line)
    if not queries:
        raise SerifuError(
            "the query file has no queries (one per line, '#' starts a comment)", path=path
        )
    return queries


def builtin_openers() -> list[str]:
    """The 100 conversation openers shipped with Serifu."""
    source = resources.files("serifu.queries") / "openers.txt"
    return parse_query_lines(source.read_text(encoding="utf-8"), path=str(source))


def read_openers(path: Path) -> list[str]:
    """A user's own openers file (UTF-8, one per line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SerifuError("query file not found", path=path) from None
    except UnicodeDecodeError as exc:
        raise SerifuError(f"query file is not UTF-8 (byte offset {exc.start})", path=path) from None
    except OSError as exc:  # a folder, a path through a file, no permission …
        raise SerifuError(
            f"cannot read the query file ({exc.strerror or exc})", path=path
        ) from None
    return parse_query_lines(text, path=path)


def build_queries(
    card: CharacterCard | None, openers: list[str] | None = None, *, limit: int | None = None
) -> list[Query]:
    """Openers then profile questions; ``limit`` keeps the first N of each kind."""
    opener_texts = builtin_openers() if openers is None else openers
    questions = list(card.questions) if card is not None else []
    if limit is not None:
        opener_texts, questions = opener_texts[:limit], questions[:limit]
    result = [Query(OPENER, text, i) for i, text in enumerate(opener_texts)]
    result += [
        Query(PROFILE, q.q, i, [list(g) for g in q.answers]) for i, q in enumerate(questions)
    ]
    return result
