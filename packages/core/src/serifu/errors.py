"""User-facing errors: one paragraph, exit code 2, no traceback (unless --debug)."""

from __future__ import annotations

from pathlib import Path


class SerifuError(Exception):
    """An error caused by the user's input or environment, with a message fit to print.

    The CLI prints ``str(error)`` as one paragraph and exits with ``exit_code``.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}" + (f", line {line}" if line is not None else "") + ": "
        super().__init__(where + message)
        self.path = path
        self.line = line
