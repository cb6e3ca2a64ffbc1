"""The chat API used by ``serifu chat``, evaluation and the game (docs/architecture.md)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError

HISTORY_WINDOW = 4
"""Earlier (user, reply) turns kept in the prompt."""
BEST_OF_GPU = 4
BEST_OF_CPU = 1
PROFILE_BEST_OF_CPU = 3
PROFILE_GREEDY_CPU = True
"""On the CPU only a line that asks about her profile is reranked, over this many candidates
(her card can check the answer; other lines keep streaming at best-of-1's latency)."""
MAX_INPUT_CHARS = 1000
"""Longest user message accepted (a 22k-character line took minutes and gigabytes)."""
HEAD_CHUNK = 256
"""Continuation tokens sent through the output head at once (logits: 1 MiB each for Gemma)."""


@dataclass
class Generation:
    """One generated reply."""

    text: str
    prompt: str
    stopped: bool
    """True when the reply ended at ``reply_end``'s newline, EOS or a stop string (not at the limit)."""
    n_tokens: int
    seconds: float
    logprob: float = 0.0
    """Summed log-probability of the generated tokens (the masked distribution at temperature 1)."""
    grounded: bool = False
    """Her card's answer replaced the candidates, none of which stated the asked fact
    (:attr:`Chatbot.card_answers`)."""


@dataclass
class RowState:
    """One row of :meth:`Chatbot.decode` after a step."""

    text: str
    """The reply so far, clean: only what can no longer change (held-back tails excluded)."""
    done: bool
    finish_reason: str | None
    """"stop" (newline, EOS or a stop string), "length" (token limit), None while running."""
    n_tokens: int
    logprob: float = 0.0


@dataclass
class Chatbot:
    """A base model (+ LoRA adapter) that answers in a character's voice."""

    model_id: str
    adapter: Path | None
    card: Any | None
    template: Any
    tokenizer: Any
    model: Any
    system: str | None
    add_special_tokens: bool = True
    generation: dict[str, Any] = field(default_factory=dict)
    history_window: int = HISTORY_WINDOW
    rules: Any = None
    """:class:`serifu.inference.decoding.TokenRules` (special/unused tokens masked, optional
    output vocabulary); built by :func:`load_chatbot`."""
    max_input_chars: int = MAX_INPUT_CHARS
    rerank: Any = None
    """A :class:`serifu.inference.rerank.Reranker` used by :meth:`best_of` (None: first sample)."""
    best_of_n: int = 1
    """Candidates :meth:`reply`/:meth:`stream` sample and rerank (1: no reranking)."""
    profile_best_of: int = 1
    """With ``best_of_n`` 1: candidates for a line that asks about one of her profile facts
    (``Reranker.asked``), reranked so the answer agrees with her card (1: off)."""
    profile_greedy: bool = False
    """The first of a profile question's candidates is the model's mode (greedy), the others
    sampled (:func:`load_chatbot` turns it on with the CPU default's profile rerank)."""
    card_answers: Any = None
    """:class:`serifu.inference.grounded.CardAnswers`: a profile question whose candidates all
    miss the asked fact gets her card's answer in her voice instead (None: off; the chat and
    the game turn it on, evaluations measure the model alone)."""
    grounded_replies: int = 0
    """How many replies so far were her card's answer (:attr:`card_answers`)."""
    prefix_cache: bool = False
    """Her system prompt's keys and values are computed once and copied into later replies'
    caches (:mod:`serifu.accel.prefix`): only the conversation after it runs. Uses the
    static decoder, also on the CPU (sampled replies); :func:`load_chatbot`'s chat and game
    callers turn it on."""
    notice: str | None = None
    """A line for the user about this setup (e.g. an adapter trained on another 4-bit grid
    than the reply weights': :func:`serifu.inference.quantize.grid_notice`); None: nothing."""
    name: str | None = None
    """Her name where there is no card: the speaker her adapter was trained as (the prompt
    templates that name her, e.g. ``novel``, then match her training prompts)."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    examples: Any = None
    """A :class:`serifu.retrieval.ExampleRetriever`: her k most similar real exchanges go into
    the prompt (ChatHaruhi's method); None: off."""

    @property
    def character_name(self) -> str:
        if self.card is not None:
            return str(self.card.short_name)
        return self.name or GENERIC_NAME

    def _system_for(self, query: str, extra_system: str | None) -> str | None:
        parts = [p for p in (self.system, extra_system) if p]
        if self.examples is not None:
            shown = self.examples.render(query, self.character_name)
            if shown:
                parts.append(shown)
        return "\n\n".join(parts) if parts else None

    def _check_input(self, *texts: str) -> None:
        for text in texts:
            if len(text) > self.max_input_chars:
                raise SerifuError(
                    f"the message is {len(text)} characters long; the limit is "
                    f"{self.max_input_chars} (raise it with `max_input_chars` / --max-input-chars)"
                )

    def render_prompt(
        self,
        query: str,
        history: Sequence[tuple[str, str]] = (),
        extra_system: str | None = None,
    ) -> str:
        """The prompt as text (for display and logs; the model gets :meth:`encode_prompt`)."""
        window = list(history)[-self.history_window :] if self.history_window else []
        return str(
            self.template.render(
                query,
                character=self.character_name,
                system=self._system_for(query, extra_system),
                history=window,
            )
        )

    def encode_prompt(
        self,
        query: str,
        history: Sequence[tuple[str, str]] = (),
        extra_system: str | None = None,
    ) -> list[int]:
        """Prompt token ids: her system prompt, ``extra_system``, the last turns, the query.

        User text (query, history, ``extra_system``) is encoded as plain text: typing
        ``<end_of_turn>`` never produces the control token.
        """
        from serifu.prompts.encode import encode_prompt

        window = list(history)[-self.history_window :] if self.history_window else []
        self._check_input(query, *(u for u, _ in window))
        return encode_prompt(
            self.tokenizer,
            self.template,
            query,
            character=self.character_name,
            system=self._system_for(query, extra_system),
            history=window,
            add_special_tokens=self.add_special_tokens,
        )

    # -- generation -------------------------------------------------------------------
    def _prefix_specs(self, prompts: Sequence[Sequence[int]]) -> list[tuple[Any, int] | None]:
        """Per prompt, (key, length) of its system part (see ``prefix_cache``). The key holds
        the adapter and whether PEFT's adapters are on, so a toggled adapter never reuses
        keys and values computed through the other state."""
        from serifu.accel.prefix import spec_for, system_part

        name = f"prefix:{self.system}"  # bots made by dataclasses.replace share _cache
        if name not in self._cache:
            self._cache[name] = system_part(self.encode_prompt)
        probe, length = self._cache[name]
        key = ("chatbot", str(self.adapter), _adapter_state(self.model))
        return [spec_for(key, p, probe, length) for p in prompts]

    def _encode(self, text: str, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (
            getattr(self.model.generation_config, "eos_token_id", None),
            self.tokenizer.eos_token_id,
        ):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(int(i) for i in source)
        control = self._end_token()
        if control is not None:  # e.g. Gemma's <end_of_turn>
            ids.add(control)
        for token in self.tokenizer.all_special_tokens:
            if token and token in self.template.reply_end:
                ids.add(int(self.tokenizer.convert_tokens_to_ids(token)))
        return ids

    def _text(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    def _end_token(self) -> int | None:
        """The id of ``reply_end``'s control token (Gemma's ``<end_of_turn>``), if it is one."""
        if "end_token" not in self._cache:
            before = self.template.reply_end.removesuffix("\n")
            token_id = None
            if before.startswith("<") and before.endswith(">"):
                ids = self.tokenizer(before, add_special_tokens=False)["input_ids"]
                token_id = int(ids[0]) if len(ids) == 1 else None
            self._cache["end_token"] = token_id
        return self._cache["end_token"]

    def _end_text(self) -> str:
        """What ``reply_end`` puts before its newline as text (``」``), or "" when it is a
        stop token (Gemma's ``<end_of_turn>`` never reaches the text)."""
        before = self.template.reply_end.removesuffix("\n")
        return "" if self._end_token() is not None else before

    def _visible(
        self, raw: str, stop: Sequence[str], one_line: bool, final: bool
    ) -> tuple[str, bool]:
        """(text that can be shown, whether a newline/stop string ended it)."""
        text, hit = raw, False
        if one_line and "\n" in text:
            text, hit = text.split("\n", 1)[0], True
        for s in stop:
            i = text.find(s) if s else -1
            if i >= 0:
                text, hit = text[:i], True
        end = self._end_text()
        if hit or final:
            if end and text.endswith(end):
                text = text[: -len(end)]
            return _clean(text), hit
        hold = len(end)
        for s in stop:  # a stop string may be starting at the end
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        text = text[: len(text) - hold] if hold else text
        return _clean(text).rstrip("\ufffd"), False

    def decode(
        self,
        prompt_ids: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 48,
        params: Mapping[str, Any] | None = None,
        seed: int | None = None,
        stop: Sequence[str] = (),
        one_line: bool = True,
        prefixes: Sequence[tuple[Any, int] | None] | None = None,
    ) -> Iterator[list[RowState]]:
        """The one decoding loop under chat, eval, the game and the server.

        Yields every row's :class:`RowState` after each step. ``params`` override
        ``self.generation``; ``stop`` are extra stop strings (the reply is cut before them);
        ``one_line=False`` lets a raw completion run past newlines. Special and unused
        tokens are always masked (``self.rules``). ``prefixes``: per row, (key, length) of
        the prompt's leading tokens that later requests share (the server: her system
        prompt, keyed by the row's adapter; see :func:`serifu.inference.decoding.decode_steps`).
        """
        from serifu.inference.decoding import TokenRules, decode_steps
        from serifu.inference.detokenize import texts

        if not prompt_ids:
            return
        if prefixes is None and self.prefix_cache:
            prefixes = self._prefix_specs(prompt_ids)
        merged = {**self.generation, **(params or {})}
        rows = len(prompt_ids)
        reasons: list[str | None] = [None] * rows
        hits = [False] * rows
        raws: list[tuple[int, str]] = [(0, "")] * rows  # (tokens, text): decoded once per token
        shown: list[tuple[int, str]] = [(-1, "")] * rows  # (tokens, visible text while running)
        incremental = texts(self.tokenizer, rows)  # only the new tokens are decoded
        states: list[RowState] = []
        logprobs: list[list[float]] = []

        def raw_text(row: int, ids: list[int]) -> str:
            if raws[row][0] != len(ids):
                raws[row] = (len(ids), incremental[row](ids))
            return raws[row][1]

        def is_done(row: int, ids: list[int]) -> bool:
            text, hits[row] = self._visible(raw_text(row, ids), stop, one_line, final=False)
            shown[row] = (len(ids), text)
            return hits[row]

        for generated in decode_steps(
            self.model,
            [list(p) for p in prompt_ids],
            pad_id=int(self.tokenizer.pad_token_id),
            eos_ids=self._eos_ids(),
            params=merged,
            max_new_tokens=max_new_tokens,
            is_done=is_done,
            seed=seed,
            rules=self.rules or TokenRules(),
            logprobs=logprobs,
            prefixes=prefixes,
        ):
            previous = states
            states = []
            for row, ids in enumerate(generated):
                if previous and previous[row].done:  # finished earlier: nothing changes
                    states.append(previous[row])
                    continue
                grew = len(ids) > (previous[row].n_tokens if previous else 0)
                if hits[row] or not grew:  # a stop string/newline, or EOS
                    reasons[row] = "stop"
                elif len(ids) >= max_new_tokens:
                    reasons[row] = "length"
                done = reasons[row] is not None
                if not done and shown[row][0] == len(ids):  # is_done saw this text already
                    text = shown[row][1]
                else:
                    text, _ = self._visible(raw_text(row, ids), stop, one_line, final=done)
                lp = sum(logprobs[row]) if logprobs else 0.0
                states.append(RowState(text, done, reasons[row], len(ids), lp))
            yield states

    def _final(
        self, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, seed: int | None, **kw: Any
    ) -> list[RowState]:
        last: list[RowState] = []
        for step in self.decode(prompt_ids, max_new_tokens=max_new_tokens, seed=seed, **kw):
            last = step
        return last

    def generate_batch(
        self,
        queries: Sequence[str],
        max_new_tokens: int = 48,
        seed: int | None = 0,
        params: Mapping[str, Any] | None = None,
        best_of: int | None = None,
    ) -> list[Generation]:
        """Replies to many single-turn queries at once (left padding), e.g. for evaluation.

        ``best_of`` (default: :meth:`candidates` of each query, i.e. ``self.best_of_n`` or,
        for a profile question on the CPU default, ``self.profile_best_of``) > 1 samples that
        many candidates per query in the same batch and keeps the one the reranker prefers.
        """
        if not queries:
            return []
        if best_of is not None:
            return self._generate_group(queries, max(1, best_of), max_new_tokens, seed, params)
        counts = [self.candidates(q) for q in queries]
        out: list[Generation | None] = [None] * len(queries)
        for n in sorted(set(counts)):  # one batch per candidate count
            where = [i for i, c in enumerate(counts) if c == n]
            done = self._generate_group(
                [queries[i] for i in where], n, max_new_tokens, seed, params
            )
            for i, generation in zip(where, done, strict=True):
                out[i] = generation
        return [g for g in out if g is not None]

    def _generate_group(
        self,
        queries: Sequence[str],
        n: int,
        max_new_tokens: int,
        seed: int | None,
        params: Mapping[str, Any] | None,
    ) -> list[Generation]:
        prompts = [self.render_prompt(q) for q in queries]
        encoded = [self.encode_prompt(q) for q in queries]
        if n > 1:
            greedy = [i * n for i, q in enumerate(queries) if self._greedy_first(q)]
            params = {"do_sample": True, **(params or {})}
            if greedy:
                params["greedy_rows"] = tuple(greedy)
        started = time.perf_counter()
        states = self._final(
            [e for e in encoded for _ in range(n)], max_new_tokens, seed, params=params
        )
        seconds = time.perf_counter() - started
        out = []
        for i, (query, prompt) in enumerate(zip(queries, prompts, strict=True)):
            group = [
                Generation(
                    st.text, prompt, st.finish_reason == "stop", st.n_tokens, seconds, st.logprob
                )
                for st in states[i * n : (i + 1) * n]
            ]
            pick = self.rerank.best(query, group) if (n > 1 and self.rerank is not None) else 0
            out.append(self._grounded(query, group, pick))
        return out

    def _grounded(self, query: str, group: list[Generation], pick: int) -> Generation:
        """The picked candidate, or her card's answer when none of ``group`` states the fact
        ``query`` asks about (:attr:`card_answers`)."""
        if self.card_answers is None or self.rerank is None:
            return group[pick]
        from serifu.inference.grounded import needs_card_answer

        asked = self.rerank.asked(query)
        if not needs_card_answer(asked, query, [g.text for g in group]):
            return group[pick]
        text = self.card_answers.answer(asked[0], query)
        self.grounded_replies += 1
        return dataclasses.replace(group[pick], text=text, stopped=True, grounded=True)

    def score_replies(
        self, queries: Sequence[str], replies: Sequence[str], batch_size: int = 8
    ) -> list[tuple[float, int]]:
        """(summed NLL, tokens) of each ``reply`` + reply end after her prompt for ``query``,
        tokenised exactly as training and chat do (:mod:`serifu.prompts.encode`)."""
        import torch

        from serifu.prompts.encode import encode_reply

        end = self.template.reply_end
        encoded = [
            (self.encode_prompt(q), encode_reply(self.tokenizer, r, end))
            for q, r in zip(queries, replies, strict=True)
        ]
        return self._score_encoded(encoded, batch_size, torch)

    def best_of(
        self,
        query: str,
        history: Sequence[tuple[str, str]] = (),
        n: int | None = None,
        max_new_tokens: int = 48,
        seed: int | None = None,
    ) -> str:
        """Sample ``n`` candidates in one batch and return the one the reranker scores best."""
        n = max(1, n or self.best_of_n)
        ids = self.encode_prompt(query, history)
        params: dict[str, Any] | None = {"do_sample": True} if n > 1 else None
        if params is not None and self._greedy_first(query):
            params["greedy_rows"] = (0,)
        states = self._final([ids] * n, max_new_tokens, seed, params=params)
        candidates = [
            Generation(st.text, "", st.finish_reason == "stop", st.n_tokens, 0.0, st.logprob)
            for st in states
        ]
        if self.rerank is None or n == 1:
            return candidates[0].text
        return self._grounded(query, candidates, self.rerank.best(query, candidates)).text

    def reply(
        self,
        query: str,
        history: Sequence[tuple[str, str]] = (),
        max_new_tokens: int = 48,
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        return "".join(self.stream(query, history, max_new_tokens, seed=seed, params=params))

    def _greedy_first(self, query: str) -> bool:
        """Whether ``query``'s first candidate is greedy (:attr:`profile_greedy`)."""
        return self.profile_greedy and self.rerank is not None and bool(self.rerank.asked(query))

    def candidates(self, query: str) -> int:
        """How many candidates :meth:`stream` samples for ``query``: ``best_of_n``, or
        ``profile_best_of`` when only profile questions are reranked and this is one."""
        if self.best_of_n > 1 or self.profile_best_of <= 1 or self.rerank is None:
            return self.best_of_n
        return self.profile_best_of if self.rerank.asked(query) else 1

    def stream(
        self,
        query: str,
        history: Sequence[tuple[str, str]] = (),
        max_new_tokens: int = 48,
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[str]:
        """Text pieces of one reply as they are generated (stops before the newline).

        With ``best_of_n > 1`` the candidates are generated together and the chosen reply
        comes as one piece. Plain greedy replies on the GPU arrive a chunk of steps (8
        tokens) at a time (``serifu.inference.decoding``; ``SERIFU_GREEDY_CHUNK=0``: per token).
        """
        n = 1 if params else self.candidates(query)
        if n > 1:
            yield self.best_of(query, history, n=n, max_new_tokens=max_new_tokens, seed=seed)
            return
        ids = self.encode_prompt(query, history)
        sent = 0
        for [state] in self.decode([ids], max_new_tokens=max_new_tokens, seed=seed, params=params):
            if len(state.text) > sent:
                yield state.text[sent:]
                sent = len(state.text)

    def score(
        self, prompts: Sequence[str], continuations: Sequence[str], batch_size: int = 8
    ) -> list[tuple[float, int]]:
        """(summed NLL, number of tokens) of each continuation given its prompt.

        Pairs run ``batch_size`` at a time (right padding, so positions are unchanged) and
        the output head (262k words for Gemma) runs only where a continuation token is
        predicted, not over the whole prompt.
        """
        import torch

        encoded = [
            (self._encode(p, self.add_special_tokens), self._encode(c, False))
            for p, c in zip(prompts, continuations, strict=True)
        ]
        return self._score_encoded(encoded, batch_size, torch)

    def _score_encoded(
        self, encoded: Sequence[tuple[list[int], list[int]]], batch_size: int, torch: Any
    ) -> list[tuple[float, int]]:
        results = [(0.0, 0)] * len(encoded)
        todo = sorted(
            (i for i, (_, c) in enumerate(encoded) if c),
            key=lambda i: -len(encoded[i][0]) - len(encoded[i][1]),
        )  # similar lengths share a batch: less padding
        with torch.inference_mode():
            for start in range(0, len(todo), max(1, batch_size)):
                rows = todo[start : start + max(1, batch_size)]
                sums = self._score_batch([encoded[i] for i in rows])
                for i, nll in zip(rows, sums, strict=True):
                    results[i] = (nll, len(encoded[i][1]))
        return results

    def _score_batch(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[float]:
        """Summed continuation NLL of each (prompt ids, continuation ids) pair, one forward."""
        import torch
        import torch.nn.functional as F

        lm = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        device = next(self.model.parameters()).device
        width = max(len(p) + len(c) for p, c in pairs)
        ids = torch.full((len(pairs), width), int(self.tokenizer.pad_token_id), dtype=torch.long)
        mask = torch.zeros_like(ids)
        rows: list[int] = []
        cols: list[int] = []
        targets: list[int] = []
        for b, (p, c) in enumerate(pairs):
            n = len(p) + len(c)
            ids[b, :n] = torch.tensor(p + c)
            mask[b, :n] = 1
            rows += [b] * len(c)
            cols += range(len(p) - 1, n - 1)  # the position before each continuation token
            targets += c
        hidden = lm.base_model(
            input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False
        ).last_hidden_state
        picked = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
        target = torch.tensor(targets, device=device)
        nll = torch.cat(
            [
                F.cross_entropy(
                    self._logits(lm, picked[i : i + HEAD_CHUNK]).float(),
                    target[i : i + HEAD_CHUNK],
                    reduction="none",
                )
                for i in range(0, len(targets), HEAD_CHUNK)
            ]
        )
        sums = torch.zeros(len(pairs), dtype=torch.float32, device=device)
        sums.index_add_(0, torch.tensor(rows, device=device), nll)
        return [float(v) for v in sums.tolist()]

    @staticmethod
    def _logits(lm: Any, hidden: Any) -> Any:
        """The causal LM's output head (with Gemma's final logit soft-capping, if any)."""
        logits = lm.get_output_embeddings()(hidden)
        config = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
        softcap = getattr(config, "final_logit_softcapping", None)
        if softcap:
            logits = (logits / softcap).tanh() * softcap
        return logits


def _clean(text: str) -> str:
    return text.replace("\ufffd", "")


def load_chatbot(
    model: str | None = None,
    adapter: str | Path | None = None,
    character: str | None = None,
    system_prompt: bool = True,
    quantize: bool | None = None,
    device: str | None = None,
    vocabulary: str = "auto",
    best_of: int | None = None,
    examples: int = 0,
    max_input_chars: int = MAX_INPUT_CHARS,
    profile_best_of: int | None = None,
    weights: str = "bf16",
    merge: bool | None = None,
    prefix_cache: bool = False,
    card_answers: bool = False,
    lines: Sequence[str] = (),
    no_repeat_ngram: int | None = None,
    pairs: Sequence[tuple[str, str]] = (),
) -> Chatbot:
    """Load a base (4-bit or full precision) + optional adapter, for one character.

    ``model`` defaults to the adapter's base (its ``serifu.json``), else ``gemma-3-270m``
    with the character's shipped adapter for it when there is one. ``quantize=None``
    means full precision (bf16 on a GPU, where replies run on CUDA-graph steps —
    see ``serifu.accel.decode``); ``quantize=True`` loads the base in NF4 4-bit.

    Special and unused tokens are always masked. ``vocabulary``: "auto" (= "on" for a
    character with scripts, her ``lines`` or an adapter that keeps her tokens, else "off")
    restricts replies to Japanese text plus the tokens of her lines and card
    (``serifu.inference.vocab``). ``best_of``: candidates sampled and
    reranked per reply (None: :func:`default_best_of` for the device); where that is 1 and
    ``best_of`` was not given, ``profile_best_of`` (None: :data:`PROFILE_BEST_OF_CPU`)
    candidates are reranked for lines that ask about her profile only, the first of them
    the model's mode (:data:`PROFILE_GREEDY_CPU`, ``Chatbot.profile_greedy``). ``examples``: her k
    most similar real exchanges go into the prompt (0: off). ``weights``: "bf16", or "int4"
    (torchao, CUDA) / "nf4" (bitsandbytes) reply weights, quantised after the adapter is
    merged, or "uint4" (Serifu's uint4 GEMV on CUDA; the base 4-bit under the unmerged adapter,
    ``serifu.inference.quantize``). ``merge`` (None: on CUDA in full precision, and for int4 /
    nf4) folds the single adapter into the weights: replies then run on the plain model.
    ``prefix_cache``: her system prompt runs once, later replies copy its keys and values
    (``Chatbot.prefix_cache``; chat and the game turn it on). ``card_answers``: a profile
    question none of whose reranked candidates states the fact is answered from her card, in
    her voice (``Chatbot.card_answers``; chat and the game turn it on). ``no_repeat_ngram``:
    n > 1, a reply never says an n-token piece of itself again (0: off; None: the base
    model's default, ``GENERATION_DEFAULTS``). Her exchanges for ``examples``: her pack's
    (held-out pairs left out), else ``pairs`` (a script speaker's training split), else those
    her adapter keeps (``serifu.retrieval.examples.ADAPTER_FILE``).
    """
    from serifu import plugins
    from serifu.characters import system_prompt as render_system
    from serifu.modeling import default_device, load_model, load_tokenizer, resolve_base
    from serifu.modeling.default import default_model
    from serifu.prompts.chat_template import template_for
    from serifu.training.adapters import attach_adapter, check_adapter_base, read_adapter

    no_repeat = no_repeat_setting(no_repeat_ngram)  # checked before any weights load
    adapter_path = Path(adapter) if adapter is not None else None
    info = read_adapter(adapter_path) if adapter_path is not None else {}
    character = character or (info.get("dataset") or {}).get("character_id")
    pack = plugins.get_character(character) if character else None
    if model is None:
        model = info.get("base_model") or default_model()
        if adapter_path is None and pack is not None and model in pack.adapters:
            adapter_path = Path(pack.adapters[model])
            info = read_adapter(adapter_path)
    device = device or default_device()
    quantize = False if quantize is None else quantize
    if weights != "bf16" and quantize:
        raise SerifuError(f"weights={weights!r} quantises the merged model: leave quantize off")
    base = resolve_base(model)
    if adapter_path is not None:  # checked before any weights load
        check_adapter_base(info, base.id, adapter_path)
    tokenizer = load_tokenizer(base)
    lm = load_model(base, quantize=quantize, device=device)
    if adapter_path is not None:
        lm = attach_adapter(lm, adapter_path)
        lm.eval()
    if merge is None:
        merge = weights == "bf16" and str(device).startswith("cuda") and not quantize
    if weights != "bf16" or (merge and adapter_path is not None):
        from serifu.inference.quantize import prepare_reply_weights

        # int4 / nf4 always quantise the merged model (prepare_reply_weights' default), even
        # under eval's merge=False (which keeps a bf16 or uint4 adapter switchable)
        lm = prepare_reply_weights(lm, weights, merge=None if weights in ("int4", "nf4") else merge)
    notice = None
    if adapter_path is not None:
        from serifu.inference.quantize import grid_notice

        notice = grid_notice(info, weights, merge=bool(merge))
    card = pack.card() if pack is not None else None
    bot = Chatbot(
        model_id=base.id,
        adapter=adapter_path,
        card=card,
        template=template_for(base, tokenizer),
        tokenizer=tokenizer,
        model=lm,
        system=render_system(card) if (system_prompt and card is not None) else None,
        add_special_tokens=base.add_special_tokens,
        generation={**base.generation, **no_repeat},
        max_input_chars=max_input_chars,
        notice=notice,
        name=trained_name(info),
    )
    from serifu.inference.vocab import read_adapter_vocabulary

    bot.rules = token_rules(bot, pack, vocabulary, lines, read_adapter_vocabulary(adapter_path))
    bot.prefix_cache = prefix_cache
    bot.best_of_n = default_best_of(device) if best_of is None else max(1, best_of)
    if profile_best_of is None:  # the CPU default: rerank profile questions only
        profile_best_of = PROFILE_BEST_OF_CPU if best_of is None and bot.best_of_n == 1 else 1
    if bot.best_of_n > 1:
        from serifu.inference.rerank import Reranker

        bot.rerank = Reranker.for_character(character, card)
        if card is None and bot.name:  # a play speaker's adapter: the name she trained as
            bot.rerank.name = bot.name
    elif profile_best_of > 1 and card is not None:
        from serifu.inference.rerank import Reranker
        from serifu.profile import card_facts

        bot.profile_best_of = profile_best_of
        bot.profile_greedy = PROFILE_GREEDY_CPU
        bot.rerank = Reranker(card_facts(card))  # the card and the likelihood decide
    if card_answers and bot.rerank is not None and pack is not None and card is not None:
        from serifu.inference.grounded import CardAnswers

        bot.card_answers = CardAnswers.for_character(pack.id, card)
    if examples > 0:
        from serifu.retrieval import ExampleRetriever
        from serifu.retrieval.examples import read_adapter_examples

        shown = training_pairs(pack) if pack is not None else list(pairs)
        shown = shown or read_adapter_examples(adapter_path)
        protagonist = card.protagonist if card else "主人公"
        bot.examples = ExampleRetriever(shown, k=examples, protagonist=protagonist)
    return bot


GENERIC_NAME = "キャラクター"
"""Her name in prompts when neither a card nor her adapter names her."""


def no_repeat_setting(size: int | None) -> dict[str, int]:
    """The generation parameter ``size`` asks for (None: none, the model's default stays)."""
    if size is None:
        return {}
    if size < 0 or size == 1:
        raise SerifuError(f"no-repeat n-gram size must be 0 (off) or at least 2, got {size}")
    return {"no_repeat_ngram_size": size}


def trained_name(info: Mapping[str, Any]) -> str | None:
    """The speaker an adapter was trained as (its dataset's ``character``), if it says."""
    name = (info.get("dataset") or {}).get("character")
    return str(name) if isinstance(name, str) and name.strip() else None


def default_best_of(device: str) -> int:
    """Candidates per reply by default: chosen from measured latency (docs/evaluation.md)."""
    return BEST_OF_GPU if str(device).startswith("cuda") else BEST_OF_CPU


def token_rules(
    bot: Chatbot,
    pack: Any | None,
    vocabulary: str,
    lines: Sequence[str] = (),
    her_ids: Sequence[int] | None = None,
) -> Any:
    """Banned special/unused tokens, plus her output vocabulary when ``vocabulary`` says so.
    Her lines: her pack's scripts, ``lines`` (a script's speaker) and ``her_ids`` (the
    tokens her adapter keeps, ``serifu.inference.vocab.ADAPTER_FILE``); "auto" turns the
    whitelist on when any of them is there."""
    from serifu.inference.decoding import TokenRules
    from serifu.inference.vocab import banned_ids, output_vocabulary

    if vocabulary not in ("auto", "on", "off", "raw"):
        raise SerifuError(f"vocabulary must be auto, on, off or raw (got {vocabulary!r})")
    if vocabulary == "raw":  # nothing masked: only to show what the masks prevent
        return TokenRules()
    keep = bot._eos_ids()
    rules = TokenRules(banned=banned_ids(bot.tokenizer, keep=keep))
    scripts = pack is not None and bool(pack.scripts)
    known = scripts or bool(lines) or bool(her_ids)
    if vocabulary == "on" or (vocabulary == "auto" and known):
        texts = [bot.system or "", *lines]
        if pack is not None:
            from serifu.data.characters import character_utterances

            texts += [u.text for u in character_utterances(pack)]
        rules.vocab = output_vocabulary(bot.tokenizer, texts, keep=keep, her_ids=her_ids or ())
    return rules


def training_pairs(pack: Any) -> list[tuple[str, str]]:
    """Her (query, reply) pairs outside the held-out splits (what retrieval may show: the
    coherence and perplexity pairs never come back in her prompt)."""
    from serifu.data.characters import character_pairs, character_utterances
    from serifu.evaluation.reference import HELD_OUT, heldout_pairs

    held = set(heldout_pairs(character_utterances(pack), pack.card().short_name, HELD_OUT))
    return [(p.query, p.reply) for p in character_pairs(pack) if (p.query, p.reply) not in held]


def _adapter_state(model: Any) -> tuple[bool, tuple[str, ...]] | None:
    """PEFT's adapter state (disabled?, active adapters) read from one LoRA layer; None for
    a plain model."""
    if not hasattr(model, "peft_config"):
        return None
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            return bool(module.disable_adapters), tuple(module.active_adapters)
    return None
