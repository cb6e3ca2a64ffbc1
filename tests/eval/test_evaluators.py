"""Every built-in evaluator is registered and survives empty or garbage replies."""

from __future__ import annotations

import pytest

from serifu import plugins
from serifu.builtin.evaluators import BUILTIN_EVALUATORS
from serifu.evaluation.run import Reference

from .conftest import make_run

IDS = [
    "character-classifier",
    "profile-qa",
    "perplexity",
    "coherence",
    "style-markers",
    "diversity",
    "format",
    "echo",
    "fragments",
]


def test_all_builtin_evaluators_are_registered() -> None:
    registered = plugins.evaluators()
    assert set(IDS) <= set(registered)
    assert [e.id for e in BUILTIN_EVALUATORS] == IDS
    assert all(registered[i].provider.name == "serifu" for i in IDS)


@pytest.mark.parametrize("texts", [[], [""], ["", "@@@###", "\n\n", "ａａａａａａａａａａ" * 20]])
@pytest.mark.parametrize("evaluator_id", IDS)
def test_evaluators_handle_garbage(
    evaluator_id: str, texts: list[str], cast_ref: Reference
) -> None:
    run = make_run(texts, cast_ref, stopped=False, answers=[["17"]] if texts else None)
    result = plugins.get_evaluator(evaluator_id).evaluate(run)
    assert isinstance(result, dict)
    assert "summary" in result or "skipped" in result


def test_classifier_share_tracks_the_voice(cast_ref: Reference) -> None:
    evaluator = plugins.get_evaluator("character-classifier")
    hers = cast_ref.target_lines()[:20]
    others = [x.text for x in cast_ref.lines if x.label == "sayaka"][:20]
    shared: dict = {}
    run_hers, run_others = make_run(hers, cast_ref), make_run(others, cast_ref)
    run_hers.shared = run_others.shared = shared  # a fresh evaluation
    share_hers = evaluator.evaluate(run_hers)["summary"]["target_share"]
    share_others = evaluator.evaluate(run_others)["summary"]["target_share"]
    assert share_hers > 0.8 and share_others < 0.2
    assert len(shared) == 1, "the classifier is fitted once per evaluation"
    assert evaluator.evaluate(make_run(["", ""], cast_ref))["summary"]["target_share"] == 0.0


def test_profile_qa_and_perplexity_use_the_run(cast_ref: Reference) -> None:
    run = make_run(["あたしは十七歳よ！"], cast_ref, answers=[["17", "十七"]])
    assert plugins.get_evaluator("profile-qa").evaluate(run)["summary"]["accuracy"] == 1.0
    calls = []

    def fake_scorer(queries, replies):  # stands in for bot.score: one nat per token
        calls.append(len(queries))
        return [(float(len(r)), len(r)) for r in replies]

    run.scorers = {"model": fake_scorer, "base": lambda q, r: [(2.0 * len(x), len(x)) for x in r]}
    summary = plugins.get_evaluator("perplexity").evaluate(run)["summary"]
    assert summary["perplexity"] == pytest.approx(2.71828, rel=1e-4)
    assert summary["reduction"] == pytest.approx(1 - 1 / 2.71828, rel=1e-3)
    assert calls == [len(cast_ref.heldout_pairs)] and calls[0] > 5


def test_heldout_pairs_are_the_datasets_test_split(tmp_path, cast_ref: Reference) -> None:
    """Perplexity's default pairs are exactly what `serifu data build --character` holds out."""
    from serifu.data.build import build_character_dataset
    from serifu.evaluation.reference import dataset_pairs

    build_character_dataset("kaede", tmp_path / "kaede")
    assert dataset_pairs(tmp_path / "kaede") == cast_ref.heldout_pairs
    assert len(cast_ref.heldout_pairs) > 10
