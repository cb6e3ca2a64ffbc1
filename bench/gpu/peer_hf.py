"""The HF peer for replies: ``model.generate`` with a static KV cache and ``torch.compile``.

What the transformers docs recommend for fast generation ("static kv-cache and
torch.compile"), on the bf16 model with the LoRA merged (its best case: no adapter layers):
a :class:`~transformers.StaticCache` made once and passed to ``generate`` (reset before each
prompt, as the docs say for reuse), and the decode step compiled by ``generate`` itself
(``compile_config=CompileConfig(mode="reduce-overhead", fullgraph=True)``: inductor kernels
replayed as CUDA graphs); the prompt pass runs eagerly, as ``generate`` does it.

The first GPU run wrapped ``model.forward`` in ``torch.compile(mode="reduce-overhead")``
(the docs' older snippet) and failed: "accessing tensor output of CUDAGraphs that has been
overwritten by a subsequent run". That wrap also compiles the prompt pass, and the static
cache allocates its tensors lazily inside the first forward, so they became outputs of a
CUDA graph that later replays overwrote. ``generate``'s own compile runs the prompt pass
(and so that allocation) eagerly and compiles only the one-token step.

If a configuration still fails, the next is tried and the note says why:
fullgraph=True, then graph breaks allowed, then ``mode="max-autotune-no-cudagraphs"``
(inductor kernels without CUDA graphs). Greedy, ``min_new_tokens`` forces every reply to its
full length. Compilation happens in the warm-up calls, which are not timed. On the CPU
(``--tiny``) nothing is compiled (inductor there would only test the compiler).
"""

from __future__ import annotations

from typing import Any

import torch

MODES: tuple[tuple[str, bool], ...] = (
    ("reduce-overhead", True),
    ("reduce-overhead", False),
    ("max-autotune-no-cudagraphs", False),
)
"""(torch.compile mode, fullgraph), tried in this order until one runs."""


class HFStatic:
    """``generate`` on ``model`` with a reused static cache (+ its compiled step on CUDA)."""

    def __init__(self, model: Any, *, compile: bool | None = None):
        from serifu.accel.decode import _cache_kwarg

        self.model = model
        self.compile = torch.cuda.is_available() if compile is None else compile
        self.level = 0
        self.failures: list[str] = []
        self._cache_kw = _cache_kwarg(model)  # "cache" in transformers >= 5.2x
        self._cache: Any = None
        self._cache_shape = (0, 0)

    @property
    def mode(self) -> str:
        return MODES[self.level][0]

    @property
    def fullgraph(self) -> bool:
        return MODES[self.level][1]

    def _static_cache(self, batch: int, length: int) -> Any:
        """One cache, made again only for a larger batch or length; reset per prompt."""
        from transformers import StaticCache

        rows, room = self._cache_shape
        if self._cache is None or batch != rows or length > room:
            self._cache = None
            if self.compile:
                torch.cuda.empty_cache()
            self._cache = StaticCache(config=self.model.config, max_cache_len=length)
            self._cache_shape = (batch, length)
        else:
            self._cache.reset()
        return self._cache

    def generate(self, ids: torch.Tensor, mask: torch.Tensor, new: int) -> torch.Tensor:
        while True:
            try:
                return self._generate(ids, mask, new)
            except Exception as exc:
                if not self.compile or self.level + 1 >= len(MODES):
                    raise
                self.failures.append(
                    f"mode={self.mode} fullgraph={self.fullgraph} failed "
                    f"({type(exc).__name__}: {str(exc)[:160]})"
                )
                self.level += 1
                self._forget_compiled()
                self._cache = None  # its tensors may belong to a failed graph

    def _generate(self, ids: torch.Tensor, mask: torch.Tensor, new: int) -> torch.Tensor:
        cache = self._static_cache(ids.shape[0], ids.shape[1] + new)
        # the peer runs PyTorch's sdpa and cuBLAS, as an HF user would, even where Serifu's
        # decoder has switched the shared model to its Triton levers (serifu.accel.split_kv,
        # serifu.accel.gemv); they are switched back on after
        from serifu.accel.gemv import drop_gemv, folded_in, use_gemv
        from serifu.accel.gemv_fuse import fused_groups, glu_mlps
        from serifu.accel.residual_fold import residual_layers

        attn = self.model.config._attn_implementation
        if attn != "sdpa" and attn.startswith("serifu"):
            self.model.set_attn_implementation("sdpa")
        folded, fused, glu = folded_in(self.model), fused_groups(self.model), glu_mlps(self.model)
        residual = residual_layers(self.model)
        gemv_layers = drop_gemv(self.model)
        try:
            out = self._generate_on(ids, mask, new, cache)
        finally:
            if self.model.config._attn_implementation != attn:
                self.model.set_attn_implementation(attn)
            if gemv_layers:
                use_gemv(
                    self.model, fold=folded > 0, fuse=fused > 0, glu=glu > 0, residual=residual > 0
                )
        return out[:, ids.shape[1] :]

    def _generate_on(self, ids: torch.Tensor, mask: torch.Tensor, new: int, cache: Any) -> Any:
        from transformers import CompileConfig

        return self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
            use_cache=True,  # the benchmarks' models are built with use_cache=False (training)
            compile_config=CompileConfig(mode=self.mode, fullgraph=self.fullgraph),
            disable_compile=not self.compile,
            **{self._cache_kw: cache},
        )

    def describe(self) -> str:
        how = (
            f"generate's compiled step (CompileConfig mode={self.mode!r}, "
            f"fullgraph={self.fullgraph}), prompt pass eager"
            if self.compile
            else "not compiled (CPU)"
        )
        text = f"hf-static: generate, StaticCache reused (reset per prompt), {how}"
        if self.failures:
            text += "; before: " + "; ".join(self.failures)
        return text

    def _forget_compiled(self) -> None:
        """Drop the step ``generate`` compiled (kept on the model) and dynamo's caches."""
        for name in ("_compiled_call", "_last_compile_config"):
            self.model.__dict__.pop(name, None)
        torch._dynamo.reset()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.empty_cache()

    def close(self) -> None:
        """Drop the cache and the compiled graphs."""
        self._cache = None
        if self.compile:
            self._forget_compiled()
