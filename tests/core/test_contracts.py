"""Core contracts: misspelled hooks, the default model, `--version`, the play hook, evaluators."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serifu import plugins
from serifu.cli import main
from serifu.errors import SerifuError
from serifu.hookspecs import hookimpl

from .plugin_env import plugins_json, run_cli, write_fake_dist

MISSPELLED = """
from serifu.hookspecs import hookimpl

@hookimpl
def register_data_source(register):
    raise AssertionError("never called")
"""


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    plugins.reset()
    yield
    plugins.reset()


def test_misspelled_hook_is_a_reported_failure(tmp_path: Path) -> None:
    write_fake_dist(tmp_path, "serifu-typo-plugin", MISSPELLED)
    report = plugins_json(tmp_path)
    [failure] = [f for f in report["failed"] if f["plugin"].startswith("serifu-typo-plugin")]
    assert "'register_data_source'" in failure["error"]
    assert "did you mean 'register_data_sources'" in failure["error"]
    assert any(d["id"] == "lines" for d in report["data_sources"])  # the rest still loads


def test_builtin_plugins_pass_check_pending(fresh_plugins: None) -> None:
    pm = plugins.get_plugin_manager()
    pm.check_pending()
    assert pm.hook.default_base_model.spec is not None


def test_version_lists_serifu_and_plugin_distributions() -> None:
    proc = run_cli(["--version"])
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("serifu ") and any(x.startswith("serifu-models ") for x in lines)


def test_default_model_comes_from_a_plugin_and_env_overrides(
    fresh_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serifu.modeling import default_model

    monkeypatch.delenv("SERIFU_MODEL", raising=False)
    assert default_model() == "gemma-3-270m"  # serifu-models' answer
    monkeypatch.setenv("SERIFU_MODEL", "tiny-llama")
    assert default_model() == "tiny-llama"


def test_no_default_model_without_a_plugin_is_a_clear_error() -> None:
    code = "from serifu.modeling import default_model\nprint(default_model())\n"
    env = {**os.environ, "SERIFU_LOAD_PLUGINS": "", "SERIFU_MODEL": ""}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode != 0 and "no default base model" in done.stderr


def test_core_names_no_model_id() -> None:
    core = Path(plugins.__file__).parent
    offenders = [
        str(p.relative_to(core))
        for p in core.rglob("*.py")
        if '"gemma-3-270m"' in p.read_text(encoding="utf-8")
    ]
    assert not offenders, f"core hard-codes a plugin's model id: {offenders}"


def test_quickstart_plays_through_the_play_hook(fresh_plugins: None) -> None:
    from serifu.quickstart import play

    calls: list[tuple[str, str | None, str | None]] = []

    class Front:
        @staticmethod
        @hookimpl(tryfirst=True)
        def play(character: str, model: str | None, adapter: str | None) -> bool:
            calls.append((character, model, adapter))
            return True

    plugins.state().pm.register(Front(), name="test-front")
    play("akane", "tiny-llama", "/some/adapter")
    assert calls == [("akane", "tiny-llama", "/some/adapter")]


def test_quickstart_without_a_front_end_says_what_to_install(
    fresh_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serifu.quickstart import play

    monkeypatch.setenv("SERIFU_LOAD_PLUGINS", "serifu-models")
    plugins.reset()
    with pytest.raises(SerifuError, match="serifu-game"):
        play("akane", "tiny-llama", "/some/adapter")


# -- evaluators: optional members with defaults -------------------------------------------


class _Bare:
    """An evaluator written before the optional members existed."""

    id = "bare"
    description = "counts replies"

    def evaluate(self, run: Any) -> dict[str, Any]:
        return {"summary": {"n": len(run.replies), "empty": sum(not t for t in run.texts())}}


class _Full:
    id = "full"
    description = "declares everything"
    needs_scorers = True
    headline = {"score": "full score"}

    def evaluate(self, run: Any) -> dict[str, Any]:
        nll = run.scorers["model"](["q"], ["a"]) if "model" in run.scorers else []
        return {"summary": {"score": 0.5, "hidden": 1}, "scored": len(nll)}

    def markdown(self, result: dict[str, Any]) -> str:
        return f"FULL SECTION scored={result['scored']}"

    def plots(self, results: dict[str, dict[str, Any]]) -> dict[str, bytes]:
        return {"full.png": b"\x89PNG" + ",".join(sorted(results)).encode()}


def _report(tmp_path: Path, evaluators: dict[str, Any]) -> dict[str, Any]:
    from serifu.evaluation.report import SCHEMA, headline
    from serifu.evaluation.run import EvalRun, Reference, Reply
    from serifu.evaluation.runner import run_evaluators, write_outputs

    replies = {"system-prompt-on": [Reply("system-prompt-on", "opener", 0, "q", "", True)]}
    ref = Reference(target="x", lines=[])
    run = EvalRun("system-prompt-on", replies["system-prompt-on"], ref)
    results = run_evaluators(run, evaluators)
    report = {
        "schema": SCHEMA,
        "model": "m",
        "adapter": None,
        "character": None,
        "target": "x",
        "settings": {"seed": 0, "max_new_tokens": 8},
        "queries": {"opener": 1, "profile": 0},
        "reference": {"description": "t", "lines": 0, "heldout_pairs": 0},
        "conditions": {
            "system-prompt-on": {"summary": headline(results, evaluators), "evaluators": results}
        },
    }
    write_outputs(tmp_path, report, replies, evaluators)
    return report


def test_an_evaluator_without_optional_members_still_reports(tmp_path: Path) -> None:
    from serifu.kinds import evaluator_markdown, evaluator_plots, headline_labels, needs_scorers

    bare = _Bare()
    assert not needs_scorers(bare) and headline_labels(bare) == {}
    assert evaluator_markdown(bare, {}) == "" and evaluator_plots(bare, {}) == {}
    report = _report(tmp_path, {"bare": bare})
    assert report["conditions"]["system-prompt-on"]["summary"] == {"bare.n": 1, "bare.empty": 1}
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "### bare" in md and "n = 1, empty = 1" in md


def test_declared_members_drive_headline_section_and_plots(tmp_path: Path) -> None:
    report = _report(tmp_path, {"bare": _Bare(), "full": _Full()})
    summary = report["conditions"]["system-prompt-on"]["summary"]
    assert list(summary)[0] == "full.score"  # declared headline first
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "FULL SECTION scored=0" in md and "![full.png](full.png)" in md
    assert (tmp_path / "full.png").read_bytes() == b"\x89PNGsystem-prompt-on"


def test_compare_uses_declared_labels_and_every_key_of_undeclared(
    tmp_path: Path, fresh_plugins: None, capsys: pytest.CaptureFixture[str]
) -> None:
    class P:
        @staticmethod
        @hookimpl
        def register_evaluators(register: Any) -> None:
            register(_Bare())
            register(_Full())

    plugins.state().pm.register(P(), name="test-evaluators")
    _report(tmp_path, {"bare": _Bare(), "full": _Full()})
    assert main(["eval", "compare", str(tmp_path)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "full score" in header and "full.hidden" not in header
    assert "bare.n" in header and "bare.empty" in header


def test_rescore_refuses_evaluators_that_need_the_model(
    tmp_path: Path, fresh_plugins: None
) -> None:
    from serifu.evaluation.rescore import rescore

    with pytest.raises(SerifuError, match="perplexity needs the model"):
        rescore(tmp_path, ["perplexity"])


def test_builtin_evaluators_declare_their_members() -> None:
    from serifu.kinds import needs_scorers

    found = {i: r.item for i, r in plugins.evaluators().items()}
    needing = {i for i, e in found.items() if needs_scorers(e)}
    assert "perplexity" in needing and not needing & {"format", "diversity", "style-markers"}
    assert all(getattr(e, "headline", None) for e in found.values())
    assert callable(found["character-classifier"].markdown)
    assert callable(found["style-markers"].plots)


def test_plugin_character_does_not_change_the_cast_reference() -> None:
    from serifu.evaluation.reference import cast_reference, reference_cast

    ref = cast_reference("kaede")
    assert sorted({line.label for line in ref.lines}) == reference_cast()
    assert ref.description == "sample cast"
    assert json.dumps(reference_cast())  # recorded in report.json as reference.speakers
