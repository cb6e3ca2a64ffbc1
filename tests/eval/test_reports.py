"""Report files and `serifu eval compare` from runs whose replies are given (no model)."""

from __future__ import annotations

import json
from pathlib import Path

from serifu.cli import main
from serifu.evaluation.report import SCHEMA, headline
from serifu.evaluation.run import Reference, Reply
from serifu.evaluation.runner import EvalRun, run_evaluators, selected_evaluators, write_outputs


def _fake_report(out: Path, ref: Reference, texts: list[str], model: str) -> None:
    replies = {
        "system-prompt-on": [
            Reply("system-prompt-on", "opener", i, f"質問{i}", t, True) for i, t in enumerate(texts)
        ]
    }
    evaluators = selected_evaluators(
        ["character-classifier", "style-markers", "diversity", "format"]
    )
    results = run_evaluators(
        EvalRun("system-prompt-on", replies["system-prompt-on"], ref), evaluators
    )
    report = {
        "schema": SCHEMA,
        "model": model,
        "adapter": None,
        "character": "kaede",
        "target": "kaede",
        "settings": {"seed": 0, "max_new_tokens": 48},
        "queries": {"opener": len(texts), "profile": 0},
        "reference": {"description": "test", "lines": len(ref.lines), "heldout_pairs": 0},
        "conditions": {"system-prompt-on": {"summary": headline(results), "evaluators": results}},
    }
    write_outputs(out, report, replies)


def test_report_files_and_compare(tmp_path: Path, cast_ref: Reference, capsys) -> None:
    hers = cast_ref.target_lines()[:12]
    _fake_report(tmp_path / "a", cast_ref, hers, "real-lines")
    _fake_report(tmp_path / "b", cast_ref, ["", "こんにちは", "@@@"], "garbage")
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert {
        "generations.jsonl",
        "report.json",
        "report.md",
        "style_rates.png",
        "lengths.png",
        "attribution.png",
    } <= names
    assert (tmp_path / "a" / "attribution.png").read_bytes()[:4] == b"\x89PNG"
    rows = [
        json.loads(x)
        for x in (tmp_path / "a" / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [r["text"] for r in rows] == hers
    md = (tmp_path / "a" / "report.md").read_text(encoding="utf-8")
    assert "character-classifier.target_share" in md and "![attribution.png]" in md

    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["runs"]
    share = {r["label"]: r["metrics"]["character-classifier.target_share"] for r in data}
    assert share["real-lines (base)"] > 0.8 > share["garbage (base)"]
    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    table = capsys.readouterr().out
    assert "| run |" in table and "in-character" in table and "garbage (base)" in table


def test_compare_errors_name_the_folder(tmp_path: Path, capsys) -> None:
    assert main(["eval", "compare", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_eval_without_model_is_a_user_error(capsys) -> None:
    assert main(["eval", "--character", "kaede"]) == 2
    assert "--model" in capsys.readouterr().err
