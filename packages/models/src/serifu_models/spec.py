"""``ModelSpec``: one base model as a plugin (config, weights, tokenizer, template, LoRA targets)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

GENERATION_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"do_sample": True, "temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1}
)


def _transformers_config(model_type: str, values: Mapping[str, Any]) -> Any:
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **dict(values))


@dataclass(frozen=True)
class ModelSpec:
    """A base model Serifu can load in 4-bit (or full precision) and tune with LoRA."""

    id: str
    description: str
    template: str
    lora_targets: tuple[str, ...]
    model_type: str
    """transformers ``model_type`` of :meth:`build_config`."""
    config: Mapping[str, Any]
    """Architecture values (exact for the report's models)."""
    hub_id: str | None = None
    tokenizer_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra ``AutoTokenizer.from_pretrained`` arguments (the model's tokenizer quirks)."""
    add_special_tokens: bool = True
    """Whether prompts are encoded with the tokenizer's special tokens (BOS)."""
    generation: Mapping[str, Any] = field(default_factory=lambda: dict(GENERATION_DEFAULTS))
    prepare: Callable[[], str] | None = None
    """Makes local weights on first use (conversion, tiny init); returns the folder."""

    def build_config(self) -> Any:
        """The architecture as a ``transformers`` config (random-init models for benchmarks)."""
        return _transformers_config(self.model_type, self.config)

    def weights(self) -> str:
        """Where to load from: a prepared local folder, a copy in the cache, or the hub id."""
        if self.prepare is not None:
            return self.prepare()
        from serifu.paths import cache_dir

        local = cache_dir() / "models" / self.id
        if (local / "config.json").is_file():
            return str(local)
        assert self.hub_id is not None, f"{self.id} has neither weights nor a hub id"
        return self.hub_id

    def load_tokenizer(self, source: str) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, **dict(self.tokenizer_kwargs))
