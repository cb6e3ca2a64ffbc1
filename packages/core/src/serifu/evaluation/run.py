"""What an evaluator receives: one condition's generated replies plus the real reference.

``Evaluator.evaluate(run: EvalRun) -> dict``. By convention the returned dict has a
``"summary"`` mapping of a few numbers (these become the report's headline and the
columns of ``serifu eval compare``) plus any details; an evaluator that does not apply
returns ``{"skipped": "why"}``. Evaluators must not fail on empty or garbage replies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from serifu.evaluation.splits import LabeledLine, split_by_scene
from serifu.queries import OPENER, PROFILE

if TYPE_CHECKING:
    from serifu.characters import CharacterCard

Scorer = Callable[[Sequence[str], Sequence[str]], list[tuple[float, int]]]
"""(queries, replies) -> (sum NLL, tokens) of each reply given its rendered prompt."""


@dataclass
class Reply:
    """One generated reply: a row of ``generations.jsonl``."""

    condition: str
    kind: str
    index: int
    query: str
    text: str
    stopped: bool
    n_tokens: int = 0
    seconds: float = 0.0
    answers: list[list[str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reference:
    """The real lines an evaluation compares against.

    ``lines``: every speaker's real lines (the classifier's corpus, labels = speakers);
    ``target``: the evaluated character's label among them; ``heldout_pairs``: held-out
    (protagonist line, her real reply) pairs of the test split, for perplexity;
    ``selection_pairs``: those of the validation and test splits (neither trained on), for
    coherence, which needs more lines (empty: ``heldout_pairs``); ``train_pairs``: a script
    speaker's training split, what ``--examples`` may show in her prompt.
    """

    target: str
    lines: list[LabeledLine]
    heldout_pairs: list[tuple[str, str]] = field(default_factory=list)
    selection_pairs: list[tuple[str, str]] = field(default_factory=list)
    train_pairs: list[tuple[str, str]] = field(default_factory=list)
    seed: int = 0
    description: str = ""

    def target_lines(self) -> list[str]:
        return [line.text for line in self.lines if line.label == self.target]

    def split(self) -> tuple[list[LabeledLine], list[LabeledLine]]:
        """The seeded by-scene (train, test) split of ``lines``."""
        return split_by_scene(self.lines, seed=self.seed)


@dataclass
class EvalRun:
    """One condition (system prompt on or off) of an evaluation, as evaluators see it."""

    condition: str
    replies: list[Reply]
    reference: Reference
    card: CharacterCard | None = None
    scorers: dict[str, Scorer] = field(default_factory=dict)
    """``"model"`` (the evaluated model) and ``"base"`` (the base without adapter, if any)."""
    shared: dict[Any, Any] = field(default_factory=dict)
    """A cache shared by the conditions of one evaluation (e.g. the fitted classifier)."""

    def texts(self, kind: str | None = None) -> list[str]:
        return [r.text for r in self.replies if kind is None or r.kind == kind]

    def openers(self) -> list[Reply]:
        return [r for r in self.replies if r.kind == OPENER]

    def profile(self) -> list[Reply]:
        return [r for r in self.replies if r.kind == PROFILE]
