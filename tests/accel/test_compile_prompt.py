"""The prompt pass compiled with the step (session 35): one compile, its length dynamic, serves every
prompt length, the tokens equal the eager decoder's, and a compile that fails leaves the
prompt eager with the reason in ``graph_error``. On the CPU under ``aot_eager`` (Dynamo's
tracing and AOT autograd's graphs, without inductor's code generation)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serifu.accel.decode import StaticDecoder
from tests.accel.test_accel import NAMES, _models


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return _models()


def _prompts(t: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(t)
    ids = torch.randint(3, 300, (1, t))
    return ids, torch.ones_like(ids)


def _compiled(model: Any, **kw: Any) -> StaticDecoder:
    decoder = StaticDecoder(model, max_len=40, graph=False, compile=True, **kw)
    decoder.compile_backend = "aot_eager"
    return decoder


def _tokens(decoder: StaticDecoder, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.cat(list(decoder.greedy(ids, mask, max_new_tokens=5)), dim=1)


@pytest.mark.parametrize("name", NAMES)
def test_one_compile_serves_every_prompt_length(models: dict[str, Any], name: str) -> None:
    torch._dynamo.reset()
    model = models[name].eval()
    eager = StaticDecoder(model, max_len=40, graph=False)
    decoder = _compiled(model)
    assert decoder.compile_prompt
    from torch._dynamo.utils import counters

    for t in (9, 17, 12, 21):  # the first prompt eager: it initialises the cache
        ids, mask = _prompts(t)
        assert torch.equal(_tokens(decoder, ids, mask), _tokens(eager, ids, mask))
        assert (decoder._compiled_prompt is None) == (t == 9)
        if t == 17:
            frames = counters["stats"]["unique_graphs"]
    assert decoder.graph_error is None
    assert counters["stats"]["unique_graphs"] == frames  # no recompile for a new length
    logits = decoder.prefill(*_prompts(15))  # the public prompt pass takes it too
    # (AOT autograd's decompositions may round a float32 sum differently)
    torch.testing.assert_close(logits, eager.prefill(*_prompts(15)), rtol=1e-5, atol=1e-5)
    assert counters["stats"]["unique_graphs"] == frames


def test_off_unless_the_step_is_compiled_or_when_asked(
    models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = models["llama"].eval()
    monkeypatch.delenv("SERIFU_DECODE_COMPILE", raising=False)
    assert not StaticDecoder(model, max_len=40, graph=False).compile_prompt
    assert not _compiled(model, compile_prompt=False).compile_prompt
    monkeypatch.setenv("SERIFU_DECODE_COMPILE_PROMPT", "0")
    assert not _compiled(model).compile_prompt


def test_a_failing_compile_leaves_the_prompt_eager(models: dict[str, Any]) -> None:
    torch._dynamo.reset()
    model = models["gemma3"].eval()

    def broken(gm: Any, inputs: Any) -> Any:
        raise RuntimeError("no compiler here")

    decoder = StaticDecoder(model, max_len=40, graph=False, compile=True)
    decoder.compile_backend = broken  # type: ignore[assignment]
    decoder.compile = False  # the step eager: only the prompt's compile fails
    ids, mask = _prompts(11)
    want = _tokens(StaticDecoder(model, max_len=40, graph=False), ids, mask)
    assert torch.equal(_tokens(decoder, ids, mask), want)  # eager: it initialises the cache
    assert decoder.compile_prompt and decoder.graph_error is None
    assert torch.equal(_tokens(decoder, ids, mask), want)  # the compile fails: eager again
    assert not decoder.compile_prompt
    assert decoder.graph_error is not None and "prompt compile" in decoder.graph_error
    assert torch.equal(_tokens(decoder, ids, mask), want)  # eager from then on


@pytest.mark.slow
def test_the_embedded_gemma_compiles_its_prompt_once_with_inductor() -> None:
    """The real path: inductor's code for gemma-3-270m's prompt pass (sliding-window and full
    layers; ~45 s to compile on two CPU threads), the same tokens as the eager decoder at four
    lengths, one compile for all of them."""
    from transformers import AutoModelForCausalLM

    from serifu_models.gemma import prepare_gemma

    torch._dynamo.reset()
    folder = prepare_gemma()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    eager = StaticDecoder(model, max_len=160, graph=False)
    decoder = StaticDecoder(model, max_len=160, graph=False, compile=True)
    decoder.compile = False  # the step eager: this times and checks the prompt's compile alone
    from torch._dynamo.utils import counters

    for t in (40, 90, 64, 120):
        torch.manual_seed(t)
        ids = torch.randint(1000, 200_000, (1, t))
        mask = torch.ones_like(ids)
        assert torch.equal(_tokens(decoder, ids, mask), _tokens(eager, ids, mask)), t
        if t == 90:
            frames = counters["stats"]["unique_graphs"]
    assert decoder._compiled_prompt is not None and decoder.graph_error is None
    assert frames >= 1 and counters["stats"]["unique_graphs"] == frames
