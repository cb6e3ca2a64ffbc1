"""Loading base models (4-bit NF4 or full precision) and their tokenizers."""

from serifu.modeling.base import ResolvedBase, resolve_base
from serifu.modeling.load import (
    compute_dtype,
    default_device,
    load_model,
    load_tokenizer,
    nf4_config,
)

__all__ = [
    "ResolvedBase",
    "compute_dtype",
    "default_device",
    "load_model",
    "load_tokenizer",
    "nf4_config",
    "resolve_base",
]
