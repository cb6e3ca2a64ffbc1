"""Loading base models (4-bit NF4 or full precision) and their tokenizers."""

from serifu.modeling.base import ResolvedBase, resolve_base
from serifu.modeling.default import default_model
from serifu.modeling.load import (
    compute_dtype,
    default_device,
    load_model,
    load_tokenizer,
    nf4_config,
)
from serifu.modeling.spec import ModelSpec

__all__ = [
    "ModelSpec",
    "ResolvedBase",
    "compute_dtype",
    "default_device",
    "default_model",
    "load_model",
    "load_tokenizer",
    "nf4_config",
    "resolve_base",
]
