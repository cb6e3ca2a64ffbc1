"""Built-in evaluators (filled in by its issue)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serifu.hookspecs import hookimpl


@hookimpl
def register_evaluators(register: Callable[[Any], None]) -> None:
    pass
