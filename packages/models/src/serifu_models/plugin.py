"""Entry point ``serifu = { models = "serifu_models.plugin" }``: registers the base models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serifu.hookspecs import hookimpl


@hookimpl
def register_base_models(register: Callable[[Any], None]) -> None:
    pass
