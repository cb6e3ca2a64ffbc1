"""The one place that looks through a PEFT wrapper to the model underneath."""

from __future__ import annotations

from typing import Any


def base_model_of(model: Any) -> Any:
    """The transformers model inside a ``PeftModel`` (LoRA), or ``model`` itself."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model
