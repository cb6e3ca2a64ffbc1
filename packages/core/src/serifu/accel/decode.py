"""Static-KV-cache decoding; on CUDA the one-token step is captured once as a CUDA graph.

``model.generate`` pays Python and kernel-launch overhead for every new token (hundreds of
small kernels per step). Here the step is recorded once into a CUDA graph over static
buffers (token ids, positions, attention mask, logits) and replayed: a step then costs
one launch. Prompts of different lengths in one batch are left-padded.

:meth:`StaticDecoder.greedy` is the fast greedy path: the pick (argmax over optionally
masked logits), the stop check and feeding the token back all run on the device inside the
graph, ``chunk`` steps are captured as one graph, and the host syncs once per chunk (to see
whether every row stopped). The prompt pass is captured too (one graph per prompt length).
With ``logprobs=True`` it also writes each chosen token's log-probability (under the masked
distribution, temperature 1: what the chat loop reports) to ``out_logprobs``, on the device.
Each lever is switchable for an honest ablation: ``chunk=1`` (or ``SERIFU_DECODE_CHUNK=1``)
syncs every token; ``graph_prefill=False`` (``SERIFU_GRAPH_PREFILL=0``) runs the prompt
eagerly; ``graph=False`` runs everything eagerly (the CPU path, which tests the same code).

Two Triton kernel levers on CUDA at batch 1 (where triton is installed), on by default (measured 1.10-1.39x on the four
models' compiled steps, docs/benchmarks.md "Session 25"): ``gemv`` runs the linear layers'
one-row products on :mod:`serifu.accel.gemv`'s GEMV instead of cuBLAS's split-K tiles;
``split_kv`` runs an sdpa model's one-query attention on :mod:`serifu.accel.split_kv`, whose
keys are split over many thread blocks (it sets the model's attention implementation; prompt
passes, batches and other callers reach HF's sdpa through it). ``split_kv=False`` /
``gemv=False`` or ``SERIFU_SPLIT_KV=0`` / ``SERIFU_GEMV=0`` keep PyTorch's kernels. With the
GEMV, ``fold`` (``SERIFU_GEMV_FOLD=0`` turns it off) folds each layer's input norms and MLP
activation into the GEMVs that read them: 1.05x on line-3.6b and gemma-3-270m, 1.00x on the
Llama and GPT-J models (one H200, "Session 26"); ``fuse`` (on by default since session 31,
``SERIFU_GEMV_FUSE=0`` turns it off) runs sibling layers that read one input (q, k, v; gate,
up) as one GEMV over their stacked weights (:mod:`serifu.accel.gemv_fuse`: 4 launches a Llama
layer instead of 7; +1.4 % to +4.4 % tok/s in six timed pairs on stablelm-beta-7b and
novel-gptj-6b, one H100 and one H200); with it ``glu`` (opt-in, ``SERIFU_GEMV_GLU=1``, session
30) computes a gated MLP's ``act(gate) * up`` in that GEMV (one kernel fewer a layer), or with
``glu="down"`` (``SERIFU_GEMV_GLU=down``, session 34) in the down projection's GEMV as it reads
its input (opt-in: on stablelm-beta-7b -0.4 % in fresh processes, +43 us of device time a
token; session 35).
``SERIFU_GEMV_PDL=1`` (opt-in, :func:`serifu.accel.gemv.set_pdl`) launches the GEMVs as
programmatic dependents of the kernel before them (sm90+). ``residual`` (session 31, on by
default since session 33: +1.4 % tok/s on stablelm-beta-7b, each contender in fresh processes
on an H200; ``SERIFU_GEMV_RESIDUAL=0`` turns it off) adds a Llama layer's residuals inside its
``o_proj`` and ``down_proj`` GEMVs (:mod:`serifu.accel.residual_fold`: two kernels fewer a
layer). ``shared_length`` (opt-in, ``SERIFU_DECODE_SHARED_LENGTH=1``, session 34; -2 to -3 %
on gemma-3-270m in session 35) gives every cache layer one write position, advanced once a
pass instead of once a layer (:mod:`serifu.accel.shared_length`: one kernel fewer a layer).
``kv_write`` (opt-in, ``SERIFU_DECODE_KV_WRITE=1``, session 36) leaves a one-token step's key
and value writes to the split-key kernel (:mod:`serifu.accel.kv_write`: one kernel fewer a
layer where the attention passes its keyword arguments to the cache); with ``shared_length``
too, a step's first layer advances the one length (one add a step). Session 37, one H100:
both together +1.8 % on stablelm-beta-7b, -0.2 / -1.1 % on gemma-3-270m. With ``kv_write``,
``kv_rope`` (opt-in, ``SERIFU_DECODE_KV_ROPE=1``, session 38) leaves a Llama attention's rotary
embedding of the step's query and key to that kernel too (:mod:`serifu.accel.rope_fold`: the
rotary kernel of every layer goes).

``compile`` (``SERIFU_DECODE_COMPILE=1``) compiles the one-token step with inductor inside its
graph; with it ``compile_prompt`` (``SERIFU_DECODE_COMPILE_PROMPT=0`` turns it off) compiles
the prompt pass too, once for every prompt length (session 35, one H100: first token 15.3 ->
10.5 ms on stablelm-beta-7b, 5.2 -> 2.4 ms on gemma-3-270m, whose replies gained 6.5-11 %).

``vocab=`` (a character's :class:`~serifu.inference.vocab.OutputVocabulary`): the head is
computed for her tokens' rows only (19k of gemma-3-270m's 262k), in the prompt pass and every
step, greedy or not; picks are mapped back to token ids, and ``prefill``/``step`` return
full-width logits (``-inf`` elsewhere), so tokens equal the masked full head's.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Callable, Generator, Hashable, Iterator, Sequence
from typing import Any

import torch

from serifu.accel.rope_fold import drop_rope, fold_rope
from serifu.accel.shared_length import lengths, share_length
from serifu.accel.split_kv import runs_split_kv


def gemv_levers(
    gemv: bool | None = None,
    fold: bool | None = None,
    fuse: bool | None = None,
    glu: bool | str | None = None,
    residual: bool | None = None,
) -> tuple[bool, bool, bool, bool | str, bool]:
    """The batch-1 GEMV levers, each as given or (``None``) as the environment says: the
    linear layers' one-row products on Serifu's Triton GEMV instead of cuBLAS's split-K tiles
    (``SERIFU_GEMV=0``: not), the layers' norms and MLP activations folded in
    (``SERIFU_GEMV_FOLD=0``: not), sibling layers on one input fused into one GEMV
    (``SERIFU_GEMV_FUSE=0``: not; on since session 31), a gated MLP's product inside that GEMV
    (``SERIFU_GEMV_GLU=1``: opt-in; ``=down``: inside the down projection's GEMV), a Llama
    layer's residual adds inside its ``o_proj`` and ``down_proj`` GEMVs
    (``SERIFU_GEMV_RESIDUAL=0``: not; on since session 33)."""

    def on_unless_0(name: str) -> bool:
        return os.environ.get(name, "1") != "0"

    return (
        on_unless_0("SERIFU_GEMV") if gemv is None else gemv,
        on_unless_0("SERIFU_GEMV_FOLD") if fold is None else fold,
        on_unless_0("SERIFU_GEMV_FUSE") if fuse is None else fuse,
        _glu_mode(os.environ.get("SERIFU_GEMV_GLU", "0")) if glu is None else glu,
        on_unless_0("SERIFU_GEMV_RESIDUAL") if residual is None else residual,
    )


def _glu_mode(value: str) -> bool | str:
    """``SERIFU_GEMV_GLU``: "1" the gated product in the gate/up GEMV, "down" in the down
    projection's, anything else off."""
    return "down" if value == "down" else value == "1"


def head_width(model: Any) -> int:
    """Rows of the model's output head (its vocabulary), whatever layer holds it (a plain or
    4-bit linear layer, or a kernel library's layer without a ``weight``)."""
    head = model.get_output_embeddings()
    width = getattr(head, "out_features", None)
    return int(width) if width is not None else int(head.weight.shape[0])


def _cache_kwarg(model: Any) -> str:
    """transformers >= 5.2x calls the KV cache ``cache``; earlier releases ``past_key_values``."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _unslide(cache: Any, max_len: int) -> None:
    """Sliding-window layers keep a Python-side length that a CUDA graph cannot update (and,
    with this decoder's full-length mask, gave other tokens than ``generate`` once the
    conversation outgrew the window). Use full static layers: the model's sliding-window
    mask still limits what those layers attend to, so the result is exact; the cost is
    memory for ``max_len`` positions instead of the window."""
    from transformers.cache_utils import StaticLayer, StaticSlidingWindowLayer

    for i, layer in enumerate(cache.layers):
        if isinstance(layer, StaticSlidingWindowLayer):
            cache.layers[i] = StaticLayer(max_cache_len=max_len)


MAX_STOP_IDS = 16


class _VocabHead(torch.nn.Module):
    """The model's decoder stack, then only the given rows of its (plain, bias-free) head at
    the last position, softcapped as the model's own forward does (Gemma)."""

    def __init__(self, backbone: Any, rows: torch.Tensor, softcap: float | None, cache_kw: str):
        super().__init__()
        self.backbone = backbone
        self.rows = rows
        self.softcap = softcap
        self.cache_kw = cache_kw

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any
    ) -> torch.Tensor:
        out = self.backbone(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            **{self.cache_kw: cache},
        )
        hidden = out.last_hidden_state[:, -1, :]
        logits = torch.nn.functional.linear(hidden.to(self.rows.dtype), self.rows)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


class StaticDecoder:
    """Token-by-token decoding with a static cache of ``max_len`` positions for ``batch_size`` rows."""

    def __init__(
        self,
        model: Any,
        *,
        max_len: int,
        batch_size: int = 1,
        graph: bool | None = None,
        graph_prefill: bool | None = None,
        capture_prefill_after: int = 1,
        chunk: int | None = None,
        compile: bool | None = None,
        compile_prompt: bool | None = None,
        vocab: Any | None = None,
        split_kv: bool | None = None,
        gemv: bool | None = None,
        fold: bool | None = None,
        fuse: bool | None = None,
        glu: bool | str | None = None,
        residual: bool | None = None,
        shared_length: bool | None = None,
        kv_write: bool | None = None,
        kv_rope: bool | None = None,
    ):
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
        # the greedy fast path: levers, and its device-side loop state
        if graph_prefill is None:
            graph_prefill = os.environ.get("SERIFU_GRAPH_PREFILL", "1") != "0"
        self.graph_prefill = graph_prefill
        # a prompt length's pass is captured once it was seen this many times: capturing
        # costs two extra passes, and chat prompts rarely repeat a length (the chat loop: 2)
        self.capture_prefill_after = max(1, capture_prefill_after)
        self._prefill_seen: dict[tuple[int, bool], int] = {}
        self.chunk = max(1, chunk or int(os.environ.get("SERIFU_DECODE_CHUNK", "8")))
        # torch.compile (inductor) over the one-token forward, inside the graph: fuses the
        # hundreds of small kernels per step; off unless asked (the first reply then compiles)
        if compile is None:
            compile = os.environ.get("SERIFU_DECODE_COMPILE", "0") == "1"
        self.compile = compile
        self._compiled: Any = None
        # with it, the prompt pass compiled too: once for every prompt length (a dynamic length),
        # its norms, rotary embedding and activations fused (session 35: eager, they took 5.5
        # of stablelm-beta-7b's 14.3 ms first-token device time); SERIFU_DECODE_COMPILE_PROMPT=0
        # keeps it eager
        if compile_prompt is None:
            compile_prompt = os.environ.get("SERIFU_DECODE_COMPILE_PROMPT", "1") != "0"
        self.compile_prompt = bool(compile and compile_prompt)
        self._compiled_prompt: Any = None
        self.compile_backend = "inductor"  # torch.compile's backend for both (tests: aot_eager)
        # one-query attention split over the keys (serifu.accel.split_kv) on CUDA, for an sdpa
        # model; SERIFU_SPLIT_KV=0 keeps PyTorch's sdpa kernel
        if split_kv is None:
            split_kv = os.environ.get("SERIFU_SPLIT_KV", "1") != "0"
        kernels = self.device.type == "cuda" and importlib.util.find_spec("triton") is not None
        self.split_kv = False
        if split_kv and kernels:
            from serifu.accel.split_kv import use_split_kv

            self.split_kv = use_split_kv(model)
        # one write position for all layers, advanced once a pass (serifu.accel.shared_length;
        # opt-in, it did not help in session 35: SERIFU_DECODE_SHARED_LENGTH=1)
        if shared_length is None:
            shared_length = os.environ.get("SERIFU_DECODE_SHARED_LENGTH", "0") == "1"
        # the one-token step's key and value written by the split-key kernel (serifu.accel.
        # kv_write; opt-in: SERIFU_DECODE_KV_WRITE=1, +1.8 % on stablelm-beta-7b, -0.2 / -1.1 %
        # on gemma-3-270m in session 37), on one shared length with the above
        if kv_write is None:
            kv_write = os.environ.get("SERIFU_DECODE_KV_WRITE", "0") == "1"
        self.kv_write = 0
        if kv_write and runs_split_kv(model):  # (set above on CUDA, or by the caller)
            from serifu.accel.kv_write import defer_writes

            self.kv_write = defer_writes(self.cache, shared=shared_length)
            self.shared_length = self.kv_write if shared_length else 0
        else:
            self.shared_length = share_length(self.cache) if shared_length else 0
        # with it, a Llama attention's rotary embedding inside that kernel too (serifu.accel.
        # rope_fold; opt-in: SERIFU_DECODE_KV_ROPE=1, session 38); off, the model's own modules
        if kv_rope is None:
            kv_rope = os.environ.get("SERIFU_DECODE_KV_ROPE", "0") == "1"
        self.kv_rope = fold_rope(model) if kv_rope and self.kv_write else 0
        if not self.kv_rope:
            drop_rope(model)
        # batch 1: the linear layers' one-row products as Serifu's Triton GEMV (gemv_levers)
        gemv, fold, fuse, glu, residual = gemv_levers(gemv, fold, fuse, glu, residual)
        self.gemv = self.folded = self.fused = self.glu = self.residual = 0
        if gemv and batch_size == 1 and kernels:
            from serifu.accel.gemv import folded_in, use_gemv
            from serifu.accel.gemv_fuse import fused_groups, glu_mlps
            from serifu.accel.residual_fold import residual_layers

            self.gemv = use_gemv(model, fold=fold, fuse=fuse, glu=glu, residual=residual)
            self.folded = folded_in(model)  # norms and activations (uint4 GEMV layers' too)
            self.fused = fused_groups(model)  # sibling groups run as one GEMV each
            self.glu = glu_mlps(model)  # gated MLPs' products inside a GEMV
            self.residual = residual_layers(model)  # layers adding residuals in their GEMVs
        self.out = torch.zeros(b, max_len, dtype=torch.long, device=self.device)
        self.out_logprobs = torch.zeros(b, max_len, dtype=torch.float32, device=self.device)
        self._scoring = False  # greedy(logprobs=...): part of the graph keys below
        self.done = torch.zeros(b, dtype=torch.bool, device=self.device)
        self.counter = torch.zeros(1, dtype=torch.long, device=self.device)
        self.pad = torch.zeros((), dtype=torch.long, device=self.device)
        self.stop_ids = torch.full((MAX_STOP_IDS,), -1, dtype=torch.long, device=self.device)
        self.logit_mask: torch.Tensor | None = None  # [vocab] additive, made at first use
        self._step_graphs: dict[tuple[int, bool], Any] = {}  # (steps, scoring) -> graph
        self._prefill_graphs: dict[tuple[int, bool], tuple[Any, torch.Tensor, torch.Tensor]] = {}
        self._init_head(vocab)

    # -- the output head: the whole vocabulary, or her output vocabulary's rows -------------
    def _init_head(self, vocab: Any | None) -> None:
        """``vocab`` (an :class:`~serifu.inference.vocab.OutputVocabulary`): only its rows of a
        plain head are computed (``head_rows``, softcapped as the model does); column ``k`` of
        those logits is token ``head_index[k]``. The picks map back to token ids; ``prefill``
        and ``step`` still return ``[batch, vocab]`` logits (``-inf`` outside her rows)."""
        self.vocab = vocab  # held: the decoder cache keys on its identity
        self.head_rows: torch.Tensor | None = vocab.head(self.model) if vocab is not None else None
        self.head_index = torch.zeros(0, dtype=torch.long, device=self.device)
        self._wide: torch.Tensor | None = None  # prefill/step logits over the whole vocabulary
        if vocab is None or self.head_rows is None:
            return
        self.head_index = vocab.index(self.device)
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        backbone = getattr(self.model, self.model.base_model_prefix)
        self._head_net = _VocabHead(
            backbone,
            self.head_rows,
            getattr(config, "final_logit_softcapping", None),
            _cache_kwarg(backbone),
        )

    def _widen(self, logits: torch.Tensor) -> torch.Tensor:
        """Her rows' logits as ``[batch, vocab]`` (``-inf`` elsewhere: what masking the full
        head gives); a no-op for the full head. One buffer, overwritten by the next call."""
        if self.head_rows is None:
            return logits
        if self._wide is None:
            width = head_width(self.model)
            self._wide = torch.full(
                (self.batch_size, width), float("-inf"), dtype=torch.float32, device=self.device
            )
        return self._wide.index_copy_(1, self.head_index, logits.float())

    # -- the model calls -------------------------------------------------------------
    def _forward(
        self, ids: torch.Tensor, pos: torch.Tensor, step: bool = False, prompt: bool = False
    ) -> torch.Tensor:
        """The last position's logits: ``[batch, vocab]``, or ``[batch, K]`` over her output
        vocabulary's rows when ``head_rows`` is set (``_widen`` makes them full-width).
        ``step``: the one-token step, compiled with ``compile``; ``prompt``: a prompt pass,
        compiled for any length."""
        model = self.model if self.head_rows is None else self._head_net
        if step and self.compile:
            if self._compiled is None:
                self._compiled = torch.compile(model, dynamic=False, backend=self.compile_backend)
            model = self._compiled
        elif prompt:
            if self._compiled_prompt is None:
                self._compiled_prompt = torch.compile(model, backend=self.compile_backend)
            for t in (ids, pos):  # the length varies, nothing else (cheaper than dynamic=True)
                torch._dynamo.mark_dynamic(t, 1)
            model = self._compiled_prompt
        if self.head_rows is not None:
            return model(ids, self.mask, pos, self.cache)
        out = model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=pos,
            use_cache=True,
            **self._extra,
            **{self._kw: self.cache},
        )
        return out.logits[:, -1, :]

    def _prompt_forward(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """A prompt pass from a reset cache: compiled while ``compile_prompt`` holds, once the
        cache's layers are initialised (the first pass makes them: compiled before, Dynamo
        would compile again after); a failing compile turns it off (``graph_error`` says why)
        and the pass reruns eagerly."""
        if (
            self.compile_prompt
            and ids.shape[1] > 1  # (one token: the step's shape)
            and all(getattr(layer, "is_initialized", True) for layer in self.cache.layers)
        ):
            try:
                return self._forward(ids, pos, prompt=True)
            except Exception as exc:  # eager prompts from now on, but say why
                self.compile_prompt = False
                self.graph_error = f"prompt compile: {type(exc).__name__}: {str(exc)[:300]}"
                self.cache.reset()
        return self._forward(ids, pos)

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
        logits = self._forward(self.step_ids, self.step_pos, step=True)
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
            static_logits = self._widen(self._step_body())
        self.mask.copy_(saved[0])
        self.step_pos.copy_(saved[1])
        self._graph = graph
        self._graph_logits = static_logits

    # -- the greedy fast path -------------------------------------------------------------
    def _pick_body(self, logits: torch.Tensor) -> None:
        """Argmax over the masked logits, stopped rows get the pad, the token is written to
        ``out`` at ``counter`` and fed back: all on the device, nothing read by the host."""
        assert self.logit_mask is not None
        masked = logits.float() + self.logit_mask
        tokens = masked.argmax(-1)
        if self._scoring:  # as the chat loop's _choose computes it
            picked = masked.log_softmax(-1).gather(1, tokens[:, None])
            self.out_logprobs.index_copy_(1, self.counter, picked)
        if self.head_rows is not None:  # column of her rows -> token id
            tokens = self.head_index[tokens]
        tokens = torch.where(self.done, self.pad, tokens)
        self.out.index_copy_(1, self.counter, tokens[:, None])
        self.done |= (tokens[:, None] == self.stop_ids).any(-1)  # isin may sort: kept simple
        self.counter.add_(1)
        self.step_ids.copy_(tokens[:, None])

    def _greedy_step_body(self) -> None:
        self._pick_body(self._step_body())

    def _greedy_steps(self, n: int) -> None:
        for _ in range(n):
            self._greedy_step_body()

    def _prefill_body(self, ids: torch.Tensor, prompt_mask: torch.Tensor) -> None:
        t = ids.shape[1]
        self.cache.reset()
        self.mask.zero_()
        self.mask[:, :t].copy_(prompt_mask)
        pos = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
        logits = self._prompt_forward(ids, pos)
        self.step_pos.copy_(prompt_mask.sum(-1, keepdim=True))
        self.done.zero_()
        self.counter.zero_()
        self._pick_body(logits)

    def _state(self) -> list[torch.Tensor]:
        found = (getattr(layer, "cumulative_length", None) for layer in self.cache.layers)
        lengths = [t for t in found if isinstance(t, torch.Tensor)]
        return [
            self.mask,
            self.step_pos,
            self.step_ids,
            self.out,
            self.out_logprobs,
            self.done,
            self.counter,
            *lengths,
        ]

    def _warm_then_capture(self, body: Callable[[], None]) -> Any:
        """Run ``body`` once on a side stream (compilation, lazy inits, library workspaces),
        restore the loop state and the cache lengths, then record it as a graph (recording
        runs nothing). On failure the state is restored too."""
        saved = [t.clone() for t in self._state()]

        def restore() -> None:
            torch.cuda.synchronize()
            for t, old in zip(self._state(), saved, strict=True):
                t.copy_(old)

        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                body()
            torch.cuda.current_stream().wait_stream(stream)
            restore()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                body()
        except Exception:
            restore()
            raise
        return graph

    def _run_prefill(self, ids: torch.Tensor, prompt_mask: torch.Tensor) -> None:
        t = ids.shape[1]
        if not (self.use_graph and self.graph_prefill):
            self._prefill_body(ids, prompt_mask)
            return
        key = (t, self._scoring)
        entry = self._prefill_graphs.get(key)
        if entry is None:
            self._prefill_seen[key] = seen = self._prefill_seen.get(key, 0) + 1
            if seen < self.capture_prefill_after:
                self._prefill_body(ids, prompt_mask)
                return
            ids_buf, mask_buf = ids.clone(), prompt_mask.clone()
            self._prefill_body(ids_buf, mask_buf)  # a real run: the cache is initialised
            try:
                graph = self._warm_then_capture(lambda: self._prefill_body(ids_buf, mask_buf))
            except Exception as exc:  # eager prompts from now on, but say why
                self.graph_error = f"prefill: {type(exc).__name__}: {exc}"
                self.graph_prefill = False
                torch.cuda.synchronize()
                self._prefill_body(ids, prompt_mask)
                return
            while len(self._prefill_graphs) >= 4:  # a few prompt lengths, most recent kept
                self._prefill_graphs.pop(next(iter(self._prefill_graphs)))
            entry = self._prefill_graphs[key] = (graph, ids_buf, mask_buf)
        graph, ids_buf, mask_buf = entry
        ids_buf.copy_(ids)
        mask_buf.copy_(prompt_mask)
        graph.replay()

    def _run_steps(self, n: int) -> None:
        if not self.use_graph:
            self._greedy_steps(n)
            return
        graph = self._step_graphs.get((n, self._scoring))
        if graph is None:
            try:
                graph = self._warm_then_capture(lambda: self._greedy_steps(n))
            except Exception as exc:  # without compile, then without graphs, but say why
                what = "compile" if self.compile else "steps"
                self.graph_error = f"{what}: {type(exc).__name__}: {str(exc)[:300]}"
                if self.compile:
                    self.compile = False
                else:
                    self.use_graph = False
                self._run_steps(n)
                return
            self._step_graphs[n, self._scoring] = graph
        graph.replay()

    @torch.no_grad()
    def greedy(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int] = (),
        pad_id: int = 0,
        logit_mask: torch.Tensor | None = None,
        logprobs: bool = False,
    ) -> Iterator[torch.Tensor]:
        """Greedy decoding with the pick, stop check and feedback on the device.

        Yields chunks of new tokens (``[batch, n]`` device tensors; the first chunk is the
        prompt's token). A row that chose one of ``stop_ids`` keeps that token and gets
        ``pad_id`` afterwards; decoding ends when every row stopped (checked once per chunk:
        the one host sync) or after ``max_new_tokens``. ``logit_mask``: an additive
        ``[vocab]`` mask (``-inf`` = never chosen), e.g. ``TokenRules.mask``. ``logprobs``:
        the chosen tokens' log-probabilities go to ``out_logprobs`` (same columns as the
        chunks: the first chunk is column 0). Nothing is yielded for ``max_new_tokens < 1``.
        """
        total = self._start_greedy(
            input_ids,
            attention_mask,
            max_new_tokens=max_new_tokens,
            stop_ids=stop_ids,
            pad_id=pad_id,
            logit_mask=logit_mask,
            logprobs=logprobs,
        )
        if total < 1:
            return
        made = 1
        yield self.out[:, :1]
        while made < total:
            if bool(self.done.all()):  # the one host sync per chunk
                return
            n = min(self.chunk, total - made)
            self._run_steps(n)
            yield self.out[:, made : made + n]
            made += n

    def _start_greedy(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int] = (),
        pad_id: int = 0,
        logit_mask: torch.Tensor | None = None,
        logprobs: bool = False,
    ) -> int:
        """:meth:`greedy`'s checks and state, then the prompt pass (launched, not waited
        for); returns how many tokens the reply may have (0: none, nothing launched)."""
        b, t = input_ids.shape
        if b != self.batch_size:
            raise ValueError(f"batch of {b} prompts for a decoder of batch_size {self.batch_size}")
        if t >= self.max_len:
            raise ValueError(f"prompt of {t} tokens does not fit max_len {self.max_len}")
        if len(stop_ids) > MAX_STOP_IDS:
            raise ValueError(f"at most {MAX_STOP_IDS} stop ids (got {len(stop_ids)})")
        width = head_width(self.model)
        if self.head_rows is not None:  # the mask is read at her rows only
            width = int(self.head_rows.shape[0])
        if self.logit_mask is None or self.logit_mask.shape[0] != width:
            self.logit_mask = torch.zeros(width, device=self.device)
            self._step_graphs.clear()
            self._prefill_graphs.clear()
        if logit_mask is None:
            self.logit_mask.zero_()
        elif self.head_rows is not None:
            self.logit_mask.copy_(logit_mask.to(self.device)[self.head_index])
        else:
            self.logit_mask.copy_(logit_mask[:width])
        self.stop_ids.fill_(-1)
        if stop_ids:
            self.stop_ids[: len(stop_ids)] = torch.tensor(list(stop_ids), device=self.device)
        self.pad.fill_(pad_id)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        total = min(max_new_tokens, self.max_len - t)
        if total < 1:
            return 0
        self._scoring = logprobs
        self._run_prefill(input_ids.to(self.device), attention_mask.to(self.device))
        return total

    @torch.no_grad()
    def greedy_launched(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kw: Any,
    ) -> Generator[tuple[list[list[int]], list[list[float]] | None], None, None]:
        """:meth:`greedy_ahead`'s chunks, with the device never waiting on the host between
        chunks: each chunk's graph is launched before the host reads the chunk before it,
        and every chunk's tokens (log-probabilities with ``logprobs=True``) and stop flag are
        copied to the host right behind it. The same chunks and stops as :meth:`greedy`;
        when every row has stopped, the one chunk already launched after it runs for
        nothing (its tokens are never read; the next call on this decoder waits for it).

        Opt-in: on an H100 it ran at the speed of :meth:`greedy_ahead` (+0.1-0.6 %,
        stablelm-beta-7b; docs/benchmarks.md "Session 32"), so the gaps between chunks are
        not the host's wait."""
        scoring = bool(kw.get("logprobs", False))
        total = self._start_greedy(input_ids, attention_mask, **kw)
        if total < 1:
            return
        pending = [self._copy_chunk(0, 1, scoring)]
        made = 1
        while pending:
            if made < total:  # the next chunk goes in before the host waits on this one
                n = min(self.chunk, total - made)
                self._run_steps(n)
                pending.append(self._copy_chunk(made, n, scoring))
                made += n
            (tokens, scores, flag), event = pending.pop(0)
            if event is not None:
                event.synchronize()
            yield tokens.tolist(), scores.tolist() if scoring else None
            if bool(flag):  # every row stopped in this chunk: what follows is not read
                return

    def _copy_chunk(self, start: int, n: int, scoring: bool) -> tuple[list[Any], Any]:
        """Host copies of columns ``start .. start + n`` (tokens, log-probabilities or None)
        and of "every row stopped", started behind the work launched so far."""
        scores = self.out_logprobs[:, start : start + n] if scoring else None
        return _start_copy([self.out[:, start : start + n], scores, self.done.all()])

    def greedy_ahead(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        ahead: bool | None = None,
        launch: bool | None = None,
        **kw: Any,
    ) -> Generator[tuple[list[list[int]], list[list[float]] | None], None, None]:
        """:meth:`greedy`'s chunks on the host (tokens, and log-probabilities with
        ``logprobs=True``), each handed over once the next chunk is launched: the caller's
        work on a chunk overlaps the device's next one. The same chunks and stops as
        :meth:`greedy` (the next chunk is launched when not every row stopped); a caller
        that ends early leaves at most one chunk running for nothing. ``ahead=False`` (or
        ``SERIFU_DECODE_AHEAD=0``): each chunk is read before the next is launched.
        ``launch=True`` (or ``SERIFU_DECODE_LAUNCH=1``; opt-in, session 32): the next chunk
        is launched before this one's stop flag is read (:meth:`greedy_launched`)."""
        if launch is None:
            launch = os.environ.get("SERIFU_DECODE_LAUNCH", "0") == "1"
        if launch:
            yield from self.greedy_launched(input_ids, attention_mask, **kw)
            return
        if ahead is None:
            ahead = os.environ.get("SERIFU_DECODE_AHEAD", "1") != "0"
        scoring = bool(kw.get("logprobs", False))
        chunks = iter(self.greedy(input_ids, attention_mask, **kw))
        close = getattr(chunks, "close", None)
        column = 0
        try:
            current = next(chunks, None)
            while current is not None:
                n = int(current.shape[1])
                parts = [current, self.out_logprobs[:, column : column + n] if scoring else None]
                copies, event = _start_copy(parts)
                if ahead:
                    current = next(chunks, None)  # waits for this chunk, launches the next
                if event is not None:
                    event.synchronize()
                tokens = copies[0].tolist()
                yield tokens, copies[1].tolist() if scoring else None
                column += n
                if not ahead:
                    current = next(chunks, None)
        finally:
            if close is not None:
                close()

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
        logits = self._widen(self._prompt_forward(input_ids.to(self.device), pos))
        self.step_pos.copy_(attention_mask.sum(-1, keepdim=True).to(self.device))
        self.logits = logits
        return logits

    @torch.no_grad()
    def prefill_prefixed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        rows: Sequence[Sequence[int]],
        specs: Sequence[tuple[Hashable, int] | None],
        cache: Any,
    ) -> torch.Tensor:
        """:meth:`prefill` that reuses cached prompt prefixes (:mod:`serifu.accel.prefix`).

        ``input_ids``/``attention_mask``: ``rows`` left-padded; ``specs[i]``: (key, length) of
        the leading tokens row ``i`` shares with later requests (None: nothing to share);
        ``cache``: a :class:`~serifu.accel.prefix.PrefixCache`. When every row with a spec
        finds a cached prefix, only the last tokens of the prompts (as many as the longest
        uncached rest) are run, after their rows' cached keys and values were copied into
        the slots before them; the rows keep :meth:`prefill`'s left-padded layout, in no
        more slots. Otherwise the whole prompts run, and the prefixes not yet cached are
        taken from this pass. Returns the last position's logits, as
        :meth:`prefill`; decoding then continues with :meth:`step`."""
        from serifu.accel.prefix import MIN_PREFIX

        b = len(rows)
        if b != self.batch_size:
            raise ValueError(f"batch of {b} prompts for a decoder of batch_size {self.batch_size}")
        hits = [cache.find(s[0], r) if s else None for r, s in zip(rows, specs, strict=True)]
        wanted = [s is not None and s[1] >= MIN_PREFIX for s in specs]
        lens = [len(h.tokens) if h is not None else 0 for h in hits]
        rest = [len(r) - n for r, n in zip(rows, lens, strict=True)]
        missed = any(w and h is None for w, h in zip(wanted, hits, strict=True))
        if missed or max(rest) >= max(len(r) for r in rows):  # nothing to save
            logits = self.prefill(input_ids, attention_mask)
            starts = [int(input_ids.shape[1]) - len(r) for r in rows]
            self._keep_prefixes(rows, specs, hits, starts, cache)
            cache.misses += sum(1 for w, h in zip(wanted, hits, strict=True) if w and h is None)
            return logits
        cache.hits += sum(1 for h in hits if h is not None)
        return self._prefill_after_prefixes(rows, hits, lens, rest)

    def _prefill_after_prefixes(
        self, rows: Sequence[Sequence[int]], hits: list[Any], lens: list[int], rest: list[int]
    ) -> torch.Tensor:
        """Run the last ``span`` (= the longest uncached rest) tokens of every prompt in one
        block of slots ``top .. top + span``; each row's tokens before them come from its
        cached prefix, copied to end at slot ``top``. A row is contiguous, left-padded as in
        :meth:`prefill` (the few prefix tokens that fall in the block are run again), so
        sliding-window layers, which count slots, see the distances they would."""
        b, span = len(rows), max(rest)
        copied = [max(0, len(r) - span) for r in rows]  # <= the row's cached prefix
        top = max(copied)
        self.cache.reset()
        layers: list[Any] = list(self.cache.layers)
        found = list({id(h): h for h in hits if h is not None}.values())
        offset, at = 0, {}
        for hit in found:  # where each prefix starts in their concatenation
            at[id(hit)] = offset
            offset += len(hit.tokens)
        row_idx: list[int] = []
        slot_idx: list[int] = []
        token_idx: list[int] = []
        for row, hit in enumerate(hits):
            if hit is not None and copied[row]:
                c = copied[row]
                row_idx += [row] * c
                slot_idx += range(top - c, top)
                token_idx += range(at[id(hit)], at[id(hit)] + c)
        index = [torch.tensor(x, device=self.device) for x in (row_idx, slot_idx, token_idx)]
        for i, layer in enumerate(layers):
            keys = torch.cat([h.keys[i] for h in found])  # [tokens, heads, dim]
            values = torch.cat([h.values[i] for h in found])
            if not layer.is_initialized:  # shaped from the prefix: [batch, heads, slots, dim]
                layer.lazy_initialization(
                    keys[:1].transpose(0, 1)[None].expand(b, -1, -1, -1),
                    values[:1].transpose(0, 1)[None].expand(b, -1, -1, -1),
                )
            if row_idx:
                layer.keys[index[0], :, index[1]] = keys[index[2]]
                layer.values[index[0], :, index[1]] = values[index[2]]
            layer.cumulative_length.fill_(top)  # the block is written from slot ``top`` on
        ids = torch.zeros(b, span, dtype=torch.long)
        pos = torch.zeros(b, span, dtype=torch.long)
        mask = torch.zeros(b, self.max_len, dtype=torch.long)
        for row, tokens in enumerate(rows):
            c, t = copied[row], len(tokens)
            ids[row, span - (t - c) :] = torch.tensor(list(tokens[c:]))
            pos[row, span - (t - c) :] = torch.arange(c, t)
            mask[row, top - c : top + span] = 1
            mask[row, top : top + span - (t - c)] = 0  # left padding inside the block
        self.mask.copy_(mask)
        logits = self._widen(self._forward(ids.to(self.device), pos.to(self.device)))
        self.step_pos.copy_(torch.tensor([[len(r)] for r in rows]))
        self.logits = logits
        return logits

    def _keep_prefixes(
        self,
        rows: Sequence[Sequence[int]],
        specs: Sequence[tuple[Hashable, int] | None],
        hits: list[Any],
        starts: list[int],
        cache: Any,
    ) -> None:
        """After a whole-prompt pass: cache the wanted prefixes not cached yet (row ``i``'s
        first token sits at slot ``starts[i]``; its keys and values depend on its own tokens
        and key only)."""
        from serifu.accel.prefix import MIN_PREFIX, Prefix

        layers: list[Any] = list(self.cache.layers)
        for row, (tokens, spec) in enumerate(zip(rows, specs, strict=True)):
            if spec is None or hits[row] is not None:
                continue
            n = min(spec[1], len(tokens) - 1)
            if n < MIN_PREFIX or cache.has(spec[0], tokens[:n]):
                continue  # too short, or another row of this batch just cached it
            s = starts[row]
            keys = [_row_slots(layer.keys, row, s, n) for layer in layers]
            values = [_row_slots(layer.values, row, s, n) for layer in layers]
            cache.add(Prefix(spec[0], tuple(tokens[:n]), keys, values))

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
        return self._widen(self._step_body())

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

    # -- continuous batching: rows join and leave a running batch ---------------------------
    # The server (``serifu.serving.continuous``) keeps one decoder decoding while requests
    # come and go. Every row's next token is written at the same cache slot ``position``
    # (the static cache has one write position); a prompt of L tokens joins a free row by
    # taking the L slots just before it (left-padding alignment: it fits when L <= position),
    # with its own positions 0..L-1 and a mask row covering only its slots. Its pass runs
    # alone (batch 1, on a side cache), so its keys, values and first logits do not depend
    # on the other rows; later steps are per-row computations too (a row's output depends on
    # its own inputs only, for a given batch size). The step itself is :meth:`step`.
    @torch.no_grad()
    def begin(self, position: int) -> None:
        """Start a continuous batch whose next step writes slot ``position``; every row is
        free (masked out) until :meth:`admit` fills it."""
        if not 0 < position < self.max_len:
            raise ValueError(f"position {position} outside 1..{self.max_len - 1}")
        self.cache.reset()
        self.mask.zero_()
        self.step_pos.zero_()
        self.step_ids.zero_()
        layers: list[Any] = list(self.cache.layers)  # StaticLayer (see _unslide)
        for layer in layers:
            layer.cumulative_length.fill_(position)

    @torch.no_grad()
    def admit(self, row: int, prompt: Sequence[int], position: int) -> torch.Tensor:
        """Prefill ``prompt`` into row ``row`` of the running batch whose next step writes
        slot ``position``; return its last logits [vocab]. The caller feeds the row's first
        token through ``step_ids[row]`` before the next :meth:`step`."""
        from transformers import StaticCache

        t = len(prompt)
        if not 0 < t <= position:
            raise ValueError(f"a prompt of {t} tokens does not fit before slot {position}")
        if getattr(self, "_side", None) is None:
            self._side = StaticCache(config=self.model.config, max_cache_len=self.max_len)
            _unslide(self._side, self.max_len)
            if self.shared_length:
                share_length(self._side)
        side = self._side
        side.reset()
        ids = torch.tensor([list(prompt)], dtype=torch.long, device=self.device)
        side_mask = torch.zeros(1, self.max_len, dtype=torch.long, device=self.device)
        side_mask[:, :t] = 1
        pos = torch.arange(t, device=self.device)[None]
        saved = (self.cache, self.mask)
        self.cache, self.mask = side, side_mask  # _forward reads both: the prompt runs alone
        try:
            logits = self._forward(ids, pos)
        finally:
            self.cache, self.mask = saved
        if self.head_rows is not None:  # her rows only: full width, -inf elsewhere
            width = head_width(self.model)
            wide = torch.full((1, width), float("-inf"), dtype=torch.float32, device=self.device)
            logits = wide.index_copy_(1, self.head_index, logits.float())
        start = position - t
        pairs: list[Any] = list(zip(self.cache.layers, side.layers, strict=True))
        for layer, src in pairs:
            if not layer.is_initialized:  # the batch's tensors, shaped from the side pass
                shape = (self.batch_size, -1, 1, -1)
                layer.lazy_initialization(
                    src.keys[:, :, :1].expand(shape), src.values[:, :, :1].expand(shape)
                )
                layer.cumulative_length.fill_(position)
            layer.keys[row, :, start:position].copy_(src.keys[0, :, :t])
            layer.values[row, :, start:position].copy_(src.values[0, :, :t])
        self.mask[row].zero_()
        self.mask[row, start:position] = 1
        self.step_pos[row] = t
        self.logits = logits  # step() captures its graph once a prompt ran
        return logits[0]

    @torch.no_grad()
    def shift(self, slots: int) -> None:
        """Move every row's cached keys, values and mask ``slots`` slots to the left (the
        slots before were free for every row): the write position drops by ``slots`` and
        the batch can keep taking rows without ever being drained. Positions are kept (keys
        are cached after the rotary embedding), so the rows decode exactly as before."""
        if not 0 < slots < self.max_len:
            raise ValueError(f"cannot shift by {slots} slots (max_len {self.max_len})")
        keep = self.max_len - slots
        layers: list[Any] = list(self.cache.layers)
        for layer in layers:
            if layer.is_initialized:
                layer.keys[:, :, :keep].copy_(layer.keys[:, :, slots:].clone())
                layer.values[:, :, :keep].copy_(layer.values[:, :, slots:].clone())
        for length in lengths(self.cache):  # each once (layers may share one)
            length.sub_(slots)
        self.mask[:, :keep].copy_(self.mask[:, slots:].clone())
        self.mask[:, keep:].zero_()


def _row_slots(t: torch.Tensor, row: int, start: int, n: int) -> torch.Tensor:
    """A copy of cache row ``row``'s slots ``start .. start + n`` as ``[n, heads, dim]`` (a
    transposed view can already be contiguous: ``.contiguous()`` would alias the cache)."""
    return t[row, :, start : start + n].transpose(0, 1).clone(memory_format=torch.contiguous_format)


def _start_copy(parts: list[torch.Tensor | None]) -> tuple[list[Any], Any]:
    """Copies of ``parts`` (None stays None) on the host, started without blocking on a GPU (pinned memory;
    the event says when they are there); on the CPU the tensors themselves."""
    if not parts or parts[0] is None or parts[0].device.type != "cuda":
        return list(parts), None
    out: list[Any] = []
    for t in parts:
        if t is None:
            out.append(None)
            continue
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        host.copy_(t, non_blocking=True)
        out.append(host)
    event = torch.cuda.Event()
    event.record()
    return out, event
