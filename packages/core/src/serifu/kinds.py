"""What each kind of plugin registers: small runtime-checkable protocols.

The plugin manager validates registered objects against these (attribute presence),
so a plugin that registers the wrong thing is reported instead of crashing later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class Utterance:
    """One spoken line read from a script."""

    speaker: str
    text: str
    scene: int = 0
    """Scene index within the source file (0 where the format has no scenes)."""
    line: int = 0
    """1-based line number in the source file, for error messages and provenance."""
    source: str = ""
    """The file it came from."""


@runtime_checkable
class DataSource(Protocol):
    """A script reader: decoded text in, spoken lines out (narration excluded)."""

    id: str
    description: str
    has_speakers: bool

    def read(self, text: str, *, path: Path, options: Mapping[str, Any]) -> list[Utterance]: ...


@runtime_checkable
class PromptTemplate(Protocol):
    """Renders the text a model sees before the character's reply."""

    id: str
    description: str
    reply_end: str
    """What ends a reply in training data (``"\\n"``): generation stops there."""

    def render(
        self,
        query: str,
        *,
        character: str,
        system: str | None = None,
        history: Sequence[tuple[str, str]] = (),
    ) -> str: ...


@runtime_checkable
class BaseModelPlugin(Protocol):
    """A base LLM Serifu can load (4-bit or full precision) and tune with LoRA."""

    id: str
    description: str
    template: str
    """Prompt template id."""
    lora_targets: tuple[str, ...]
    """Default LoRA target modules."""
    hub_id: str | None
    """Hugging Face hub id of the weights (None for weights made locally)."""
    add_special_tokens: bool
    """Encode prompts with the tokenizer's special tokens (BOS)."""
    generation: Mapping[str, Any]
    """Sampling defaults (``do_sample``, ``temperature``, ``top_p``, ``repetition_penalty``)."""

    def build_config(self) -> Any:
        """The architecture as a ``transformers`` config (to build a random-init model)."""
        ...

    def weights(self) -> str:
        """A local folder or hub id to load from; may convert or build weights on first use."""
        ...

    def load_tokenizer(self, source: str) -> Any:
        """The model's tokenizer from ``source`` (with its quirks, e.g. ``use_fast=False``)."""
        ...


@runtime_checkable
class Evaluator(Protocol):
    """Scores the generations of an evaluation run."""

    id: str
    description: str

    def evaluate(self, run: Any) -> dict[str, Any]: ...
