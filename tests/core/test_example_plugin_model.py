"""A third-party base model end to end: the example plugin's ModelSpec is loaded, tuned, evaluated and chatted with."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from serifu import plugins
from serifu.cli import main

from .plugin_env import install_example_plugin


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_example_plugin(tmp_path_factory.mktemp("site"))


@pytest.fixture
def with_example(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(example_site))  # entry points are read from sys.path
    plugins.reset()
    yield
    plugins.reset()


def test_third_party_model_loads_trains_evaluates_and_chats(
    with_example: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from serifu.modeling import ModelSpec

    registered = plugins.base_models()["example-tiny-llama"]
    assert registered.provider.name == "serifu-example-plugin"
    assert isinstance(registered.item, ModelSpec)

    data, adapter, report = tmp_path / "data", tmp_path / "adapter", tmp_path / "eval"
    assert main(["data", "build", "--character", "mio", "--out", str(data)]) == 0
    args = ["train", "--model", "example-tiny-llama", "--data", str(data), "--out", str(adapter)]
    assert main([*args, "--max-steps", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 2 and (adapter / "adapter_model.safetensors").is_file()

    assert main(["chat", "--adapter", str(adapter), "--once", "誕生日いつ？"]) == 0
    reply = capsys.readouterr().out
    assert reply.endswith("\n") and reply.count("\n") == 1  # one line, model from the adapter

    ev = ["eval", "--model", "example-tiny-llama", "--adapter", str(adapter), "--character", "mio"]
    ev += ["--limit", "2", "--out", str(report), "--set", 'eval.evaluators=["format"]']
    assert main(ev) == 0, capsys.readouterr().err
    written = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert written["model"] == "example-tiny-llama" and written["target"] == "mio"
    # the classifier's reference is the sample cast plus the evaluated plugin character
    assert "mio" in written["reference"]["speakers"] and "akane" in written["reference"]["speakers"]


def test_installing_a_plugin_character_leaves_the_cast_reference_alone(with_example: None) -> None:
    from serifu.evaluation.reference import cast_reference, reference_cast

    assert "mio" in plugins.characters()
    labels = sorted({line.label for line in cast_reference("kaede").lines})
    assert labels == reference_cast() and "mio" not in labels


def test_malformed_chat_log_names_file_and_line(
    with_example: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "broken.log"
    log.write_text("--- 夜\n[22:01] 主人公: やあ\nこれはチャットの行ではない\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["data", "build", str(log), "--source", "chatlog", "--speaker", "澪", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{log}, line 3" in err and "not a chat-log line" in err and "Traceback" not in err
    assert not out.exists()  # nothing half-written
