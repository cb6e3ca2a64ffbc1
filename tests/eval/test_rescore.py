"""`serifu eval rescore`: evaluators re-run on saved replies, without a model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from serifu.errors import SerifuError
from serifu.evaluation.rescore import rescore

RUN = Path(__file__).resolve().parents[2] / "docs" / "results" / "rei" / "tuned"


def test_rescore_restores_a_missing_evaluator_and_keeps_the_rest(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    cond = report["conditions"]["system-prompt-on"]
    expected = cond["summary"]["style-markers.jsd_mean"]
    cond["evaluators"]["style-markers"] = {
        "error": "ModuleNotFoundError: No module named 'fugashi'"
    }
    cond["summary"].pop("style-markers.jsd_mean")
    (run / "report.json").write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
    generations = (run / "generations.jsonl").read_text(encoding="utf-8")
    (run / "scores.json").write_text('{"mine": 1}', encoding="utf-8")  # a user's file beside
    (run / "notes").mkdir()
    (run / "notes" / "read.md").write_text("20 replies read", encoding="utf-8")

    new = rescore(run, ["style-markers"])

    summary = new["conditions"]["system-prompt-on"]["summary"]
    assert summary["style-markers.jsd_mean"] == pytest.approx(expected)
    assert summary["perplexity.reduction"] == cond["summary"]["perplexity.reduction"]  # untouched
    assert (run / "generations.jsonl").read_text(encoding="utf-8") == generations
    assert "style-markers" in (run / "report.md").read_text(encoding="utf-8")
    # a rewrite in place: what is not a report file stays
    assert (run / "scores.json").read_text(encoding="utf-8") == '{"mine": 1}'
    assert (run / "notes" / "read.md").read_text(encoding="utf-8") == "20 replies read"


def test_rescore_refuses_evaluators_that_need_the_model(tmp_path: Path) -> None:
    with pytest.raises(SerifuError, match="needs the model"):
        rescore(RUN, ["perplexity"])
