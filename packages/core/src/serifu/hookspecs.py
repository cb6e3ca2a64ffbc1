"""Serifu's hook specifications: every feature, built-in or third-party, registers here.

A plugin is a module (or object) with functions decorated by ``@serifu.hookimpl``.
Each ``register_*`` hook receives a ``register`` callable; call it once per item.
Third-party plugins are found through the ``serifu`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

hookspec = pluggy.HookspecMarker("serifu")
"""Marks a hook specification (only in this module)."""
hookimpl = pluggy.HookimplMarker("serifu")


@hookspec
def register_data_sources(register: Callable[[Any], None]) -> None:
    """Register script readers.

    :param register: call with a :class:`serifu.kinds.DataSource` (``id``, ``description``,
        ``has_speakers``, ``read(text, path=, options=)`` returning utterances).
    """


@hookspec
def register_prompt_templates(register: Callable[[Any], None]) -> None:
    """Register prompt templates.

    :param register: call with a :class:`serifu.kinds.PromptTemplate` (``id``,
        ``description``, ``render(query, character=, system=, history=)``, ``reply_end``).
    """


@hookspec
def register_base_models(register: Callable[[Any], None]) -> None:
    """Register base models that can be loaded in 4-bit and tuned with LoRA.

    :param register: call with a :class:`serifu.kinds.BaseModelPlugin`.
    """


@hookspec
def register_evaluators(register: Callable[[Any], None]) -> None:
    """Register evaluators that score a run's generations.

    :param register: call with a :class:`serifu.kinds.Evaluator` (``id``, ``description``,
        ``evaluate(run)`` returning a dict of metrics).
    """


@hookspec
def register_characters(register: Callable[[Any], None]) -> None:
    """Register character packs: a profile card plus the scripts her lines come from.

    :param register: call with a :class:`serifu.characters.CharacterPack`.
    """


@hookspec
def register_commands(cli: typer.Typer) -> None:
    """Add commands or command groups to the ``serifu`` CLI.

    :param cli: the root :class:`typer.Typer` application; call ``cli.command()`` or
        ``cli.add_typer()`` on it. Import heavy libraries inside the command functions.
    """


@hookspec(firstresult=True)
def default_base_model() -> str | None:
    """The base-model id used when none is named (``--model`` left out, quickstart, the game).

    Core names no model itself: ``serifu-models`` answers ``gemma-3-270m``. The first
    plugin returning a non-None id wins; ``$SERIFU_MODEL`` overrides every plugin. Read it
    with :func:`serifu.modeling.default_model`.
    """


@hookspec(firstresult=True)
def play(character: str, model: str | None, adapter: str | None) -> bool | None:
    """Open an interactive front end (the game) with ``character``; return True when handled.

    ``serifu quickstart`` calls this at the end instead of knowing the game's command line;
    ``serifu-game`` implements it. ``model``/``adapter``: the base and LoRA adapter to use.
    """
