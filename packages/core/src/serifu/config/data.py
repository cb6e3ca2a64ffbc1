"""``[data]``: how datasets are built from scripts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    folds: int = Field(
        default=0,
        ge=0,
        le=50,
        description=(
            "Cross-validation: deal the shuffled scenes into this many folds and hold out fold "
            "`fold` (0 = the plain split by the two fractions above)."
        ),
    )
    fold: int = Field(default=0, ge=0, description="Which fold is held out (with `folds`).")
    nfkc: bool = Field(default=False, description="Extra rule: Unicode NFKC normalisation first.")
    drop_directions: bool = Field(
        default=False, description="Extra rule: remove bracketed directions （…）."
    )
    min_chars: int | None = Field(default=None, ge=1, description="Extra rule: drop shorter lines.")
    max_chars: int | None = Field(default=None, ge=1, description="Extra rule: drop longer lines.")
    dedupe: bool = Field(default=False, description="Extra rule: drop exact duplicate lines.")
    jsonl: bool = Field(default=False, description="Also export each split as <split>.jsonl.")
    augment: float = Field(
        default=0.0,
        ge=0.0,
        le=10.0,
        description=(
            "Dialogue from a character card: add this many profile question→answer pairs per "
            "real training pair, in her voice (serifu.data.augment), to the train split only."
        ),
    )

    @model_validator(mode="after")
    def _lengths_ordered(self) -> DataConfig:
        if (
            self.min_chars is not None
            and self.max_chars is not None
            and self.min_chars > self.max_chars
        ):
            raise ValueError("min_chars must not exceed max_chars")
        if self.folds == 1 or self.fold >= max(self.folds, 1):
            raise ValueError(f"fold {self.fold} of {self.folds}: need folds >= 2 and fold < folds")
        return self
