"""Static-KV-cache decoding; on CUDA the one-token step is captured once as a CUDA graph.

``model.generate`` pays Python and kernel-launch overhead for every new token (hundreds of
small kernels per step). Here the step is recorded once into a CUDA graph over static
buffers (token ids, positions, attention mask, logits) and replayed: a step then costs
one launch. Prompts of different lengths in one batch are left-padded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch


def _cache_kwarg(model: Any) -> str:
    """transformers >= 5.2x calls the KV cache ``cache``; earlier releases ``past_key_values``."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _unslide(cache: Any, max_len: int) -> None:
    """Sliding-window layers keep a Python-side length that a CUDA graph cannot update.
    While the whole conversation fits in the window they behave exactly like full layers,
    so use full static layers there."""
    from transformers.cache_utils import StaticLayer, StaticSlidingWindowLayer

    for i, layer in enumerate(cache.layers):
        window = getattr(layer, "max_cache_len", max_len)
        if isinstance(layer, StaticSlidingWindowLayer) and max_len <= window:
            cache.layers[i] = StaticLayer(max_cache_len=max_len)


class StaticDecoder:
    """Token-by-token decoding with a static cache of ``max_len`` positions for ``batch_size`` rows."""

    def __init__(self, model: Any, *, max_len: int, batch_size: int = 1, graph: bool | None = None):
        from transformers import StaticCache

        self.model = model
        self.max_len = max_len
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        self.use_graph = (self.device.type == "cuda") if graph is None else graph
        self._kw = _cache_kwarg(model)
        params = inspect.signature(model.forward).parameters
        # only the last position's logits: a prompt x 262k-vocabulary tensor is gigabytes
        self._extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.cache = StaticCache(config=model.config, max_cache_len=max_len)
        _unslide(self.cache, max_len)
        b = batch_size
        self.step_ids = torch.zeros(b, 1, dtype=torch.long, device=self.device)
        self.step_pos = torch.zeros(b, 1, dtype=torch.long, device=self.device)
        self.mask = torch.zeros(b, max_len, dtype=torch.long, device=self.device)
        self.logits: torch.Tensor | None = None
        self._graph: Any = None
        self.graph_error: str | None = None

    # -- the model calls -------------------------------------------------------------
    def _forward(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=pos,
            use_cache=True,
            **self._extra,
            **{self._kw: self.cache},
        )
        return out.logits[:, -1, :]

    def _slot(self) -> torch.Tensor:
        """The cache position the next token is written to (shared by all rows)."""
        layer = self.cache.layers[0]
        length = (
            layer.cumulative_length
            if hasattr(layer, "cumulative_length")
            else self.cache.get_seq_length()
        )
        return torch.as_tensor(length, device=self.device).view(1, 1).expand(self.batch_size, 1)

    def _step_body(self) -> torch.Tensor:
        self.mask.scatter_(1, self._slot(), 1)
        logits = self._forward(self.step_ids, self.step_pos)
        self.step_pos.add_(1)
        return logits

    def _capture(self) -> None:
        """Warm up on a side stream, rewind the cache, then record the step."""
        assert self.logits is not None
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        saved = (self.mask.clone(), self.step_pos.clone())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step_body()
        torch.cuda.current_stream().wait_stream(stream)
        self.cache.crop(-2)  # rewind the two warm-up steps
        self.mask.copy_(saved[0])
        self.step_pos.copy_(saved[1])
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_logits = self._step_body()
        self.mask.copy_(saved[0])
        self.step_pos.copy_(saved[1])
        self._graph = graph
        self._graph_logits = static_logits

    # -- public API --------------------------------------------------------------------
    @torch.no_grad()
    def prefill(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run the (left-padded) prompts; return the logits of their last position."""
        b, t = input_ids.shape
        if b != self.batch_size:
            raise ValueError(f"batch of {b} prompts for a decoder of batch_size {self.batch_size}")
        if t >= self.max_len:
            raise ValueError(f"prompt of {t} tokens does not fit max_len {self.max_len}")
        self.cache.reset()
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        self.mask.zero_()
        self.mask[:, :t] = attention_mask.to(self.device)
        pos = (attention_mask.cumsum(-1) - 1).clamp(min=0).to(self.device)
        logits = self._forward(input_ids.to(self.device), pos)
        self.step_pos.copy_(attention_mask.sum(-1, keepdim=True).to(self.device))
        self.logits = logits
        return logits

    @torch.no_grad()
    def step(self, next_ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per row; return the next logits."""
        self.step_ids.copy_(next_ids.view(self.batch_size, 1))
        if self.use_graph and self._graph is None and self.graph_error is None:
            try:
                self._capture()
            except Exception as exc:  # fall back to eager steps, but say why
                self.graph_error = f"{type(exc).__name__}: {exc}"
                self.use_graph = False
                torch.cuda.synchronize()
        if self._graph is not None:
            self._graph.replay()
            return self._graph_logits
        return self._step_body()

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        max_new_tokens: int,
        pick: Callable[[torch.Tensor], torch.Tensor] | None = None,
        should_stop: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield the next token of every row (shape ``[batch]``) until all rows stopped.

        ``pick`` turns logits into token ids (default greedy); ``should_stop`` maps the
        tokens just chosen to a bool tensor of rows that are finished.
        """
        pick = pick or (lambda logits: logits.argmax(-1))
        room = self.max_len - input_ids.shape[1]
        logits = self.prefill(input_ids, attention_mask)
        done = torch.zeros(self.batch_size, dtype=torch.bool, device=self.device)
        for i in range(min(max_new_tokens, room)):
            tokens = pick(logits)
            yield tokens
            if should_stop is not None:
                done |= should_stop(tokens)
                if bool(done.all()):
                    return
            if i + 1 < min(max_new_tokens, room):
                logits = self.step(tokens)
