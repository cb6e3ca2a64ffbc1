"""``[data]``: how datasets are built from scripts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DataConfig(BaseModel):
    """Dataset building options (CLI flags of ``serifu data build`` override these)."""

    model_config = ConfigDict(extra="forbid")
    preset: Literal["report", "none"] = Field(
        default="report", description="Cleaning preset: 'report' = the report's rules exactly."
    )
    format: Literal["lines", "dialogue"] = Field(default="dialogue", description="Dataset format.")
    context_lines: int = Field(
        default=1, ge=1, le=16, description="Dialogue: previous lines kept as context."
    )
    validation_fraction: float = Field(
        default=0.1, ge=0.0, lt=0.5, description="Share of scenes for validation."
    )
    test_fraction: float = Field(
        default=0.1, ge=0.0, lt=0.5, description="Share of scenes for test."
    )
    seed: int = Field(default=0, description="Seed of the scene split.")
