"""``[eval]``: the evaluation protocol."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvalConfig(BaseModel):
    """Evaluation options (CLI flags of ``serifu eval`` override these)."""

    model_config = ConfigDict(extra="forbid")
    evaluators: list[str] | None = Field(
        default=None, description="Evaluator ids; default: all registered."
    )
    max_new_tokens: int = Field(default=48, ge=1, description="Tokens generated per reply.")
    batch_size: int = Field(default=8, ge=1, description="Replies generated per batch.")
    seed: int = Field(default=0, description="Sampling seed.")
