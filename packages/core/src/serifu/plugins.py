"""Plugin loading and typed registries.

Built-in plugins are modules registered directly; third-party plugins come from the
``serifu`` entry-point group, each loaded in its own ``try`` so that a broken one is
reported and skipped. ``SERIFU_LOAD_PLUGINS=a,b`` restricts which entry points load
(by entry-point or distribution name; empty loads none); ``SERIFU_TRACE_PLUGINS=1``
prints each hook call to stderr. A plugin implementing a hook that does not exist (a
misspelled name) is rejected with a failure naming the closest hook (``pm.check_pending``).

Every ``pm.hook.register_*`` call is wrapped by an accessor here (``data_sources()``,
``base_models()`` …) that validates items, rejects duplicate ids naming both providers,
and returns a typed registry.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

import pluggy

from serifu import hookspecs
from serifu.errors import SerifuError
from serifu.kinds import ID_PATTERN

T = TypeVar("T")

BUILTIN_PLUGINS: tuple[str, ...] = (
    "serifu.builtin.data_sources",
    "serifu.builtin.prompt_templates",
    "serifu.builtin.evaluators",
    "serifu.builtin.sample_cast",
    "serifu.builtin.character_packs",
    "serifu.builtin.commands",
)

KINDS: dict[str, str] = {
    "data_sources": "register_data_sources",
    "prompt_templates": "register_prompt_templates",
    "base_models": "register_base_models",
    "evaluators": "register_evaluators",
    "characters": "register_characters",
}


@dataclass(frozen=True)
class Provider:
    """Who provided a plugin: a distribution and its version, or a built-in module."""

    name: str
    version: str
    module: str

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.module})"


@dataclass(frozen=True)
class Registered(Generic[T]):
    """One registered item and who registered it."""

    id: str
    item: T
    provider: Provider


@dataclass(frozen=True)
class Failure:
    """A plugin (or one of its items) that was rejected, with the reason."""

    plugin: str
    error: str
    provider: str = ""


@dataclass
class PluginState:
    pm: pluggy.PluginManager
    providers: dict[str, Provider] = field(default_factory=dict)  # plugin name -> provider
    failed: list[Failure] = field(default_factory=list)


_state: PluginState | None = None


def _trace_enabled() -> bool:
    return os.environ.get("SERIFU_TRACE_PLUGINS", "") not in ("", "0", "false", "no")


def _allowed_entry_points() -> set[str] | None:
    raw = os.environ.get("SERIFU_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _core_provider(module: str) -> Provider:
    from serifu import __version__

    return Provider("serifu", __version__, module)


def _build() -> PluginState:
    pm = pluggy.PluginManager("serifu")
    pm.add_hookspecs(hookspecs)
    state = PluginState(pm)
    for modname in BUILTIN_PLUGINS:
        module = importlib.import_module(modname)
        pm.register(module, name=modname)
        state.providers[modname] = _core_provider(modname)
    pm.check_pending()  # a built-in with a misspelled hook is a bug: fail loudly
    allowed = _allowed_entry_points()
    for ep in metadata.entry_points(group="serifu"):
        dist = ep.dist
        dist_name = dist.name if dist is not None else "?"
        dist_version = dist.version if dist is not None else "?"
        if allowed is not None and ep.name not in allowed and dist_name not in allowed:
            continue
        name = f"{dist_name}:{ep.name}"
        try:
            plugin = ep.load()
            pm.register(plugin, name=name)
            _check_hook_names(pm, plugin)
        except Exception as exc:  # a broken plugin must never break Serifu
            state.failed.append(
                Failure(name, f"{type(exc).__name__}: {exc}", f"{dist_name} {dist_version}")
            )
            continue
        state.providers[name] = Provider(dist_name, dist_version, ep.value)
    if _trace_enabled():
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return state


def _check_hook_names(pm: pluggy.PluginManager, plugin: object) -> None:
    """Unregister ``plugin`` and raise when it implements a hook Serifu does not have.

    pluggy would otherwise keep a misspelled ``@hookimpl`` (``register_data_source``)
    silently uncalled; this turns it into a failure ``serifu plugins`` lists.
    """
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        unknown = [c.name for c in pm.get_hookcallers(plugin) or () if not c.has_spec()]
        pm.unregister(plugin)
        known = [n for n in vars(hookspecs) if n.startswith("register_")]
        hints = [
            f"{n!r} (did you mean {close[0]!r}?)" if close else repr(n)
            for n in unknown
            for close in [difflib.get_close_matches(n, known, n=1)]
        ]
        raise SerifuError(
            f"unknown hook {', '.join(hints) or exc}; Serifu's hooks are {', '.join(known)}"
        ) from None


def state() -> PluginState:
    """The process-wide plugin state, built on first use."""
    global _state
    if _state is None:
        _state = _build()
    return _state


def reset() -> None:
    """Forget loaded plugins (tests, or after changing SERIFU_LOAD_PLUGINS)."""
    global _state
    _state = None
    _registry_cache.clear()


def get_plugin_manager() -> pluggy.PluginManager:
    return state().pm


def _validator(kind: str) -> Callable[[Any], str | None]:
    """Returns a function that says what is wrong with an item of ``kind`` (or None)."""
    from serifu import kinds

    def check_protocol(proto: type) -> Callable[[Any], str | None]:
        def check(item: Any) -> str | None:
            if not isinstance(item, proto):
                members = set(getattr(proto, "__annotations__", {})) | {
                    n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")
                }
                missing = [a for a in members if not hasattr(item, a)]
                return f"is not a {proto.__name__} (missing: {', '.join(sorted(missing)) or '?'})"
            return None

        return check

    if kind == "characters":
        from serifu.characters import CharacterPack

        return lambda item: (
            None if isinstance(item, CharacterPack) else "is not a serifu.characters.CharacterPack"
        )
    proto = {
        "data_sources": kinds.DataSource,
        "prompt_templates": kinds.PromptTemplate,
        "base_models": kinds.BaseModelPlugin,
        "evaluators": kinds.Evaluator,
    }[kind]
    return check_protocol(proto)


_registry_cache: dict[str, dict[str, Registered[Any]]] = {}


def registry(kind: str) -> dict[str, Registered[Any]]:
    """All valid items of one kind, by id. Invalid or duplicate items go to ``failed()``."""
    if kind in _registry_cache:
        return _registry_cache[kind]
    st = state()
    hook = getattr(st.pm.hook, KINDS[kind])
    check = _validator(kind)
    items: dict[str, Registered[Any]] = {}
    for impl in hook.get_hookimpls():  # registration order: built-ins first
        provider = st.providers.get(impl.plugin_name, Provider(impl.plugin_name, "?", "?"))

        def register(
            item: Any, _provider: Provider = provider, _plugin: str = impl.plugin_name
        ) -> None:
            item_id = getattr(item, "id", None)
            problem = check(item)
            if problem is None and (not isinstance(item_id, str) or not ID_PATTERN.match(item_id)):
                problem = (
                    f"has an invalid id {item_id!r} (lowercase letters, digits, '.', '_', '-')"
                )
            if problem is not None:
                st.failed.append(
                    Failure(_plugin, f"{kind} item {item_id!r} {problem}", str(_provider))
                )
                return
            assert isinstance(item_id, str)
            if item_id in items:
                first = items[item_id].provider
                st.failed.append(
                    Failure(
                        _plugin,
                        f"duplicate {kind} id {item_id!r}: provided by {first} and again by {_provider}; "
                        "the second was rejected",
                        str(_provider),
                    )
                )
                return
            items[item_id] = Registered(item_id, item, _provider)

        if _trace_enabled():
            sys.stderr.write(f"serifu: {KINDS[kind]}() -> {impl.plugin_name}\n")
        try:
            impl.function(register=register)
        except Exception as exc:
            st.failed.append(
                Failure(
                    impl.plugin_name,
                    f"{KINDS[kind]} raised {type(exc).__name__}: {exc}",
                    str(provider),
                )
            )
    _registry_cache[kind] = items
    return items


def failed() -> list[Failure]:
    """Plugins or items that failed to load or register (after building every registry)."""
    for kind in KINDS:
        registry(kind)
    return list(state().failed)


def _get(kind: str, item_id: str, what: str) -> Any:
    reg = registry(kind)
    if item_id not in reg:
        known = ", ".join(sorted(reg)) or "none"
        raise SerifuError(f"unknown {what} {item_id!r}; known: {known}")
    return reg[item_id].item


def data_sources() -> dict[str, Registered[Any]]:
    """Registered data sources (script readers) by id."""
    return registry("data_sources")


def prompt_templates() -> dict[str, Registered[Any]]:
    """Registered prompt templates by id."""
    return registry("prompt_templates")


def base_models() -> dict[str, Registered[Any]]:
    """Registered base models by id."""
    return registry("base_models")


def evaluators() -> dict[str, Registered[Any]]:
    """Registered evaluators by id."""
    return registry("evaluators")


def characters() -> dict[str, Registered[Any]]:
    """Registered character packs by id."""
    return registry("characters")


def get_data_source(item_id: str) -> Any:
    return _get("data_sources", item_id, "data source")


def get_prompt_template(item_id: str) -> Any:
    return _get("prompt_templates", item_id, "prompt template")


def get_base_model(item_id: str) -> Any:
    return _get("base_models", item_id, "base model")


def get_evaluator(item_id: str) -> Any:
    return _get("evaluators", item_id, "evaluator")


def get_character(item_id: str) -> Any:
    return _get("characters", item_id, "character")
