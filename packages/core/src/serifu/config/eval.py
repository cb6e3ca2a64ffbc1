"""``[eval]``: the evaluation protocol."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EvalConfig(BaseModel):
    """Evaluation options (CLI flags of ``serifu eval`` override these)."""

    model_config = ConfigDict(extra="forbid")
    evaluators: list[str] | None = Field(
        default=None, description="Evaluator ids; default: all registered."
    )
    system_prompt: Literal["on", "off", "both"] = Field(
        default="on", description="Generate with the character's system prompt, without, or both."
    )
    limit: int | None = Field(
        default=None,
        ge=0,
        description="Keep only the first N openers, N profile questions and N held-out pairs.",
    )
    max_new_tokens: int = Field(default=48, ge=1, description="Tokens generated per reply.")
    batch_size: int = Field(default=16, ge=1, description="Replies generated per batch.")
    seed: int = Field(default=0, description="Sampling seed (batch i uses seed + i).")
