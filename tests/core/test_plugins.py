"""The plugin system: every hook, loading rules, failures, and datasette-style meta-tests."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from serifu import hookspecs, plugins
from serifu.cli import main
from serifu.hookspecs import hookimpl
from serifu.kinds import Utterance

from .plugin_env import ROOT, install_example_plugin, plugins_json, run_cli, write_fake_dist

HOOKS = sorted(
    n
    for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
    if getattr(f, "serifu_spec", None) is not None  # every @hookspec, not only register_*
)


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_example_plugin(tmp_path_factory.mktemp("site"))


def _register(plugin: object) -> None:
    plugins.state().pm.register(plugin, name="test-plugin")


class _Source:
    id = "test-source"
    description = "test"
    has_speakers = True

    def read(self, text: str, *, path: Path, options: Any) -> list[Utterance]:
        return [Utterance("A", t) for t in text.splitlines()]


class _Template:
    id = "test-template"
    description = "test"
    reply_end = "\n"

    def render(
        self, query: str, *, character: str, system: str | None = None, history: Any = ()
    ) -> str:
        return f"{query}→{character}:"


class _Model:
    id = "test-model"
    description = "test"
    template = "test-template"
    lora_targets = ("q_proj",)
    hub_id = None
    add_special_tokens = True
    generation: dict[str, Any] = {}

    def build_config(self) -> Any:
        from transformers import LlamaConfig

        return LlamaConfig(hidden_size=32, num_hidden_layers=1)

    def weights(self) -> str:
        return "/nonexistent"

    def load_tokenizer(self, source: str) -> Any:
        return None


class _Evaluator:
    id = "test-eval"
    description = "test"

    def evaluate(self, run: Any) -> dict[str, Any]:
        return {"n": 1}


def _plugin(hook: str, item: object) -> object:
    class P:
        pass

    def impl(register: Callable[[Any], None]) -> None:
        register(item)

    impl.__name__ = hook
    setattr(P, hook, staticmethod(hookimpl(impl)))
    return P()


@pytest.mark.parametrize(
    ("hook", "kind", "item"),
    [
        ("register_data_sources", "data_sources", _Source()),
        ("register_prompt_templates", "prompt_templates", _Template()),
        ("register_base_models", "base_models", _Model()),
        ("register_evaluators", "evaluators", _Evaluator()),
    ],
)
def test_third_party_item_registers(
    fresh_plugins: None, hook: str, kind: str, item: object
) -> None:
    _register(_plugin(hook, item))
    reg = plugins.registry(kind)[item.id]  # type: ignore[attr-defined]
    assert reg.item is item
    assert reg.provider.name == "test-plugin"


def test_hook_register_data_sources(
    fresh_plugins: None, example_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(example_site))
    src = plugins.get_data_source("chatlog")
    assert plugins.data_sources()["chatlog"].provider.name == "serifu-example-plugin"
    log = example_site / "serifu_example_plugin" / "mio" / "chat.log"
    lines = src.read(log.read_text(encoding="utf-8"), path=log, options={})
    assert [u.speaker for u in lines[:2]] == ["主人公", "澪"]
    assert lines[1].text.startswith("起きてるよ") and lines[1].scene == 1 and lines[1].line == 3
    assert {u.scene for u in lines} == set(range(1, 9))  # eight `---` scenes


def test_hook_register_characters(
    fresh_plugins: None, example_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(example_site))
    chars = plugins.characters()
    assert chars["mio"].provider.name == "serifu-example-plugin"
    card = chars["mio"].item.card()
    assert card.name == "朝霧澪" and len(card.questions) >= 11
    # the built-in sample cast registers through the same hook
    assert chars["akane"].provider.name == "serifu"


def test_hook_register_prompt_templates(fresh_plugins: None) -> None:
    _register(_plugin("register_prompt_templates", _Template()))
    tpl = plugins.get_prompt_template("test-template")
    assert tpl.render("やあ", character="茜") == "やあ→茜:"


def test_hook_register_base_models(fresh_plugins: None) -> None:
    _register(_plugin("register_base_models", _Model()))
    assert plugins.get_base_model("test-model").lora_targets == ("q_proj",)


def test_hook_register_evaluators(fresh_plugins: None) -> None:
    _register(_plugin("register_evaluators", _Evaluator()))
    assert plugins.get_evaluator("test-eval").evaluate(None) == {"n": 1}


def test_hook_default_base_model(fresh_plugins: None) -> None:
    assert plugins.get_plugin_manager().hook.default_base_model() == "gemma-3-270m"

    class P:
        @staticmethod
        @hookimpl(tryfirst=True)
        def default_base_model() -> str:
            return "tiny-llama"

    _register(P())
    from serifu.modeling import default_model

    assert default_model() == "tiny-llama"


def test_hook_play(fresh_plugins: None) -> None:
    impls = plugins.get_plugin_manager().hook.play.get_hookimpls()
    assert [i.plugin_name for i in impls] == ["serifu-game:game"]  # the game answers it


def test_hook_register_commands(fresh_plugins: None, capsys: pytest.CaptureFixture[str]) -> None:
    class P:
        @staticmethod
        @hookimpl
        def register_commands(cli: Any) -> None:
            @cli.command("hello")
            def hello(name: str) -> None:
                print(f"hello {name}")

    _register(P())
    assert main(["hello", "澪"]) == 0
    assert "hello 澪" in capsys.readouterr().out


def test_duplicate_id_rejected_naming_both_providers(fresh_plugins: None) -> None:
    _register(_plugin("register_data_sources", _Source()))

    class Second(_Source):
        pass

    plugins.state().pm.register(_plugin("register_data_sources", Second()), name="other-plugin")
    assert type(plugins.get_data_source("test-source")) is _Source
    errors = [f.error for f in plugins.failed()]
    dup = [e for e in errors if "duplicate" in e and "test-source" in e]
    assert dup and "test-plugin" in dup[0] and "other-plugin" in dup[0]


def test_invalid_items_are_reported_not_registered(fresh_plugins: None) -> None:
    class NoRead:
        id = "bad-source"
        description = "no read()"
        has_speakers = True

    class BadId(_Source):
        id = "Bad Id!"

    _register(_plugin("register_data_sources", NoRead()))
    plugins.state().pm.register(_plugin("register_data_sources", BadId()), name="bad-id-plugin")
    assert "bad-source" not in plugins.data_sources()
    errors = " ".join(f.error for f in plugins.failed())
    assert "missing: read" in errors and "invalid id 'Bad Id!'" in errors


def test_check_pending(fresh_plugins: None) -> None:
    plugins.get_plugin_manager().check_pending()


def test_cli_lists_example_plugin(example_site: Path) -> None:
    report = plugins_json(example_site)
    assert set(report) == {
        "data_sources",
        "prompt_templates",
        "base_models",
        "evaluators",
        "characters",
        "failed",
    }
    assert {"id": "chatlog", "provider": "serifu-example-plugin"}.items() <= next(
        d for d in report["data_sources"] if d["id"] == "chatlog"
    ).items()
    assert any(c["id"] == "mio" for c in report["characters"])
    assert report["failed"] == []


BROKEN = "raise ImportError('this plugin is broken on purpose')\n"
RAISES_IN_HOOK = """
from serifu.hookspecs import hookimpl

@hookimpl
def register_evaluators(register):
    raise RuntimeError('boom in hook')
"""


def test_broken_plugins_do_not_break_the_cli(tmp_path: Path) -> None:
    write_fake_dist(tmp_path, "serifu-broken-plugin", BROKEN)
    write_fake_dist(tmp_path, "serifu-raising-plugin", RAISES_IN_HOOK)
    report = plugins_json(tmp_path)
    failed = {f["plugin"]: f["error"] for f in report["failed"]}
    assert "this plugin is broken on purpose" in failed["serifu-broken-plugin:serifu_broken_plugin"]
    assert "boom in hook" in failed["serifu-raising-plugin:serifu_raising_plugin"]
    assert any(c["id"] == "akane" for c in report["characters"])
    proc = run_cli(["plugins"], tmp_path)
    assert proc.returncode == 0 and "broken on purpose" in proc.stdout


def test_load_plugins_restricts_entry_points(example_site: Path) -> None:
    only_example = plugins_json(example_site, {"SERIFU_LOAD_PLUGINS": "serifu-example-plugin"})
    assert any(d["id"] == "chatlog" for d in only_example["data_sources"])
    # serifu-models was not loaded: only the example's own base model is there
    assert [m["id"] for m in only_example["base_models"]] == ["example-tiny-llama"]
    none = plugins_json(example_site, {"SERIFU_LOAD_PLUGINS": ""})
    assert not any(d["id"] == "chatlog" for d in none["data_sources"])
    assert any(c["id"] == "akane" for c in none["characters"])  # built-ins always load


def test_trace_plugins_prints_hook_calls(example_site: Path) -> None:
    proc = run_cli(["plugins", "--json"], example_site, {"SERIFU_TRACE_PLUGINS": "1"})
    assert proc.returncode == 0
    assert "register_data_sources" in proc.stderr and "serifu-example-plugin" in proc.stderr
    json.loads(proc.stdout)  # tracing never pollutes stdout


def test_every_hook_has_a_test() -> None:
    here = Path(__file__).read_text(encoding="utf-8")
    missing = [h for h in HOOKS if f"def test_hook_{h}(" not in here]
    assert not missing, f"hooks without a test_hook_<name> test: {missing}"


def test_every_hook_signature_is_documented() -> None:
    doc = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    for name in HOOKS:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"{name}({params})" in doc, f"docs/plugins.md lacks `{name}({params})`"
