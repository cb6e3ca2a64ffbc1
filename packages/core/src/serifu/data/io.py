"""Reading scripts into utterances: decode, pick the data source, read, check."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError
from serifu.kinds import DataSource, Utterance


def get_source(source_id: str) -> DataSource:
    """The registered data source ``source_id``; unknown ids list the known ones."""
    from serifu import plugins

    source: DataSource = plugins.get_data_source(source_id)
    return source


def read_file(
    path: Path | str,
    source: DataSource,
    options: Mapping[str, Any] | None = None,
    encoding: str | None = None,
    *,
    max_line_chars: int | None = None,
) -> tuple[list[Utterance], str]:
    """Utterances of one file and the encoding it was decoded with.

    No line of the file and no utterance (which may join several lines) is longer than
    ``max_line_chars`` (default :data:`~serifu.data.encoding.MAX_LINE_CHARS`): a longer
    one is a :class:`SerifuError` naming the file and line.
    """
    from serifu.data.encoding import MAX_LINE_CHARS, read_text_file

    limit = MAX_LINE_CHARS if max_line_chars is None else max_line_chars
    if limit < 1:
        raise SerifuError(f"--max-line-chars must be at least 1, got {limit}")
    path = Path(path)
    decoded = read_text_file(path, encoding, max_line_chars=limit)
    utterances = source.read(decoded.text, path=path, options=dict(options or {}))
    for u in utterances:
        if len(u.text) > limit:
            raise SerifuError(
                f"a spoken line is {len(u.text):,} characters long, over the limit of "
                f"{limit:,} (an unclosed quote or tag joining many lines?); raise the limit "
                "with --max-line-chars if it is intended",
                path=path,
                line=u.line,
            )
    if not utterances:
        raise SerifuError(
            f"no spoken lines found by data source {source.id!r}; is this the right --source?",
            path=path,
        )
    return utterances, decoded.encoding


def read_utterances(
    paths: Sequence[Path | str],
    source_id: str,
    options: Mapping[str, Any] | None = None,
    encoding: str | None = None,
    *,
    max_line_chars: int | None = None,
) -> list[Utterance]:
    """All utterances of ``paths`` read with data source ``source_id``, in file order."""
    if not paths:
        raise SerifuError("no input files given")
    source = get_source(source_id)
    out: list[Utterance] = []
    for path in paths:
        out.extend(read_file(path, source, options, encoding, max_line_chars=max_line_chars)[0])
    return out


def speaker_counts(utterances: Sequence[Utterance]) -> list[tuple[str, int]]:
    """(speaker, lines) sorted by lines, most first (ties by name)."""
    counts = Counter(u.speaker for u in utterances)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def check_speaker(utterances: Sequence[Utterance], speaker: str) -> None:
    """A :class:`SerifuError` listing the speakers that exist when ``speaker`` has no lines."""
    if any(u.speaker == speaker for u in utterances):
        return
    top = speaker_counts(utterances)
    listed = ", ".join(f"{name} ({n})" for name, n in top[:15])
    more = f" and {len(top) - 15} more" if len(top) > 15 else ""
    raise SerifuError(f"speaker {speaker!r} has no lines; speakers found: {listed}{more}")
