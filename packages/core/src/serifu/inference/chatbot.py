"""The chat API used by ``serifu chat``, evaluation and the game (docs/architecture.md)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError
from serifu.prompts.templates import reply_text

DEFAULT_MODEL = "gemma-3-270m"
HISTORY_WINDOW = 4
"""Earlier (user, reply) turns kept in the prompt."""
HEAD_CHUNK = 256
"""Continuation tokens sent through the output head at once (logits: 1 MiB each for Gemma)."""


@dataclass
class Generation:
    """One generated reply."""

    text: str
    prompt: str
    stopped: bool
    """True when the reply ended at ``reply_end``'s newline or EOS (not at the token limit)."""
    n_tokens: int
    seconds: float


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

    @property
    def character_name(self) -> str:
        return str(self.card.short_name) if self.card is not None else "キャラクター"

    def render_prompt(self, query: str, history: Sequence[tuple[str, str]] = ()) -> str:
        window = list(history)[-self.history_window :] if self.history_window else []
        return str(
            self.template.render(
                query, character=self.character_name, system=self.system, history=window
            )
        )

    # -- generation -------------------------------------------------------------------
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
        for token in self.tokenizer.all_special_tokens:  # e.g. Gemma's <end_of_turn>
            if token and token in self.template.reply_end:
                ids.add(int(self.tokenizer.convert_tokens_to_ids(token)))
        return ids

    def _text(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    def _run(
        self, prompts: Sequence[str], max_new_tokens: int, seed: int | None
    ) -> Iterator[tuple[list[list[int]], list[bool]]]:
        from serifu.inference.decoding import decode_steps

        newline_seen = [False] * len(prompts)

        def is_done(row: int, ids: list[int]) -> bool:
            newline_seen[row] = "\n" in self._text(ids)
            return newline_seen[row]

        for generated in decode_steps(
            self.model,
            [self._encode(p, self.add_special_tokens) for p in prompts],
            pad_id=int(self.tokenizer.pad_token_id),
            eos_ids=self._eos_ids(),
            params=self.generation,
            max_new_tokens=max_new_tokens,
            is_done=is_done,
            seed=seed,
        ):
            yield generated, newline_seen

    def generate_batch(
        self, queries: Sequence[str], max_new_tokens: int = 48, seed: int | None = 0
    ) -> list[Generation]:
        """Replies to many single-turn queries at once (left padding), e.g. for evaluation."""
        prompts = [self.render_prompt(q) for q in queries]
        if not prompts:
            return []
        started = time.perf_counter()
        generated: list[list[int]] = [[] for _ in prompts]
        for step, _ in self._run(prompts, max_new_tokens, seed):
            generated = step
        seconds = time.perf_counter() - started
        out = []
        for prompt, ids in zip(prompts, generated, strict=True):
            text, newline = reply_text(self._text(ids), self.template.reply_end)
            stopped = newline or len(ids) < max_new_tokens
            out.append(Generation(_clean(text), prompt, stopped, len(ids), seconds))
        return out

    def reply(
        self,
        query: str,
        history: Sequence[tuple[str, str]] = (),
        max_new_tokens: int = 48,
        seed: int | None = None,
    ) -> str:
        return "".join(self.stream(query, history, max_new_tokens, seed=seed))

    def stream(
        self,
        query: str,
        history: Sequence[tuple[str, str]] = (),
        max_new_tokens: int = 48,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Text pieces of one reply as they are generated (stops before the newline)."""
        prompt = self.render_prompt(query, history)
        hold = len(self.template.reply_end.removesuffix("\n"))  # "」" may end the reply
        sent = 0
        text = ""
        for generated, newline in self._run([prompt], max_new_tokens, seed):
            raw = self._text(generated[0])
            if newline[0]:
                break
            text = _clean(raw)
            visible = text[: len(text) - hold] if hold else text
            visible = visible.rstrip("\ufffd")  # an incomplete multi-byte character
            if len(visible) > sent:
                yield visible[sent:]
                sent = len(visible)
        else:
            raw = None
        final = (
            _clean(reply_text(raw, self.template.reply_end)[0])
            if raw is not None
            else _strip_end(text, self.template.reply_end)
        )
        if len(final) > sent:
            yield final[sent:]

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


def _strip_end(text: str, reply_end: str) -> str:
    before = reply_end.removesuffix("\n")
    return text[: -len(before)] if before and text.endswith(before) else text


def _adapter_info(adapter: Path) -> dict[str, Any]:
    if not (adapter / "adapter_config.json").is_file():
        raise SerifuError("not a LoRA adapter folder (no adapter_config.json)", path=adapter)
    info_file = adapter / "serifu.json"
    return json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}


def load_chatbot(
    model: str | None = None,
    adapter: str | Path | None = None,
    character: str | None = None,
    system_prompt: bool = True,
    quantize: bool | None = None,
    device: str | None = None,
) -> Chatbot:
    """Load a base (4-bit or full precision) + optional adapter, for one character.

    ``model`` defaults to the adapter's base (its ``serifu.json``), else ``gemma-3-270m``
    with the character's shipped adapter for it when there is one. ``quantize=None``
    means full precision (bf16 on a GPU, where replies run on CUDA-graph steps —
    see ``serifu.accel.decode``); ``quantize=True`` loads the base in NF4 4-bit.
    """
    from serifu import plugins
    from serifu.characters import system_prompt as render_system
    from serifu.modeling import default_device, load_model, load_tokenizer, resolve_base

    adapter_path = Path(adapter) if adapter is not None else None
    info = _adapter_info(adapter_path) if adapter_path is not None else {}
    character = character or (info.get("dataset") or {}).get("character_id")
    pack = plugins.get_character(character) if character else None
    if model is None:
        model = info.get("base_model") or DEFAULT_MODEL
        if adapter_path is None and pack is not None and model in pack.adapters:
            adapter_path = Path(pack.adapters[model])
    device = device or default_device()
    quantize = False if quantize is None else quantize
    base = resolve_base(model)
    tokenizer = load_tokenizer(base)
    lm = load_model(base, quantize=quantize, device=device)
    if adapter_path is not None:
        from peft import PeftModel

        _adapter_info(adapter_path)
        lm = PeftModel.from_pretrained(lm, str(adapter_path), use_safetensors=True)
        lm.eval()
    card = pack.card() if pack is not None else None
    return Chatbot(
        model_id=base.id,
        adapter=adapter_path,
        card=card,
        template=plugins.get_prompt_template(base.template),
        tokenizer=tokenizer,
        model=lm,
        system=render_system(card) if (system_prompt and card is not None) else None,
        add_special_tokens=base.add_special_tokens,
        generation=dict(base.generation),
    )
