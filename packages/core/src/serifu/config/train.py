"""``[train]``: QLoRA training (the report's settings are the defaults)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LoraConfigModel(BaseModel):
    """LoRA adapter settings."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(default=4, ge=1, description="LoRA rank.")
    alpha: int = Field(default=8, ge=1, description="LoRA alpha.")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="LoRA dropout.")
    targets: list[str] | None = Field(
        default=None, description="Target modules; default: the model plugin's."
    )


class TrainConfig(BaseModel):
    """Training options (CLI flags of ``serifu train`` override these)."""

    model_config = ConfigDict(extra="forbid")
    epochs: float = Field(default=3.0, gt=0, description="Epochs (the report used 3).")
    max_steps: int | None = Field(
        default=None, ge=1, description="Stop after this many optimizer steps."
    )
    learning_rate: float = Field(default=2e-4, gt=0, description="Peak learning rate.")
    batch_size: int = Field(default=8, ge=1, description="Examples per step (the report used 8).")
    seed: int = Field(default=0, description="Random seed.")
    quantize_4bit: bool = Field(default=True, description="Load the base in NF4 4-bit (QLoRA).")
    system_prompt: bool = Field(
        default=True, description="Dialogue data: include the character's system prompt."
    )
    lora: LoraConfigModel = Field(default_factory=LoraConfigModel, description="LoRA settings.")
