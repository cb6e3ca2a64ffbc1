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
    """Scores the generations of an evaluation run.

    Required: ``id``, ``description`` and ``evaluate(run) -> dict``. ``run`` is a
    :class:`serifu.evaluation.run.EvalRun` (one condition's replies, the real reference
    lines, the card, ``run.shared`` cache). The dict has a ``"summary"`` of a few numbers
    (the report's headline, ``serifu eval compare``'s columns) plus any details, or
    ``{"skipped": "why"}``. It must not fail on empty or garbage replies.

    Optional members (read with the helpers below, so that an evaluator without them
    still works with the defaults):

    - ``needs_scorers: bool = False`` — ``evaluate`` reads ``run.scorers`` (the model's
      NLL of given replies). The runner loads scorers only when a selected evaluator
      needs them; ``serifu eval rescore`` refuses such evaluators (no model there).
    - ``needs_replies: bool = True`` — ``evaluate`` reads ``run.replies``. When no selected
      evaluator does (e.g. ``-e perplexity -e coherence``), the runner generates no replies.
    - ``headline: Mapping[str, str] = {}`` — summary key -> short column label, in
      display order (e.g. ``{"target_share": "in-character"}``). Empty: every summary
      key, labelled ``id.key``.
    - ``markdown(result) -> str`` — the body of its ``### id`` section in ``report.md``
      (tables, notes), after the summary line the report writes itself. Absent: the
      summary line only. Not called for skipped or failed results.
    - ``plots(results) -> dict[str, bytes]`` — ``results`` maps condition -> this
      evaluator's result (skipped/failed ones left out); returns PNG file name -> bytes
      (names must be unique across evaluators: prefix them when in doubt).
    """

    id: str
    description: str

    def evaluate(self, run: Any) -> dict[str, Any]: ...


def needs_scorers(evaluator: Any) -> bool:
    """Whether ``evaluator`` reads ``run.scorers`` (default False)."""
    return bool(getattr(evaluator, "needs_scorers", False))


def needs_replies(evaluator: Any) -> bool:
    """Whether ``evaluator`` reads ``run.replies`` (default True)."""
    return bool(getattr(evaluator, "needs_replies", True))


def headline_labels(evaluator: Any) -> dict[str, str]:
    """``{"id.key": label}`` of the evaluator's declared headline (empty: none declared)."""
    declared = getattr(evaluator, "headline", None) or {}
    return {f"{evaluator.id}.{key}": str(label) for key, label in dict(declared).items()}


def evaluator_markdown(evaluator: Any, result: Mapping[str, Any]) -> str:
    """The evaluator's own section body for ``report.md`` ("" when it has none)."""
    render = getattr(evaluator, "markdown", None)
    return str(render(result)) if callable(render) else ""


def evaluator_plots(evaluator: Any, results: Mapping[str, Mapping[str, Any]]) -> dict[str, bytes]:
    """The evaluator's PNG plots over conditions ({} when it has none)."""
    render = getattr(evaluator, "plots", None)
    return dict(render(results)) if callable(render) else {}
