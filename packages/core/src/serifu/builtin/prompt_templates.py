"""Built-in prompt templates (filled in by its issue)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serifu.hookspecs import hookimpl


@hookimpl
def register_prompt_templates(register: Callable[[Any], None]) -> None:
    pass
