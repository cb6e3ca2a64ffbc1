"""``train.autocast``: which dtype the forward autocasts to (the GPU measurement of what it
saves lives in docs/benchmarks.md, ``bench/gpu/train_speed.py --rows liger-autocast``)."""

from __future__ import annotations

import torch

from serifu.config.train import TrainConfig
from serifu.training.precision import autocast_dtype, forward_precision


def _model(dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    from serifu_models.tiny import TINY_MODELS

    spec = next(m for m in TINY_MODELS if m.id == "tiny-llama")
    return AutoModelForCausalLM.from_config(spec.build_config(), dtype=dtype)


def test_autocast_only_on_cuda_with_a_half_precision_base_and_asked_for() -> None:
    on, off = TrainConfig(autocast="on"), TrainConfig()
    bf16, fp32 = _model(torch.bfloat16), _model(torch.float32)
    assert autocast_dtype(bf16, on, "cuda:0") == torch.bfloat16
    assert autocast_dtype(_model(torch.float16), on, "cuda") == torch.float16
    assert autocast_dtype(bf16, off, "cuda") is None  # the default
    assert autocast_dtype(bf16, on, "cpu") is None
    assert autocast_dtype(fp32, on, "cuda") is None  # nothing to cast down to


def test_no_dtype_means_no_autocast() -> None:
    with forward_precision(None):
        assert not torch.is_autocast_enabled("cuda")
