"""Serifu's decoding loop: left-padded batch, KV cache, stop at the reply's newline or EOS.

Each step yields the tokens chosen for every row still running; the caller decodes
and decides when a row is done (its text reached a newline), so streaming and batched
generation share one loop.

:class:`TokenRules` say which tokens may be chosen (``serifu.inference.vocab``): banned
special/unused tokens get ``-inf`` at every step, on every path (eager, CUDA graph); an
output vocabulary restricts the choice further, and the output head is then computed for
those rows only (eager and static paths; ``SERIFU_FULL_HEAD=1``: the whole head, masked).
The prompt pass computes the head at its last position only. Stop tokens are exempt from the repetition penalty.

On the static (CUDA-graph) path, plain greedy requests (no penalties, no logit bias) take
:meth:`~serifu.accel.decode.StaticDecoder.greedy`: argmax, log-probability and the EOS check
run on the device, and the host reads the tokens once per chunk of steps (8), then records
them one step at a time, so callers see the same steps, tokens, text and log-probabilities;
streamed text arrives a chunk at a time. ``SERIFU_GREEDY_CHUNK=0`` turns it off (ablation).
Both static loops launch the next step (chunk) before the host reads this one's tokens, so
the host's work (recording, text stops, the server's events) overlaps the device's; a
greedy batch that the host stops leaves one chunk decoded for nothing
(``SERIFU_DECODE_AHEAD=0``: the greedy loop reads each chunk first; an ablation).
:data:`TIMES` records where the host-pick loop's time goes (prompt pass, device wait, host).
``SERIFU_STATIC_DECODE``: "0" off, "1" (default) CUDA only, "any" also on the CPU (eager
steps on the static cache: how the tests run these paths).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TokenRules:
    """Which tokens decoding may choose. ``banned``: never; ``vocab``: the only ones allowed
    (an :class:`~serifu.inference.vocab.OutputVocabulary`, or None for all)."""

    banned: Sequence[int] = ()
    vocab: Any | None = None
    _masks: dict[tuple[str, int], Any] = field(default_factory=dict, repr=False)

    def mask(self, device: Any, width: int) -> Any | None:
        """An additive [width] mask (0 allowed, -inf not), cached per device and width."""
        import torch

        if not self.banned and self.vocab is None:
            return None
        key = (str(device), width)
        if key not in self._masks:
            if self.vocab is not None:
                m = torch.full((width,), float("-inf"), device=device)
                m[self.vocab.index(device)] = 0.0
            else:
                m = torch.zeros(width, device=device)
            banned = [i for i in self.banned if i < width]
            if banned:
                m[torch.tensor(banned, device=device)] = float("-inf")
            self._masks[key] = m
        return self._masks[key]

    def apply(self, logits: Any) -> Any:
        mask = self.mask(logits.device, logits.shape[-1])
        return logits.float() if mask is None else logits.float() + mask


def penalty_view(seen: Any, protected: set[int], filler: int | None) -> Any:
    """``seen`` with stop tokens replaced by ``filler`` (a banned id), so a repetition
    penalty never makes stopping less likely (e.g. pad = EOS in left padding)."""
    import torch

    if not protected or filler is None or not seen.numel():
        return seen
    from serifu.inference.sampling import device_ids

    return seen.masked_fill(torch.isin(seen, device_ids(protected, seen.device)), filler)


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: str) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(list(r))
            mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)


def static_decoding(model: Any, cpu: bool = False) -> bool:
    """Whether :func:`decode_steps` uses the static decoder for this model (see
    :func:`_static_decoder` and ``SERIFU_STATIC_DECODE``). ``cpu``: also off CUDA (cached
    prompt prefixes need it; its steps then run eagerly, as fast as the dynamic cache's)."""
    import os

    device = next(model.parameters()).device
    quantized = any(type(p).__name__ == "Params4bit" for p in model.parameters())
    switch = os.environ.get("SERIFU_STATIC_DECODE", "1")
    if quantized or switch == "0" or (device.type != "cuda" and switch != "any" and not cpu):
        return False
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return not lm.__dict__.get("_serifu_static_off")


def _static_decoder(
    model: Any, batch: int, need: int, vocab: Any | None = None, cpu: bool = False
) -> Any | None:
    """A cached :class:`StaticDecoder` (CUDA-graph steps) for a full-precision model on a GPU.

    ``vocab`` (her output vocabulary): the decoder computes only its rows of the head, as the
    eager path does (``SERIFU_FULL_HEAD=1``: the full head, masked; an ablation). Decoders
    are kept per (batch, length bucket, vocabulary) on the model, so the graph captured for
    the first reply serves the next ones; at most two are kept (each holds a KV cache), or
    ``_serifu_max_decoders`` set on the (base) model: the server keeps one per batch size.
    ``_serifu_static_off`` on it turns the static decoder off for that model (a server that
    switches PEFT adapters, which a captured graph would not see).
    """
    import os

    import torch

    from serifu.accel.decode import StaticDecoder

    if not static_decoding(model, cpu):
        return None
    if os.environ.get("SERIFU_FULL_HEAD") == "1":
        vocab = None
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    keep = max(1, int(lm.__dict__.get("_serifu_max_decoders", 2)))
    max_len = -(-need // 256) * 256
    cache: dict[tuple[int, int, int], Any] = lm.__dict__.setdefault("_serifu_decoders", {})
    key = (batch, max_len, 0 if vocab is None else id(vocab))  # the decoder holds its vocab
    if key not in cache:
        while len(cache) >= keep:
            cache.pop(next(iter(cache)))
            torch.cuda.empty_cache()
        # a prompt length's pass is captured when it comes again (chat prompts vary)
        cache[key] = StaticDecoder(
            lm, max_len=max_len, batch_size=batch, capture_prefill_after=2, vocab=vocab
        )
    else:
        cache[key] = cache.pop(key)  # most recently used last
    return cache[key]


def decode_steps(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    eos_ids: set[int],
    params: Mapping[str, Any],
    max_new_tokens: int,
    is_done: Callable[[int, list[int]], bool],
    seed: int | None = None,
    rules: TokenRules | None = None,
    logprobs: list[list[float]] | None = None,
    prefixes: Sequence[tuple[Any, int] | None] | None = None,
) -> Iterator[list[list[int]]]:
    """Yield, after each step, every row's generated ids; rows stop at EOS or ``is_done``.

    ``rules`` mask tokens (see :class:`TokenRules`); ``logprobs``, when given, is filled with
    each row's chosen-token log-probabilities (under the masked distribution, temperature 1).
    ``prefixes[i]``: (key, length) of the leading tokens row ``i`` shares with later requests
    (key: what else changes them, e.g. its adapter): on the static decoder's host-pick loop
    they are cached once and copied, not run again (:mod:`serifu.accel.prefix`).
    """
    import torch

    rules = rules or TokenRules()
    filler = next((i for i in rules.banned if i not in eos_ids), None)
    if logprobs is not None:
        logprobs[:] = [[] for _ in prompts]
    device = str(next(model.parameters()).device)
    ids, mask = left_pad(prompts, pad_id, device)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    greedy = plain_greedy(params, eos_ids)
    # cached prompt prefixes run on the static decoder's host-pick loop, on the CPU too
    cpu = prefixes is not None and not greedy
    static = _static_decoder(
        model, len(prompts), ids.shape[1] + max_new_tokens, rules.vocab, cpu=cpu
    )
    if static is not None and greedy:
        yield from _greedy_steps(
            static,
            ids,
            mask,
            pad_id=pad_id,
            eos_ids=eos_ids,
            max_new_tokens=max_new_tokens,
            is_done=is_done,
            rules=rules,
            logprobs=logprobs,
        )
        return
    if static is not None:
        yield from _static_steps(
            static,
            ids,
            mask,
            prefixes=(prompts, prefixes) if prefixes is not None else None,
            pad_id=pad_id,
            eos_ids=eos_ids,
            params=params,
            max_new_tokens=max_new_tokens,
            is_done=is_done,
            generator=generator,
            rules=rules,
            filler=filler,
            logprobs=logprobs,
        )
        return
    generated: list[list[int]] = [[] for _ in prompts]
    running = [True] * len(prompts)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    seen = ids
    step = _EagerStep(model, rules)
    with torch.inference_mode():
        logits = step(ids, mask, positions)
        for _ in range(max_new_tokens):
            chosen = _choose(
                logits,
                seen,
                ids.shape[1],
                params,
                generator,
                rules,
                eos_ids,
                filler,
                logprobs,
                running,
            )
            chosen = torch.where(
                torch.tensor(running, device=device), chosen, torch.full_like(chosen, pad_id)
            )
            _record(chosen.tolist(), generated, running, eos_ids, is_done)
            yield generated
            if not any(running):
                return
            seen = torch.cat([seen, chosen[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
            logits = step(chosen[:, None], mask, positions)


class _EagerStep:
    """One forward on the KV cache; returns the last position's logits [B, V].

    The head runs at the last position only; with an output vocabulary whose rows can be
    taken from a plain head, only those rows are computed (the rest stay ``-inf``).
    """

    def __init__(self, model: Any, rules: TokenRules):
        import inspect

        from serifu.accel.decode import _cache_kwarg, head_width

        self.model = model
        import os

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(base.forward).parameters  # PEFT's forward takes **kwargs
        full = os.environ.get("SERIFU_FULL_PREFILL") == "1"  # benchmark ablation only
        self.keep = {"logits_to_keep": 1} if "logits_to_keep" in params and not full else {}
        self.cache: Any = None
        self.kw = _cache_kwarg(base)
        self.rows = None
        if rules.vocab is not None and os.environ.get("SERIFU_FULL_HEAD") != "1":
            lm = model.get_base_model() if hasattr(model, "get_base_model") else model
            rows = rules.vocab.head(lm)
            if rows is not None:
                self.lm = lm
                self.rows = rows
                self.decoder = getattr(lm, lm.base_model_prefix)
                config = (
                    lm.config.get_text_config()
                    if hasattr(lm.config, "get_text_config")
                    else lm.config
                )
                self.softcap = getattr(config, "final_logit_softcapping", None)
                self.width = head_width(lm)
                self.index = rules.vocab.index(rows.device)
                self.kw = _cache_kwarg(self.decoder)

    def __call__(self, ids: Any, mask: Any, positions: Any) -> Any:
        import torch

        kwargs = {"attention_mask": mask, "position_ids": positions, "use_cache": True}
        if self.cache is not None:
            kwargs[self.kw] = self.cache
        if self.rows is None:
            out = self.model(input_ids=ids, **self.keep, **kwargs)
            self.cache = out.cache
            return out.logits[:, -1, :]
        out = self.decoder(input_ids=ids, **kwargs)
        self.cache = out.cache
        hidden = out.last_hidden_state[:, -1, :]
        sub = hidden.to(self.rows.dtype) @ self.rows.T
        if self.softcap:
            sub = torch.tanh(sub / self.softcap) * self.softcap
        logits = torch.full(
            (hidden.shape[0], self.width), float("-inf"), device=hidden.device, dtype=torch.float32
        )
        return logits.index_copy_(1, self.index, sub.float())


def _choose(
    logits: Any,
    seen: Any,
    prompt_width: int,
    params: Mapping[str, Any],
    generator: Any,
    rules: TokenRules,
    eos_ids: set[int],
    filler: int | None,
    logprobs: list[list[float]] | None,
    running: list[bool],
) -> Any:
    """Mask, pick, and record the chosen tokens' log-probabilities."""
    logits = rules.apply(logits)
    chosen = next_tokens_for(
        logits, penalty_view(seen, eos_ids, filler), params, generator, prompt_width
    )
    if logprobs is not None:
        picked = logits.log_softmax(-1).gather(1, chosen[:, None])[:, 0].tolist()
        for row, value in enumerate(picked):
            if running[row]:
                logprobs[row].append(float(value))
    return chosen


def _record(
    tokens: list[int],
    generated: list[list[int]],
    running: list[bool],
    eos_ids: set[int],
    is_done: Callable[[int, list[int]], bool],
) -> None:
    """Append each running row's new token; a row stops at EOS or when ``is_done``."""
    for row, token in enumerate(tokens):
        if not running[row]:
            continue
        if token in eos_ids:
            running[row] = False
            continue
        generated[row].append(token)
        if is_done(row, generated[row]):
            running[row] = False


def _static_steps(
    decoder: Any,
    ids: Any,
    mask: Any,
    *,
    pad_id: int,
    eos_ids: set[int],
    params: Mapping[str, Any],
    max_new_tokens: int,
    is_done: Callable[[int, list[int]], bool],
    generator: Any,
    rules: TokenRules | None = None,
    filler: int | None = None,
    logprobs: list[list[float]] | None = None,
    prefixes: tuple[Sequence[Sequence[int]], Sequence[tuple[Any, int] | None]] | None = None,
) -> Iterator[list[list[int]]]:
    """The same contract as the eager loop, on a static cache with CUDA-graph steps.

    One step of lookahead: step ``i + 1`` (forward and pick) is launched before the host
    reads step ``i``'s tokens (copied out without blocking), so on a GPU the host's work for
    step ``i`` (recording, text stops, the caller's streaming) overlaps the device's next
    step. EOS stops are tracked on the device, so a row that chose EOS gets the pad from the
    next step, as before; a row the host stops (``is_done``) gets it a step later, and its
    one lookahead token is never recorded (rows do not affect each other). The tokens,
    texts, stops and log-probabilities yielded are those of the loop without lookahead.
    """
    import torch

    from serifu.accel.decode import _start_copy

    rules = rules or TokenRules()
    rows = ids.shape[0]
    generated: list[list[int]] = [[] for _ in range(rows)]
    running = [True] * rows
    total = min(max_new_tokens, decoder.max_len - ids.shape[1])
    if total < 1:
        return
    device = decoder.device
    stop = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
    padded = torch.zeros(rows, dtype=torch.bool, device=device)  # rows that get the pad
    pad = torch.full((rows,), pad_id, dtype=torch.long, device=device)
    seen = ids.to(device)
    clock = TIMES.start()

    def pick(logits: Any) -> tuple[Any, Any]:
        logits = rules.apply(logits)
        chosen = next_tokens_for(
            logits, penalty_view(seen, eos_ids, filler), params, generator, ids.shape[1]
        )
        scores = None
        if logprobs is not None:  # as _choose computes them, read with the tokens
            scores = logits.log_softmax(-1).gather(1, chosen[:, None])[:, 0]
        chosen = torch.where(padded, pad, chosen)
        padded.logical_or_(torch.isin(chosen, stop))
        return chosen, scores

    with torch.no_grad():
        if prefixes is None:
            first = decoder.prefill(ids, mask)
        else:  # (rows, specs): cached prompt prefixes are copied, not run
            from serifu.accel.prefix import prefix_cache

            cache = prefix_cache(decoder.model)
            first = decoder.prefill_prefixed(ids, mask, *prefixes, cache)
        current = pick(first)
    stopped = 0  # rows the host stopped, sent to the device
    for i in range(total):
        chosen, scores = current
        seen = torch.cat([seen, chosen[:, None]], dim=1)
        out = _start_copy([chosen, scores])  # copied without blocking
        if i + 1 < total:  # launch the next step before reading this one
            with torch.no_grad():
                current = pick(decoder.step(chosen))
        tokens, values = clock.read(out)
        if logprobs is not None and values is not None:
            for row in range(rows):
                if running[row]:
                    logprobs[row].append(float(values[row]))
        _record(tokens, generated, running, eos_ids, is_done)
        if running.count(False) != stopped:  # host stops: padded from the step after next
            stopped = running.count(False)
            halted = torch.tensor([not r for r in running], dtype=torch.bool)
            if device.type == "cuda":
                halted = halted.pin_memory().to(device, non_blocking=True)
            padded.logical_or_(halted.to(device))
        yield generated
        if not any(running):
            return


@dataclass
class DecodeTimes:
    """Where the host-pick static loop's time goes (summed over calls; read by
    ``bench/gpu/serve_speed.py``). ``prefill_s``: from the call to the first step's tokens on
    the host (prompt pass + first pick); ``wait_s``: the host blocked on the device for a
    step's tokens; ``host_s``: the rest, between reads (recording, text stops and the
    caller's work on each yielded step: on a GPU it overlaps the next step)."""

    calls: int = 0
    steps: int = 0
    prefill_s: float = 0.0
    wait_s: float = 0.0
    host_s: float = 0.0

    def start(self) -> _Clock:
        self.calls += 1
        return _Clock(self)

    def reset(self) -> None:
        self.calls = self.steps = 0
        self.prefill_s = self.wait_s = self.host_s = 0.0

    def summary(self) -> dict[str, float]:
        steps = max(self.steps - self.calls, 1)  # steps after each call's first
        return {
            "calls": self.calls,
            "steps": self.steps,
            "prefill_ms_per_call": round(1e3 * self.prefill_s / max(self.calls, 1), 2),
            "wait_ms_per_step": round(1e3 * self.wait_s / steps, 3),
            "host_ms_per_step": round(1e3 * self.host_s / steps, 3),
        }


class _Clock:
    def __init__(self, times: DecodeTimes):
        import time

        self.times = times
        self.now = time.perf_counter
        self.mark = self.now()
        self.first = True

    def read(self, out: Any) -> tuple[Any, Any]:
        """Wait for ``_start_copy``'s copies; the time blocked counts as ``wait_s``."""
        tensors, event = out
        before = self.now()
        if event is not None:
            event.synchronize()
        lists = [None if t is None else t.tolist() for t in tensors]
        after = self.now()
        if self.first:
            self.times.prefill_s += after - self.mark
            self.first = False
        else:
            self.times.wait_s += after - before
            self.times.host_s += before - self.mark
        self.times.steps += 1
        self.mark = after
        return lists[0], lists[1] if len(lists) > 1 else None


TIMES = DecodeTimes()
"""The static host-pick loop's times in this process (``TIMES.reset()`` before a run)."""


def plain_greedy(params: Mapping[str, Any], eos_ids: set[int]) -> bool:
    """Whether the device-side greedy loop gives exactly what ``next_tokens`` would: no
    sampling, no penalty or bias (they need the tokens seen so far), few enough stop ids."""
    import os

    from serifu.accel.decode import MAX_STOP_IDS

    if os.environ.get("SERIFU_GREEDY_CHUNK", "1") == "0" or params.get("do_sample", False):
        return False
    if float(params.get("repetition_penalty", 1.0) or 1.0) != 1.0:
        return False
    if float(params.get("presence_penalty", 0.0) or 0.0):
        return False
    if float(params.get("frequency_penalty", 0.0) or 0.0):
        return False
    if int(params.get("no_repeat_ngram_size", 0) or 0) > 1:
        return False
    return not params.get("logit_bias") and len(eos_ids) <= MAX_STOP_IDS


def _greedy_steps(
    decoder: Any,
    ids: Any,
    mask: Any,
    *,
    pad_id: int,
    eos_ids: set[int],
    max_new_tokens: int,
    is_done: Callable[[int, list[int]], bool],
    rules: TokenRules,
    logprobs: list[list[float]] | None = None,
) -> Iterator[list[list[int]]]:
    """The same contract as the eager loop, on ``StaticDecoder.greedy``: the device picks
    and stops at EOS; the host reads a chunk of steps at once and records (and yields) them
    one step at a time, so text stops (``is_done``) end a row at the same token. Streaming
    therefore shows text a chunk at a time. Each chunk is read once the next one is launched
    (``StaticDecoder.greedy_ahead``), so the host's work overlaps the device's. Rows that
    the host stopped keep decoding on the device until the chunk ends (or the next one, when
    the host stops them all); their tokens are ignored (rows do not affect each other)."""
    from serifu.accel.decode import head_width

    rows = ids.shape[0]
    generated: list[list[int]] = [[] for _ in range(rows)]
    running = [True] * rows
    width = head_width(decoder.model)
    chunks = decoder.greedy_ahead(
        ids,
        mask,
        max_new_tokens=max_new_tokens,
        stop_ids=sorted(eos_ids),
        pad_id=pad_id,
        logit_mask=rules.mask(decoder.device, width),
        logprobs=logprobs is not None,
    )
    try:
        for tokens, scores in chunks:  # the next chunk already runs on the device
            for j in range(len(tokens[0]) if tokens else 0):
                if logprobs is not None and scores is not None:
                    for row in range(rows):
                        if running[row]:
                            logprobs[row].append(float(scores[row][j]))
                _record([t[j] for t in tokens], generated, running, eos_ids, is_done)
                yield generated
                if not any(running):
                    return
    finally:
        chunks.close()


def next_tokens_for(
    logits: Any, seen: Any, params: Mapping[str, Any], generator: Any, prompt_width: int
) -> Any:
    """:func:`serifu.inference.sampling.next_tokens` for rows whose replies start at
    ``prompt_width`` in ``seen`` (the padded prompts, then one token per step)."""
    from serifu.inference.sampling import next_tokens

    return next_tokens(logits, seen, params, generator, (prompt_width, seen.shape[1]))
