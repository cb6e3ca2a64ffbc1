"""How the heroine answers: the ``llm`` backend (tuned model) or ``retrieval`` (her real lines).

A backend is prepared once (possibly slowly, in a worker thread), then streams each reply
as text pieces. Choosing one follows the issue: ``llm`` with Serifu's default base model
(:func:`default_model`) when a tuned adapter for her ships, else ``retrieval``, with a notice
saying which.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from serifu.characters import CharacterPack
from serifu.errors import SerifuError


def default_model() -> str:
    """Serifu's default base-model id: ``$SERIFU_MODEL``, else the one a plugin names.

    :class:`~serifu.errors.SerifuError` when nothing names one.
    """
    from serifu.modeling.default import default_model as configured

    return configured()


class Backend(Protocol):
    """What the game needs from a way of answering."""

    kind: str
    label: str

    @property
    def ready(self) -> bool:
        """True once :meth:`prepare` has loaded what it needs (the status line says "loading"
        only while it is False)."""
        ...

    def prepare(self) -> None:
        """Load what is needed (may take seconds: called from a worker thread)."""

    def stream(
        self, query: str, history: Sequence[tuple[str, str]], cancel: threading.Event
    ) -> Iterator[str]:
        """Her reply to ``query`` as text pieces; stops early once ``cancel`` is set."""
        ...

    def debug_info(self, query: str, history: Sequence[tuple[str, str]]) -> str:
        """What the debug panel shows: the rendered prompt, or the matched script line."""
        ...


@dataclass(frozen=True)
class BackendChoice:
    """The resolved backend for one heroine, and the notice to show about it."""

    kind: str  # "llm" | "retrieval"
    model: str | None = None
    adapter: str | None = None
    notice: str = ""
    details: dict[str, str] = field(default_factory=dict)


def choose_backend(
    pack: CharacterPack,
    *,
    backend: str = "auto",
    model: str | None = None,
    adapter: str | None = None,
) -> BackendChoice:
    """Resolve ``auto``/``llm``/``retrieval`` plus optional model and adapter for ``pack``.

    ``auto`` means ``llm`` when an adapter is given or ships with her for ``model``
    (default :func:`default_model`), else ``retrieval``.
    """
    name = pack.card().short_name
    retrieval = f"台本検索モード：{name}の本物のセリフから返事を選びます。"
    if backend == "retrieval":
        return BackendChoice("retrieval", notice=retrieval)
    try:
        model_id = model or default_model()
    except SerifuError as exc:
        return BackendChoice("retrieval", notice=f"{retrieval}（ベースモデルがありません：{exc}）")
    shipped = pack.adapters.get(model_id)
    chosen = adapter or (str(shipped) if shipped else None)
    if backend == "auto" and chosen is None:
        return BackendChoice(
            "retrieval",
            notice=(
                f"{name}用のチューニング済みアダプタ（{model_id}）がまだないため、"
                "台本検索モードで話します。設定（Ctrl+O）で変更できます。"
            ),
        )
    where = f"アダプタ {chosen}" if chosen else "アダプタなし（ベースモデルのまま）"
    return BackendChoice("llm", model_id, chosen, notice=f"LLMモード：{model_id} + {where}")


def create_backend(
    choice: BackendChoice,
    pack: CharacterPack,
    *,
    seed: int = 0,
    pace: float = 0.0,
    max_new_tokens: int = 48,
) -> Backend:
    """Build (but do not prepare) the backend ``choice`` names."""
    if choice.kind == "llm":
        from serifu_game.backends.llm import LlmBackend

        assert choice.model is not None
        return LlmBackend(choice.model, choice.adapter, pack.id, max_new_tokens=max_new_tokens)
    from serifu_game.backends.retrieval import RetrievalBackend
    from serifu_game.pairs import load_pairs

    return RetrievalBackend(load_pairs(pack), seed=seed, pace=pace)
