"""The decoding worker: a bounded queue of jobs, micro-batched per heroine into ``bot.decode``.

One worker thread owns the model. It takes the oldest job, adds every waiting job of the
same heroine with the same sampling settings (up to ``max_batch`` rows; with
``mix_adapters``, other heroines' jobs on the same base too), and decodes them as one
batch; each step's new text goes to each job's asyncio queue (one hand-over per step).
A base with LoRA adapters decodes every batch through the stacked adapters installed for
good (:mod:`serifu.serving.mixed_lora`), so the static decoder's CUDA graphs serve every
mix of heroines; batches are padded up to a few sizes (:data:`BUCKETS`) so each size's
graphs are captured once. Seeded jobs run alone
so a seed gives the same reply whatever else is waiting. A job whose client went away is
cancelled: it gets no more text, and a batch whose jobs are all cancelled stops.

With the static decoder and ``continuous=True`` (opt-in: ``serifu serve --continuous``; on
an H200 it was slower than batch-at-a-time, because each joining row's prompt pass runs
alone and eagerly — docs/serving.md), unseeded jobs are decoded by
continuous batching (:mod:`serifu.serving.continuous`): a job that arrives while a batch
decodes joins a free row at the next step, a finished or cancelled row frees its slot, so
the batch stays full; the batch ends when no row runs and no waiting job can join. The
oldest waiting job is never overtaken by a different kind of job for long: when it cannot
join the running batch (other settings or heroine group, too long), nothing new joins and
the batch drains, then that job runs next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from serifu.errors import SerifuError
from serifu.serving.protocol import ApiError

log = logging.getLogger("serifu.serve")

BUCKETS = (1, 2, 4, 8, 16, 32)
"""Batch sizes the static decoder captures graphs for (batches are padded up to one)."""


@dataclass
class Heroine:
    """One served model id: a chatbot (her card, rules) and which adapter to switch on."""

    id: str
    bot: Any
    adapter_name: str | None = None
    """PEFT adapter name to activate; None: the base model with adapters disabled."""
    encoder: Any = None
    """The chatbot with its own tokenizer copy, for encoding requests on the event loop
    (a fast tokenizer used from two threads at once can fail with "Already borrowed")."""

    def __post_init__(self) -> None:
        if self.encoder is None:
            self.encoder = self.bot

    def batch_group(self) -> str:
        """Heroines with equal groups may share a batch: one model (with PEFT, each row
        picks its adapter) and no per-heroine output vocabulary; else each is alone."""
        shared = getattr(self.bot.rules, "vocab", None) is None
        return f"model:{id(self.bot.model)}" if shared else f"heroine:{self.id}"


@dataclass
class Event:
    kind: str  # "delta" | "done" | "error"
    row: int = 0
    text: str = ""
    finish_reason: str | None = None
    n_tokens: int = 0
    logprob: float = 0.0
    error: ApiError | None = None


@dataclass
class Job:
    """One request's rows (n choices × prompts), all of one heroine."""

    heroine: Heroine
    prompts: list[list[int]]
    max_tokens: int
    params: dict[str, Any]
    stop: list[str]
    seed: int | None
    one_line: bool
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished_rows: int = 0

    def key(self, stops: bool = True) -> str | None:
        """Jobs with equal keys can share a batch (None: always alone). ``stops=False``:
        stop strings and ``one_line`` are left out (a continuous batch stops rows one by one)."""
        if self.seed is not None:
            return None
        settings: list[Any] = [self.heroine.batch_group(), self.params]
        if stops:
            settings += [self.stop, self.one_line]
        return json.dumps(settings, sort_keys=True, default=str)

    def emit(self, event: Event) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class Engine:
    """The queue and the worker thread (start with :meth:`start`, stop with :meth:`stop`)."""

    def __init__(
        self,
        heroines: dict[str, Heroine],
        *,
        max_queue: int = 128,
        max_batch: int = 16,
        mix_adapters: bool = True,
        batch_wait: float = 0.0,
        stacked: bool = True,
        static: bool = True,
        buckets: Sequence[int] | None = BUCKETS,
        max_decoders: int = 12,
        continuous: bool = False,
        context: int = 512,
        stream_interval: float = 0.0,
        prefix_cache: bool = True,
    ):
        self.heroines = heroines
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.mix_adapters = mix_adapters
        """False: every batch holds one heroine even when her adapter could share a batch
        (the one-adapter-at-a-time "switching" server, kept as a measured baseline)."""
        self.batch_wait = batch_wait
        """Before decoding starts, a batch keeps taking requests that can join it until none
        joined for this many seconds (at most 10x that in all, or ``max_batch`` rows): a
        burst of clients lands in one batch. 0: only the requests already waiting."""
        self.stacked = stacked
        """True: a model with LoRA adapters keeps the stacked-adapter hooks installed and
        every batch (one heroine, the bare base or a mix) goes through them, so the static
        decoder's CUDA graphs serve any batch (:mod:`serifu.serving.mixed_lora`; also off
        with ``SERIFU_STACKED_LORA=0``). False: PEFT switches adapters (``set_adapter``, or
        its ``adapter_names=`` loop for a mix) and decoding steps are eager."""
        self.static = static
        """False: eager decoding steps even where the static decoder could run."""
        self.buckets = sorted(buckets or ())
        """Batches padded up to the next of these sizes (pad rows: copies of the first row,
        outputs discarded) when the static decoder runs, so its graphs are
        captured once per size; a batch over the largest size is not padded."""
        self.max_decoders = max_decoders
        """Static decoders (one KV cache and graphs each) kept per model: one per batch
        size and length bucket in use; the least recently used goes first."""
        self.continuous = continuous
        """True: unseeded jobs on the static decoder are continuously batched (rows join a
        running batch at its next step); False: each batch runs to completion."""
        self.continuous_error: str | None = None
        """Why continuous batching was turned off (an unexpected failure in it), if it was."""
        self.context = context
        """Cache slots of a continuous batch (at least one job's prompt + ``max_tokens``,
        rounded up to 256): every step attends over all of them, so keep it small."""
        self.stream_interval = stream_interval
        """Batch-at-a-time batches hand text over at most this often (seconds): a row's
        pieces in between are merged, so each client gets fewer, longer deltas (its first
        text and every "done" go at once). 0: every step's text at once (the default);
        fewer events per step leave the event loop (HTTP, streaming) less work per token."""
        self.prefix_cache = prefix_cache
        """Batch-at-a-time batches on the static decoder keep each heroine's prompt prefix
        (her system prompt, per adapter) as cached keys and values and run only the rest of
        each prompt (:mod:`serifu.accel.prefix`). False: every prompt runs whole."""
        self._prefix_len: dict[str, tuple[list[int], int]] = {}
        """Per heroine: a probe prompt and how many leading tokens every prompt of hers
        shares (what two very different probe prompts share)."""
        self._high: dict[int, int] = {}
        """Per cache length: the longest prompt a continuous batch of it took, where the next
        one starts writing (so a typical prompt fits at once)."""
        self._jobs: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.batched_rows = 0
        self.padded_rows = 0
        """Pad rows added to fill batch-size buckets (decoded, then discarded)."""
        self.cancelled_batches = 0
        """Batches stopped early because every client in them went away."""
        self.steps = 0
        """Decoding steps (both paths)."""
        self.step_rows = 0
        """Rows with a client waiting, summed over steps: ``step_rows / steps`` is how full
        the steps were (pad rows, finished rows and free slots do not count)."""
        self.admitted_rows = 0
        """Rows that joined a continuous batch already decoding."""
        self.shifts = 0
        """Times a continuous batch moved its rows left in the cache to make room."""
        self.event_s = 0.0
        """Seconds the batch-at-a-time loop spent turning steps into events and handing
        them over (host work per step that grows with rows; read by the serving bench)."""
        self.worker_cpu_s = 0.0
        """CPU seconds of the worker thread in batch-at-a-time batches (the rest of the
        process's CPU time is the event loop's: HTTP, streaming; read by the serving bench)."""
        self.busy = False

    # -- queue -------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue a job; a full queue or a closing server answers 429/503 with Retry-After."""
        with self._cond:
            if self._closing:
                raise ApiError(
                    503,
                    "the server is shutting down",
                    kind="server_error",
                    headers={"Retry-After": "5"},
                )
            waiting = sum(len(j.prompts) for j in self._jobs)
            if waiting + len(job.prompts) > self.max_queue:
                raise ApiError(
                    429,
                    f"too many requests waiting ({waiting} rows queued, limit {self.max_queue}); retry shortly",
                    kind="rate_limit_error",
                    code="queue_full",
                    headers={"Retry-After": "1"},
                )
            self._jobs.append(job)
            self._cond.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="serifu-decode", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new jobs, cancel the waiting ones, let the running batch finish."""
        with self._cond:
            self._closing = True
            waiting = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
        for job in waiting:
            job.emit(
                Event(
                    "error", error=ApiError(503, "the server is shutting down", kind="server_error")
                )
            )
        if self._thread is not None:
            self._thread.join(timeout)

    def warm_up(self, max_tokens: int = 48, turn: str = "こんにちは") -> dict[str, Any]:
        """Before serving (call before :meth:`start`): one short batch of every batch-size
        bucket up to ``max_batch`` per model, with each heroine's default sampling, so the
        static decoders and their CUDA graphs are made now and not inside the first clients'
        requests (capturing a 7B model's step takes a large part of a second per size), and
        each heroine's system prompt is kept as cached keys and values (``prefix_cache``).
        ``max_tokens`` and ``turn`` pick the cache-length bucket a typical request uses.
        Nothing happens where the static decoder does not run (CPU, 4-bit, PEFT switching).
        Returns what was warmed: batch sizes per model group and the seconds it took."""
        from serifu.inference.decoding import static_decoding

        start = time.perf_counter()
        groups: dict[str, list[Heroine]] = {}
        for heroine in self.heroines.values():
            groups.setdefault(heroine.batch_group(), []).append(heroine)
        warmed: dict[str, list[int]] = {}
        for key, members in groups.items():
            bot = members[0].bot
            mixed = self._prepare(bot.model)
            if not static_decoding(bot.model):
                continue
            prompts = [h.encoder.encode_prompt(turn) for h in members]
            sizes = sorted(
                {self._bucket(bot.model, n) for n in self.buckets if n <= self.max_batch}
            )
            for size in sizes or [self._bucket(bot.model, 1)]:
                who = [members[i % len(members)] for i in range(size)]
                names = [h.adapter_name for h in who]
                batch = [prompts[i % len(members)] for i in range(size)]
                specs = [self._prefix_spec(h, p) for h, p in zip(who, batch, strict=True)]
                rows = mixed.rows(bot.model, names) if mixed else _adapters(bot.model, names)
                with rows:
                    steps = bot.decode(batch, max_new_tokens=max_tokens, prefixes=specs)
                    for i, _ in enumerate(steps):  # the step graph is captured at step 2
                        if i >= 2:
                            break
                    steps.close()
            warmed[key] = sizes
        return {"batch_sizes": warmed, "seconds": round(time.perf_counter() - start, 3)}

    def _prefix_spec(self, heroine: Heroine, prompt: Sequence[int]) -> tuple[Any, int] | None:
        """(key, length) of ``prompt``'s leading tokens that her later prompts share: her
        system prompt (as far as it does not depend on the query), keyed by her adapter."""
        from serifu.accel.prefix import spec_for, system_part

        if not self.prefix_cache:
            return None
        if heroine.id not in self._prefix_len:
            self._prefix_len[heroine.id] = system_part(heroine.encoder.encode_prompt)
        probe, length = self._prefix_len[heroine.id]
        return spec_for(heroine.adapter_name, prompt, probe, length)

    def _next(self) -> Job | None:
        """The oldest waiting job (None: the server is closing and nothing waits)."""
        with self._cond:
            while not self._jobs and not self._closing:
                self._cond.wait()
            if self._closing and not self._jobs:
                return None
            return self._jobs.popleft()

    def _take(self, first: Job) -> list[Job]:
        """``first`` and the waiting jobs that can share its batch (see ``batch_wait``)."""
        with self._cond:
            group, rows = [first], len(first.prompts)
            key = self._key(first)
            if key is None:
                return group
            start = time.monotonic()
            quiet_until = start + self.batch_wait
            while True:
                for job in list(self._jobs):
                    if self._key(job) == key and rows + len(job.prompts) <= self.max_batch:
                        self._jobs.remove(job)
                        group.append(job)
                        rows += len(job.prompts)
                        quiet_until = time.monotonic() + self.batch_wait
                now = time.monotonic()
                left = min(quiet_until, start + 10 * self.batch_wait) - now
                if rows >= self.max_batch or left <= 0 or self._closing:
                    return group
                self._cond.wait(left)  # a burst of requests may be arriving: let it join

    def _key(self, job: Job, stops: bool = True) -> str | None:
        key = job.key(stops)
        return key if key is None or self.mix_adapters else f"{job.heroine.id}|{key}"

    # -- decoding ------------------------------------------------------------------------
    def _work(self) -> None:
        while (first := self._next()) is not None:
            if first.cancelled.is_set():
                continue
            self.busy = True
            group, batch = [first], None
            try:
                batch = self._continuous(first)
                if batch is not None:
                    self._serve(batch, first)
                else:
                    group = [j for j in self._take(first) if not j.cancelled.is_set()]
                    self._run(group)
            except (SerifuError, ValueError) as exc:
                for job in batch.jobs() if batch is not None else group:
                    job.emit(Event("error", error=ApiError(400, str(exc))))
            except Exception as exc:  # keep serving; the client gets a JSON error, not a trace
                log.exception("decoding failed")
                if batch is not None:  # an unexpected failure: batch at a time from now on
                    self.continuous = False
                    self.continuous_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                for job in batch.jobs() if batch is not None else group:
                    job.emit(
                        Event(
                            "error",
                            error=ApiError(
                                500, f"internal error: {type(exc).__name__}", kind="server_error"
                            ),
                        )
                    )
            finally:
                self.busy = False

    # -- continuous batching ---------------------------------------------------------------
    def _continuous(self, first: Job) -> Any:
        """A :class:`~serifu.serving.continuous.ContinuousBatch` for ``first`` (not begun), or
        None when it runs in a batch of its own: seeded, continuous batching off, no static
        decoder (PEFT switching, a 4-bit model, a CPU), more rows than a batch holds."""
        from serifu.inference.decoding import _static_decoder, static_decoding

        key = self._key(first, stops=False)
        if not self.continuous or key is None:
            return None
        bot = first.heroine.bot
        mixed = self._prepare(bot.model)
        if not static_decoding(bot.model):
            return None
        if hasattr(bot.model, "peft_config") and mixed is None:
            return None
        size = self._bucket(bot.model, self.max_batch)
        longest = max(len(p) for p in first.prompts)
        need = max(self.context, longest + first.max_tokens)
        vocab = getattr(bot.rules, "vocab", None)
        extra = {} if vocab is None else {"vocab": vocab}
        decoder = _static_decoder(bot.model, size, need, **extra)
        if decoder is None:
            return None
        from serifu.serving.continuous import ContinuousBatch

        batch = ContinuousBatch(key, first, decoder, mixed)
        return batch if batch.can_hold(first) else None

    def _serve(self, batch: Any, first: Job) -> None:
        """Decode ``batch`` step by step, admitting waiting jobs at every step boundary,
        until no row runs and none can join."""
        batch.pending = [first]  # a failure from here on still answers it
        high = self._high
        high[batch.max_len] = max(high.get(batch.max_len, 0), *(len(p) for p in first.prompts))
        batch.begin([first], high[batch.max_len])
        self.batches += 1
        self.batched_rows += len(first.prompts)
        _send(batch.admit(first))
        batch.pending.pop(0)
        shifts = 0
        while True:
            batch.pending = self._joining(batch)  # a failure still answers them
            while batch.pending:
                job = batch.pending[0]
                high[batch.max_len] = max(high[batch.max_len], *(len(p) for p in job.prompts))
                self.batched_rows += len(job.prompts)
                self.admitted_rows += len(job.prompts)
                _send(batch.admit(job))
                batch.pending.pop(0)
            self.shifts += batch.shifts - shifts
            shifts = batch.shifts
            if not batch.active:
                batch.drop()  # a step still running holds finished rows only
                return
            steps = batch.steps
            _send(batch.step())
            self.steps += batch.steps - steps
            self.step_rows += batch.recorded

    def _joining(self, batch: Any) -> list[Job]:
        """The waiting jobs that join ``batch`` now, oldest first. When the oldest waiting
        job can never join it (other settings, too long), none joins: the batch drains and
        that job runs next."""
        joining: list[Job] = []
        oldest = True
        with self._cond:
            free, keep = len(batch.free()), 0
            for job in list(self._jobs):
                if job.cancelled.is_set():
                    self._jobs.remove(job)
                    continue
                if self._key(job, stops=False) != batch.key or not batch.can_hold(job):
                    if oldest:
                        break
                    continue
                oldest = False
                # a shift for a later job never pushes the write slot below an older one's
                # prompt (nor below the prompts already chosen)
                keep = max(keep, *(len(p) for p in job.prompts))
                if len(job.prompts) > free:
                    continue
                batch.make_room(job, keep)
                if batch.fits(job):
                    self._jobs.remove(job)
                    joining.append(job)
                    free -= len(job.prompts)
        return joining

    def _run(self, group: list[Job]) -> None:
        cpu = time.thread_time()
        try:
            self._run_batch(group)
        finally:
            self.worker_cpu_s += time.thread_time() - cpu

    def _run_batch(self, group: list[Job]) -> None:
        heroine = group[0].heroine
        bot = heroine.bot
        owners: list[tuple[Job, int]] = [
            (job, row) for job in group for row in range(len(job.prompts))
        ]
        prompts = [p for job in group for p in job.prompts]
        names = [job.heroine.adapter_name for job, _ in owners]
        self.batches += 1
        self.batched_rows += len(prompts)
        rows = len(prompts)
        mixed = self._prepare(bot.model)
        size = self._bucket(bot.model, rows)
        self.padded_rows += size - rows
        specs = [
            self._prefix_spec(job.heroine, p) for (job, _), p in zip(owners, prompts, strict=True)
        ]
        # pad rows: the first row again (its cached prefix too), decoded and never sent
        prompts += [prompts[0]] * (size - rows)
        names += [names[0]] * (size - rows)
        specs += [specs[0]] * (size - rows)
        sent = [0] * rows
        done = [False] * rows
        cut = [False] * rows
        first = group[0]
        held: list[tuple[Job, Event]] = []  # text not handed over yet (``stream_interval``)
        handed = time.monotonic()
        # no stacked adapters here: PEFT switches (``_prepare`` already decided)
        adapters = mixed.rows(bot.model, names) if mixed else _adapters(bot.model, names, False)
        with adapters:
            steps = bot.decode(
                prompts,
                max_new_tokens=max(j.max_tokens for j in group),
                params=first.params,
                seed=first.seed,
                stop=first.stop,
                one_line=first.one_line,
                prefixes=specs,
            )
            try:
                for states in steps:
                    began = time.perf_counter()
                    self.steps += 1
                    self.step_rows += done.count(False)
                    out: list[tuple[Job, Event]] = []  # this step's events, sent at once
                    urgent = self.stream_interval <= 0
                    for i in range(rows):
                        if done[i]:
                            continue
                        job, row = owners[i]
                        if job.cancelled.is_set():
                            done[i] = cut[i] = True
                            continue
                        state = states[i]
                        if len(state.text) > sent[i]:
                            if not sent[i]:
                                urgent = True  # a row's first text goes at once
                            out.append((job, Event("delta", row, state.text[sent[i] :])))
                            sent[i] = len(state.text)
                        reason = state.finish_reason if state.done else None
                        if reason is None and state.n_tokens >= job.max_tokens:
                            reason = "length"
                        if reason is not None:
                            done[i] = True
                            event = Event(
                                "done",
                                row,
                                finish_reason=reason,
                                n_tokens=state.n_tokens,
                                logprob=state.logprob,
                            )
                            out.append((job, event))
                            urgent = True
                    held += out
                    if held and (urgent or time.monotonic() - handed >= self.stream_interval):
                        _send(held if self.stream_interval <= 0 else _merge_deltas(held))
                        held, handed = [], time.monotonic()
                    self.event_s += time.perf_counter() - began
                    if all(done):
                        if any(cut):
                            self.cancelled_batches += 1
                        break
            finally:
                close = getattr(steps, "close", None)
                if close is not None:
                    close()
                _send(_merge_deltas(held))
        _send(
            [
                (job, Event("done", row, finish_reason="length", n_tokens=job.max_tokens))
                for i, (job, row) in enumerate(owners)
                if not done[i]
            ]
        )

    def _prepare(self, model: Any) -> Any:
        """The installed stacked adapters for this model (None: no LoRA, or PEFT switches
        them: then, with several adapters, the static decoder is off — a captured graph
        would replay the adapter active at capture). Sets the decoder-cache size."""
        lm = model.get_base_model() if hasattr(model, "get_base_model") else model
        lm.__dict__["_serifu_max_decoders"] = self.max_decoders
        off = not self.static
        mixed = None
        if hasattr(model, "peft_config"):
            from serifu.serving.mixed_lora import MixedLora

            found = MixedLora.for_model(model)
            if self.stacked and _stacking_allowed():
                mixed = found
            if mixed is not None:
                mixed.install(model)
            else:
                if found is not None:
                    found.uninstall(model)
                off = True
        lm.__dict__["_serifu_static_off"] = off
        return mixed

    def _bucket(self, model: Any, rows: int) -> int:
        """The padded batch size: the next bucket when the static decoder runs, else rows."""
        from serifu.inference.decoding import static_decoding

        if not self.buckets or not static_decoding(model):
            return rows
        return next((b for b in self.buckets if b >= rows), rows)


def _send(events: list[tuple[Job, Event]]) -> None:
    """Hand a step's events to their event loops: one wake-up per loop, not one per event."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, Event]]] = {}
    for job, event in events:
        by_loop.setdefault(job.loop, []).append((job, event))
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            loop.call_soon_threadsafe(_deliver, items)


def _merge_deltas(events: list[tuple[Job, Event]]) -> list[tuple[Job, Event]]:
    """Each row's consecutive text pieces as one delta (order kept; a "done" ends a row)."""
    out: list[tuple[Job, Event]] = []
    last: dict[tuple[int, int], Event] = {}
    for job, event in events:
        key = (id(job), event.row)
        if event.kind == "delta" and key in last:
            last[key].text += event.text
            continue
        if event.kind == "delta":
            event = Event("delta", event.row, event.text)
            last[key] = event
        else:
            last.pop(key, None)
        out.append((job, event))
    return out


def _deliver(items: list[tuple[Job, Event]]) -> None:
    for job, event in items:
        job.events.put_nowait(event)


def _stacking_allowed() -> bool:
    """``SERIFU_STACKED_LORA=0`` turns the stacked adapters off (PEFT's loop instead)."""
    import os

    return os.environ.get("SERIFU_STACKED_LORA", "1") != "0"


@contextlib.contextmanager
def _adapters(model: Any, names: list[str | None], stacked: bool = True) -> Iterator[None]:
    """While decoding: one PEFT adapter for every row, the bare base (adapters disabled),
    or — rows of several heroines — each row its own adapter (stacked adapters, see
    :mod:`serifu.serving.mixed_lora`; with ``stacked=False`` or where they cannot be built,
    PEFT's mixed-adapter batch, ``__base__`` for the bare base)."""
    if not hasattr(model, "peft_config"):
        yield
        return
    if len(set(names)) > 1:
        from serifu.serving.mixed_lora import MixedLora

        mixed = MixedLora.for_model(model) if stacked and _stacking_allowed() else None
        if mixed is not None:  # stacked adapters: one gather per layer, not one per adapter
            with mixed.rows(model, names):
                yield
            return
        with model._enable_peft_forward_hooks(adapter_names=[n or "__base__" for n in names]):
            yield
        return
    name = names[0]
    if name is None:
        with model.disable_adapter():
            yield
        return
    if getattr(model, "active_adapter", None) != name:
        model.set_adapter(name)
    yield
