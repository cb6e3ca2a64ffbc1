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


def test_compare_refuses_damaged_reports_naming_the_file(tmp_path: Path, capsys) -> None:
    """A file instead of a run folder, a report that is not UTF-8, not an object, or lacks
    what a comparison reads: one line naming the file, exit 2, no traceback."""
    good = {
        "schema": SCHEMA,
        "model": "m",
        "target": "kaede",
        "conditions": {"c": {"summary": {"x": 1.0}, "evaluators": {}}},
    }
    no_summary = good | {"conditions": {"c": {"evaluators": {}}}}
    bad_items = good | {
        "conditions": {"c": {"summary": {}, "evaluators": {"coherence": {"items": [{"q": 1}]}}}}
    }
    cases: dict[str, bytes] = {
        "not UTF-8": b"\xff\xfe{",
        "not a JSON object": b"[1, 2]",
        "damaged (no model name)": json.dumps(good | {"model": None}).encode(),
        "damaged (condition 'c' has no summary)": json.dumps(no_summary).encode(),
        "coherence items are not scored lines": json.dumps(bad_items).encode(),
    }
    for why, content in cases.items():
        run = tmp_path / why.replace(" ", "_").replace("'", "")
        run.mkdir()
        (run / "report.json").write_bytes(content)
        assert main(["eval", "compare", str(run)]) == 2, why
        err = capsys.readouterr().err
        assert why in err and str(run / "report.json") in err and "Traceback" not in err
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "report.json").write_text(json.dumps(good), encoding="utf-8")
    assert main(["eval", "compare", str(tmp_path / "ok")]) == 0
    capsys.readouterr()
    assert main(["eval", "compare", str(tmp_path / "ok" / "report.json")]) == 2
    assert "give the `serifu eval` output folder" in capsys.readouterr().err


def test_eval_without_model_is_a_user_error(capsys) -> None:
    assert main(["eval", "--character", "kaede"]) == 2
    assert "--model" in capsys.readouterr().err
