"""`serifu eval classifier` on a real play, and `serifu eval` end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu.cli import main

ROMEO = "000264_42773_romeo-to-juliet.txt"


@pytest.mark.corpus
def test_classifier_separates_romeo_and_juliet_speakers(
    aozora_dir: Path, capsys, tmp_path: Path
) -> None:
    code = main(
        [
            "eval",
            "classifier",
            str(aozora_dir / ROMEO),
            "--source",
            "aozora-play",
            "--json",
            "--save",
            str(tmp_path / "rj.skops"),
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    names = [s["name"] for s in result["speakers"]]
    print(
        f"\nRomeo and Juliet: accuracy {result['accuracy']} vs chance {result['chance']} (majority), "
        f"{result['uniform']} (uniform), {len(names)} speakers, n_test {result['n_test']}"
    )
    assert "ロミオ" in names and len(names) >= 5
    assert all(s["train"] + s["test"] >= 30 for s in result["speakers"])
    assert result["accuracy"] > 2 * result["uniform"]
    assert result["accuracy"] > result["chance"]
    from serifu.evaluation.classifier import CharacterClassifier

    assert "ロミオ" in CharacterClassifier.load(tmp_path / "rj.skops").classes


def test_classifier_cli_bad_input(tmp_path: Path, capsys) -> None:
    script = tmp_path / "two.txt"
    script.write_text("A\tこんにちは\nB\tさようなら\n", encoding="utf-8")
    assert main(["eval", "classifier", str(script), "--source", "table", "--min-lines", "5"]) == 2
    err = capsys.readouterr().err
    assert "Error:" in err and "Traceback" not in err


def _random_adapter(out: Path) -> Path:
    """A LoRA adapter with random (non-zero) weights on tiny-gemma, so tuned != base."""
    import torch
    from peft import LoraConfig, get_peft_model

    from serifu import plugins
    from serifu.inference import load_chatbot

    torch.manual_seed(0)
    bot = load_chatbot(model="tiny-gemma", character="kaede", device="cpu")
    targets = list(plugins.get_base_model("tiny-gemma").lora_targets)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    get_peft_model(bot.model, config).save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def tiny_eval(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    adapter = _random_adapter(root / "adapter")
    out = root / "tiny"
    code = main(
        [
            "eval",
            "--model",
            "tiny-gemma",
            "--adapter",
            str(adapter),
            "--character",
            "kaede",
            "--out",
            str(out),
            "--system-prompt",
            "both",
            "--limit",
            "3",
            "--max-new-tokens",
            "8",
            "--json",
        ]
    )
    assert code == 0
    return out


def test_end_to_end_tiny_model(tiny_eval: Path, capsys) -> None:
    names = {p.name for p in tiny_eval.iterdir()}
    assert {
        "generations.jsonl",
        "report.json",
        "report.md",
        "style_rates.png",
        "lengths.png",
        "attribution.png",
    } <= names
    rows = [
        json.loads(x)
        for x in (tiny_eval / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(rows) == 2 * (3 + 3)  # two conditions x (3 openers + 3 profile questions)
    assert {r["condition"] for r in rows} == {"system-prompt-on", "system-prompt-off"}
    report = json.loads((tiny_eval / "report.json").read_text(encoding="utf-8"))
    for condition in report["conditions"].values():
        results = condition["evaluators"]
        assert not [k for k, v in results.items() if "error" in v], results
        summary = condition["summary"]
        assert (
            summary["perplexity.perplexity"] > 1.0 and summary["perplexity.base_perplexity"] > 1.0
        )
        assert summary["perplexity.perplexity"] != summary["perplexity.base_perplexity"]
        assert results["perplexity"]["n_pairs"] == 3  # --limit caps the held-out pairs too
        assert 0.0 <= condition["summary"]["character-classifier.target_share"] <= 1.0
        assert condition["summary"]["character-classifier.heldout_accuracy"] > 0.8
    assert main(["eval", "compare", str(tiny_eval)]) == 0
    assert "system-prompt-off" in capsys.readouterr().out


def test_eval_on_4bit_reply_weights(tiny_eval: Path, tmp_path: Path) -> None:
    """`--weights nf4`: the adapter merged, then NF4; the same protocol runs, and the base's
    perplexity is left out (the adapter can no longer be switched off)."""
    out = tmp_path / "nf4"
    adapter = tiny_eval.parent / "adapter"
    args = ["eval", "--model", "tiny-gemma", "--adapter", str(adapter), "--character", "kaede"]
    args += ["--out", str(out), "--limit", "3", "--max-new-tokens", "8", "--weights", "nf4"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    summary = report["conditions"]["system-prompt-on"]["summary"]
    full = json.loads((tiny_eval / "report.json").read_text(encoding="utf-8"))
    full_summary = full["conditions"]["system-prompt-on"]["summary"]
    assert "perplexity.base_perplexity" not in summary
    # 4-bit rounding moves the perplexity, but only a little (same weights, same protocol)
    ratio = summary["perplexity.perplexity"] / full_summary["perplexity.perplexity"]
    assert 0.8 < ratio < 1.25 and ratio != 1.0
    assert main([*args[:-2], "--weights", "int3", "--out", str(tmp_path / "bad")]) == 2


def test_scorer_only_evaluators_generate_no_replies(tiny_eval: Path, tmp_path: Path) -> None:
    """`-e perplexity -e coherence` scores held-out pairs without writing replies; coherence
    uses the validation and test pairs (more lines than perplexity's test split)."""
    out = tmp_path / "scores"
    adapter = tiny_eval.parent / "adapter"
    args = ["eval", "--model", "tiny-gemma", "--adapter", str(adapter), "--character", "kaede"]
    args += ["--out", str(out), "-e", "perplexity", "-e", "coherence"]
    assert main(args) == 0
    assert (out / "generations.jsonl").read_text(encoding="utf-8") == ""
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["reference"]["selection_pairs"] > report["reference"]["heldout_pairs"] > 0
    coherence = report["conditions"]["system-prompt-on"]["evaluators"]["coherence"]
    low, high = coherence["summary"]["rank1_ci"]
    assert 0.0 <= low <= coherence["summary"]["rank1"] <= high <= 1.0
    assert coherence["summary"]["n"] == len(coherence["items"]) > 26  # kaede's test split: 28
    assert all(0.0 <= item["win"] <= 1.0 for item in coherence["items"])
    # the base, scored on the same lines in the same run, and the paired difference
    summary = coherence["summary"]
    assert 0.0 <= summary["base_rank1"] <= 1.0 and len(coherence["base_items"]) == summary["n"]
    assert summary["vs_base_ci"][0] <= summary["vs_base"] <= summary["vs_base_ci"][1]
    assert abs(summary["vs_base"] - (summary["rank1"] - summary["base_rank1"])) < 0.01
