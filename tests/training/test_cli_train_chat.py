"""``serifu chat --once`` and ``serifu train --json`` through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu.cli import main


def test_train_json_then_chat_once(
    dialogue_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "adapter"
    code = main(
        [
            "train",
            "--model",
            "tiny-gptj",
            "--data",
            str(dialogue_dir),
            "--out",
            str(out),
            "--max-steps",
            "2",
            "--set",
            "train.batch_size=4",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    keys = {"out", "steps", "loss_first", "loss_last", "tokens_per_s", "kernels", "compile"}
    assert set(summary) == keys | {"capture"}
    assert summary["capture"] == "off"  # opt-in
    assert summary["kernels"] == "off"  # CPU: "auto" resolves to the model's own layers
    assert summary["compile"] == "off"  # CPU: "auto" leaves the layers uncompiled
    assert summary["steps"] == 2 and summary["out"] == str(out)
    code = main(
        [
            "chat",
            "--adapter",
            str(out),
            "--character",
            "rei",
            "--once",
            "こんにちは",
            "--max-new-tokens",
            "5",
            "--seed",
            "0",
        ]
    )
    assert code == 0
    reply = capsys.readouterr().out
    assert reply.endswith("\n") and reply.count("\n") == 1
    # uint4 replies over an adapter trained on NF4: one line on stderr says what that costs
    code = main(
        ["chat", "--adapter", str(out), "--character", "rei", "--once", "やあ"]
        + ["--max-new-tokens", "3", "--seed", "0", "--weights", "uint4"]
    )
    assert code == 0
    seen = capsys.readouterr()
    assert seen.out.count("\n") == 1 and "trained on an NF4 base" in seen.err
    assert "train.quant_type" in seen.err


def test_chat_with_unreachable_hub_model_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # stale: only the env says offline
    code = main(["chat", "--model", "line-3.6b", "--character", "rei", "--once", "やあ"])
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "line-corporation/japanese-large-lm-3.6b-instruction-sft" in err and "Traceback" not in err
    )


def test_chat_and_eval_refuse_bad_reply_options_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown --weights or a token limit below 1: exit 2 with one line, before any
    model loads (loading is replaced by a failure to prove it is never reached)."""
    import serifu.inference

    def no_load(*_a: object, **_k: object) -> None:
        raise AssertionError("a model was loaded for a bad option")

    monkeypatch.setattr(serifu.inference, "load_chatbot", no_load)
    bad = ["chat", "--character", "akane", "--model", "tiny-gemma", "--once", "やあ"]
    assert main([*bad, "--weights", "fp3"]) == 2
    assert "weights must be one of bf16, int4, nf4, uint4 (got 'fp3')" in capsys.readouterr().err
    assert main([*bad, "--max-new-tokens", "0"]) == 2
    assert "--max-new-tokens" in capsys.readouterr().err
    run = ["eval", "--model", "tiny-gemma", "--character", "akane", "--out", str(tmp_path / "e")]
    assert main([*run, "--weights", "fp3"]) == 2
    assert "got 'fp3'" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
