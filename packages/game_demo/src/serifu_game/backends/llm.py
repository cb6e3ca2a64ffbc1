"""The ``llm`` backend: a base model plus her LoRA adapter, through ``serifu.inference``.

torch and transformers are imported only in :meth:`LlmBackend.prepare`, which the game
calls from a worker thread, so the title screen and the retrieval backend never load them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any


class LlmBackend:
    """Streams her reply from a (tuned) language model."""

    kind = "llm"

    def __init__(
        self, model: str, adapter: str | None, character: str, *, max_new_tokens: int = 48
    ) -> None:
        self.model = model
        self.adapter = adapter
        self.character = character
        self.max_new_tokens = max_new_tokens
        self.label = f"LLM {model}" + (" + adapter" if adapter else "")
        self._bot: Any = None
        self._lock = threading.Lock()
        self.last_pieces = 0
        self.last_seconds = 0.0

    def prepare(self) -> None:
        """Load the model (slow: seconds to minutes). Raises SerifuError on bad ids or paths."""
        with self._lock:
            if self._bot is None:
                from serifu.inference import load_chatbot

                self._bot = load_chatbot(
                    model=self.model,
                    adapter=self.adapter,
                    character=self.character,
                    system_prompt=True,
                    prefix_cache=True,  # her system prompt runs once, not every turn
                    card_answers=True,  # her card answers what her replies all miss
                )

    @property
    def ready(self) -> bool:
        return self._bot is not None

    def stream(
        self, query: str, history: Sequence[tuple[str, str]], cancel: threading.Event
    ) -> Iterator[str]:
        self.prepare()
        start, self.last_pieces = time.perf_counter(), 0
        pieces = self._bot.stream(query, tuple(history), max_new_tokens=self.max_new_tokens)
        try:
            for piece in pieces:
                if cancel.is_set():
                    break
                self.last_pieces += 1
                self.last_seconds = time.perf_counter() - start
                yield piece
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def debug_info(self, query: str, history: Sequence[tuple[str, str]]) -> str:
        if self._bot is None:
            return "(モデル未読み込み)"
        return str(self._bot.render_prompt(query, tuple(history)))
