"""Loading a resolved base model and its tokenizer (4-bit NF4 or full precision)."""

from __future__ import annotations

import os
from typing import Any

from serifu.modeling.base import ResolvedBase
from serifu.modeling.hub import hub_errors


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_dtype(device: str) -> Any:
    """bf16 on GPUs that support it, fp32 elsewhere (the CPU)."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def nf4_config(device: str) -> Any:
    """QLoRA's quantisation: NF4 with double quantisation, compute in :func:`compute_dtype`."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype(device),
    )


def _trust_remote_code() -> bool:
    return os.environ.get("SERIFU_TRUST_REMOTE_CODE", "") == "1"


def load_tokenizer(base: ResolvedBase) -> Any:
    """The base's tokenizer; a pad token is guaranteed (EOS when the model has none)."""
    source = base.source()
    with hub_errors(source, base.id):
        if base.plugin is not None:
            tok = base.plugin.load_tokenizer(source)
        else:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(source, trust_remote_code=_trust_remote_code())
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(base: ResolvedBase, *, quantize: bool, device: str | None = None) -> Any:
    """The base model in eval mode: NF4 4-bit (``quantize``) or full precision; safetensors only."""
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    dtype = compute_dtype(device)
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "use_safetensors": True,
        "trust_remote_code": _trust_remote_code(),
    }
    if quantize:
        kwargs["quantization_config"] = nf4_config(device)
        kwargs["device_map"] = {"": device}
    source = base.source()
    with hub_errors(source, base.id):
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if not quantize:
        model.to(device)  # type: ignore[arg-type]
    model.eval()
    return model
