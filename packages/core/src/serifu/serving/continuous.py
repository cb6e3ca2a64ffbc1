"""Continuous batching: requests join a running batch at its next step and leave when done.

One :class:`~serifu.accel.decode.StaticDecoder` of ``size`` rows keeps decoding while
requests come and go. A request's prompt of L tokens is admitted into a free row at a step
boundary when L fits before the batch's write slot ``position`` (left-padding alignment:
its prompt takes the L slots just before it, positions 0..L-1, its own mask row; its pass
runs alone on a side cache) and ``position + max_tokens`` fits the cache; a finished or
cancelled row frees its slot at once. When the cache runs out of room ahead, every row's
slots move left together (:meth:`~serifu.accel.decode.StaticDecoder.shift`) instead of
draining the batch. Each row's adapter is written into the batch's row weights in place
(:meth:`~serifu.serving.mixed_lora.MixedLora.set_row`), so the step's CUDA graph serves
every mix.

The decoding rules are the chat loop's (``Chatbot.decode`` over ``decode_steps``), row by
row: the token masks (``bot.rules``), ``next_tokens`` with the same parameters, penalties
over the row's own prompt and reply (stop tokens replaced by a banned filler, as
``penalty_view`` does), EOS, newline and stop strings, ``max_tokens``, the chosen tokens'
log-probabilities under the masked distribution. A row's logits depend only on its own
tokens (its prompt's pass runs alone; every later op is per row for the decoder's fixed
size), so greedy tokens do not depend on the other rows. Sampling draws from one shared
generator, so a sampled row's draws do depend on its neighbours: seeded requests therefore
never come here (the engine runs them alone, as before).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from serifu.serving.engine import Event, Job


@dataclass
class _Row:
    job: Job
    index: int  # the row within its job (n choices x prompts)
    start: int  # its prompt's first cache slot
    ids: list[int] = field(default_factory=list)
    raw: str = ""
    sent: int = 0
    logprob: float = 0.0


class ContinuousBatch:
    """A running batch of ``decoder.batch_size`` rows of one batch key (sampling settings and
    model); each row keeps its own heroine, stop strings, ``one_line`` and ``max_tokens``."""

    def __init__(self, key: str, first: Job, decoder: Any, mixed: Any | None):
        import torch

        from serifu.inference.decoding import TokenRules

        bot = first.heroine.bot
        self.key = key
        self.decoder = decoder
        self.mixed = mixed
        self.size = int(decoder.batch_size)
        self.max_len = int(decoder.max_len)
        self.params = {**bot.generation, **first.params}
        self.rules = bot.rules or TokenRules()
        self.eos = set(bot._eos_ids())
        filler = next((i for i in self.rules.banned if i not in self.eos), None)
        self.filler = int(bot.tokenizer.pad_token_id) if filler is None else int(filler)
        self.rows: list[_Row | None] = [None] * self.size
        self.position = 0
        device = decoder.device
        self.seen = torch.full(
            (self.size, self.max_len), self.filler, dtype=torch.long, device=device
        )
        self.seen_len = torch.zeros(self.size, dtype=torch.long, device=device)
        self.reply_start = torch.zeros(self.size, dtype=torch.long, device=device)
        self.steps = 0
        self.admitted = 0
        self.shifts = 0
        self.recorded = 0  # rows recorded from the last step collected
        self._inflight: tuple[list[tuple[int, _Row]], Any, Any] | None = None
        self._index_key: tuple[int, ...] = ()
        self._index_host: Any = None
        self._index_tensor: Any = None
        self.admitting: Job | None = None
        self.pending: list[Job] = []  # chosen to join, not admitted yet

    # -- rows ------------------------------------------------------------------------------
    @property
    def active(self) -> int:
        return sum(r is not None for r in self.rows)

    def free(self) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r is None]

    def can_hold(self, job: Job) -> bool:
        """Whether ``job`` could ever run in this batch (its key, rows and length)."""
        longest = max(len(p) for p in job.prompts)
        return len(job.prompts) <= self.size and longest + job.max_tokens <= self.max_len

    def fits(self, job: Job) -> bool:
        """Whether ``job`` can be admitted now (free rows, its prompts before the write slot,
        room for its reply after it)."""
        longest = max(len(p) for p in job.prompts)
        return (
            len(job.prompts) <= len(self.free())
            and longest <= self.position
            and self.position + job.max_tokens <= self.max_len
        )

    def make_room(self, job: Job, keep: int = 0) -> None:
        """Shift every row left when ``job`` lacks room after the write slot and the slots
        before the oldest row are free, as far as keeps ``job``'s prompts (and prompts of
        ``keep`` tokens) fitting before it."""
        if self.position + job.max_tokens <= self.max_len:
            return
        starts = [r.start for r in self.rows if r is not None]
        if not starts:
            return
        longest = max(keep, *(len(p) for p in job.prompts))
        slots = min(min(starts), self.position - longest)
        if slots <= 0 or self.position - slots + job.max_tokens > self.max_len:
            return  # not yet: the oldest rows must finish first
        self.decoder.shift(slots)
        self.shifts += 1
        self.position -= slots
        for r in self.rows:
            if r is not None:
                r.start -= slots

    def begin(self, jobs: Sequence[Job], high: int) -> None:
        """Start the batch for ``jobs`` (all fit ``can_hold``): the write slot goes right
        after the longest prompt (at least ``high``, room permitting)."""
        longest = max(len(p) for j in jobs for p in j.prompts)
        room = self.max_len - max(j.max_tokens for j in jobs)
        self.position = max(longest, min(high, room))
        self.decoder.begin(self.position)
        if self.mixed is not None:
            self.mixed.set_rows([None] * self.size)

    def admit(self, job: Job) -> list[tuple[Job, Event]]:
        """Prefill ``job``'s rows into free rows and pick their first tokens."""
        import torch

        from serifu.inference.decoding import penalty_view

        events: list[tuple[Job, Event]] = []
        self.admitting = job  # a failure here still answers its client
        name = job.heroine.adapter_name
        for index, (slot, prompt) in enumerate(zip(self.free(), job.prompts, strict=False)):
            if self.mixed is not None:
                with self.mixed.alone(name):
                    logits = self.decoder.admit(slot, prompt, self.position)
                self.mixed.set_row(slot, name)
            else:
                logits = self.decoder.admit(slot, prompt, self.position)
            self.rows[slot] = _Row(job, index, self.position - len(prompt))
            ids = torch.tensor(prompt, dtype=torch.long, device=self.seen.device)
            self.seen[slot].fill_(self.filler)
            self.seen[slot, : len(prompt)] = penalty_view(ids[None], self.eos, self.filler)[0]
            self.seen_len[slot] = len(prompt)
            self.reply_start[slot] = len(prompt)
            slots = torch.tensor([slot], device=self.seen.device)
            (token,), (score,) = self._pick(slots, logits[None]).tolist()  # waits
            events += self._record(slot, int(token), float(score))
            self.admitted += 1
        self.admitting = None
        return events

    # -- decoding ------------------------------------------------------------------------------
    def step(self) -> list[tuple[Job, Event]]:
        """Launch the next step of every running row, then record the step launched before
        (its tokens were copied to the host while this one runs): the host's work on a step's
        tokens (text, stops, events) overlaps the device's next step. A row found finished
        has run one step too many; that token is dropped (never sent)."""
        previous = self._inflight
        self._inflight = self._launch()
        return self._collect(previous)

    def drop(self) -> None:
        """Forget a launched step whose rows all finished (nothing of it is sent)."""
        self._inflight = None

    def _launch(self) -> tuple[list[tuple[int, _Row]], Any, Any] | None:
        import torch

        for i, r in enumerate(self.rows):  # clients that went away: their rows are free
            if r is not None and r.job.cancelled.is_set():
                self.rows[i] = None
        owners = [(i, r) for i, r in enumerate(self.rows) if r is not None]
        if not owners:
            return None
        logits = self.decoder.step(self.decoder.step_ids)
        self.position += 1
        self.steps += 1
        slots = self._index([i for i, _ in owners])
        picked = self._pick(slots, logits.index_select(0, slots))
        host = picked.to("cpu", non_blocking=True)  # pinned: no wait for the device here
        event = None
        if picked.is_cuda:
            event = torch.cuda.Event()
            event.record()
        return owners, host, event

    def _collect(self, launched: tuple[list[tuple[int, _Row]], Any, Any] | None) -> list[Any]:
        self.recorded = 0
        if launched is None:
            return []
        owners, host, event = launched
        if event is not None:
            event.synchronize()  # this step's tokens only, not the step launched after it
        tokens, scores = host.tolist()
        events: list[tuple[Job, Event]] = []
        for (slot, row), token, score in zip(owners, tokens, scores, strict=True):
            if self.rows[slot] is not row:  # finished, cancelled or replaced meanwhile
                continue
            self.recorded += 1
            events += self._record(slot, int(token), float(score))
        return events

    def _index(self, slots: list[int]) -> Any:
        """The running rows as a device index, rebuilt only when they change (copied from
        pinned memory without waiting for the device)."""
        import torch

        key = tuple(slots)
        if key != self._index_key:
            host = torch.tensor(slots, dtype=torch.long)
            if self.seen.is_cuda:
                host = host.pin_memory()
            self._index_host = host  # alive until the copy ran
            self._index_tensor = host.to(self.seen.device, non_blocking=True)
            self._index_key = key
        return self._index_tensor

    def _pick(self, slots: Any, logits: Any) -> Any:
        """Choose the rows' next tokens and feed them back, on the device; returns
        [2, rows] float64: the tokens and their log-probabilities."""
        import torch

        from serifu.inference.sampling import next_tokens

        masked = self.rules.apply(logits)
        reply = (self.reply_start.index_select(0, slots), self.seen_len.index_select(0, slots))
        chosen = next_tokens(masked, self.seen.index_select(0, slots), self.params, None, reply)
        picked = masked.log_softmax(-1).gather(1, chosen[:, None])[:, 0]
        self.decoder.step_ids.index_copy_(0, slots, chosen[:, None])
        self.seen.index_put_((slots, self.seen_len.index_select(0, slots)), chosen)
        self.seen_len.index_add_(0, slots, torch.ones_like(slots))
        return torch.stack([chosen.double(), picked.double()])

    def _record(self, slot: int, token: int, score: float) -> list[tuple[Job, Event]]:
        """As ``decode_steps``' ``_record`` and ``Chatbot.decode`` do for one row."""
        r = self.rows[slot]
        assert r is not None
        bot = r.job.heroine.bot
        r.logprob += score
        reason: str | None = None
        if token in self.eos:
            reason = "stop"
        else:
            r.ids.append(token)
            r.raw = bot._text(r.ids)
            _, hit = bot._visible(r.raw, r.job.stop, r.job.one_line, final=False)
            if hit:
                reason = "stop"
            elif len(r.ids) >= r.job.max_tokens:
                reason = "length"
        text, _ = bot._visible(r.raw, r.job.stop, r.job.one_line, final=reason is not None)
        events: list[tuple[Job, Event]] = []
        if len(text) > r.sent:
            events.append((r.job, Event("delta", r.index, text[r.sent :])))
            r.sent = len(text)
        if reason is not None:
            done = Event("done", r.index, finish_reason=reason, n_tokens=len(r.ids))
            done.logprob = r.logprob
            events.append((r.job, done))
            self.rows[slot] = None
        return events

    def jobs(self) -> list[Job]:
        """The jobs with rows still running."""
        found: dict[int, Job] = {}
        for job in [*self.pending, *([self.admitting] if self.admitting else [])]:
            found[id(job)] = job
        for r in self.rows:
            if r is not None:
                found[id(r.job)] = r.job
        return list(found.values())
