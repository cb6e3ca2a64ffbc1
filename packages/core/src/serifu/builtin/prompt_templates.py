"""Built-in prompt templates: ``line``, ``llama2``, ``novel``, ``gemma``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serifu.hookspecs import hookimpl


@hookimpl
def register_prompt_templates(register: Callable[[Any], None]) -> None:
    from serifu.prompts import builtin_templates

    for template in builtin_templates():
        register(template)
