"""decode_levers' variants of the split-key programs (sessions 33 and 34) and of the prompt
pass's compile (session 35): each decoder is built under its variant's tile, warps, combine and
prompt setting, and a variant that names none gets the product's back."""

from __future__ import annotations

from bench.gpu.decode_levers import PRODUCT_KV_FUSED, PRODUCT_KV_TILE, VARIANTS, _decoder
from serifu.accel import split_kv
from tests.accel.test_accel import _models


def test_session_32s_split_key_programs_and_back() -> None:
    assert (split_kv.TILE, split_kv.FUSED) == (PRODUCT_KV_TILE, PRODUCT_KV_FUSED)
    assert PRODUCT_KV_FUSED  # the bench's record of the shipped settings: the combine fused
    model = _models()["llama"]
    try:
        _decoder(model, VARIANTS["s32-default"])
        assert (split_kv.WARPS, split_kv.TILE, split_kv.FUSED) == (8, 16384, False)
        assert split_kv.block_for(256) == 64  # 64 keys whatever the width, as until session 32
        _decoder(model, VARIANTS["s33-default"])
        assert (split_kv.WARPS, split_kv.TILE, split_kv.FUSED) == (None, PRODUCT_KV_TILE, False)
        dec = _decoder(model, VARIANTS["default"])
        assert (split_kv.WARPS, split_kv.TILE, split_kv.FUSED) == (None, PRODUCT_KV_TILE, True)
        assert split_kv.block_for(256) == 32
        assert dec.chunk == 8
        assert _decoder(model, VARIANTS["chunk16"]).chunk == 16
        assert dec.shared_length == 0  # opt-in: one cache length only where the variant says
        layers = model.config.num_hidden_layers
        assert _decoder(model, VARIANTS["shared-length"]).shared_length == layers
        assert dec.compile_prompt  # the prompt pass compiled with the step (since session 35)
        assert not _decoder(model, VARIANTS["s34-default"]).compile_prompt
        both = VARIANTS["glu-down-shared-length"]
        assert both == VARIANTS["glu-down"] | VARIANTS["shared-length"]
    finally:
        split_kv.WARPS, split_kv.TILE, split_kv.FUSED = None, PRODUCT_KV_TILE, PRODUCT_KV_FUSED


def test_every_variants_inductor_options_are_settings_of_this_torch() -> None:
    """``torch.compile(options=...)`` refuses a key inductor does not have: a variant's
    options (``cdt``, ``inductor-deterministic`` …) are checked here, not on the GPU."""
    import torch._inductor.config as inductor_config

    known = inductor_config.get_config_copy()
    options = {k for v in VARIANTS.values() for k in v.get("options", {})}
    assert {"coordinate_descent_tuning", "deterministic"} <= options
    assert options <= set(known), options - set(known)
