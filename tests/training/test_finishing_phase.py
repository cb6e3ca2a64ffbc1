"""The finishing phase after knowledge augmentation: ``train.real_only_epochs = R`` makes
the last R epochs train on her real rows only (``source = augmented`` rows left out)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from serifu.config.train import TrainConfig
from serifu.training import train
from serifu.training.examples import encode_rows
from serifu.training.step import step_plan


def cast_pairs(limit: int) -> list[dict[str, object]]:
    """rei's real (line -> reply) rows, from the sample cast."""
    from serifu import plugins
    from serifu.data.characters import character_pairs

    return [p.to_row() for p in character_pairs(plugins.get_character("rei"))][:limit]


LENGTHS = [5 + (i * 7) % 11 for i in range(30)]
AUGMENTED = [i % 3 == 0 for i in range(30)]  # 10 augmented, 20 real


def _epochs_of(plan: list[list[int]], per_epoch: list[int]) -> list[list[int]]:
    out, at = [], 0
    for n in per_epoch:
        out.append([i for micro in plan[at : at + n] for i in micro])
        at += n
    assert at == len(plan)
    return out


def test_last_epoch_sees_each_real_example_once_and_no_augmented_one() -> None:
    cfg = TrainConfig(epochs=3, real_only_epochs=1, batch_size=4)
    plan, per_epoch = step_plan(LENGTHS, cfg, AUGMENTED)
    assert per_epoch == 8  # 30 examples in batches of 4: the mixed epochs
    first, second, last = _epochs_of(plan, [8, 8, 5])  # 20 real examples in batches of 4
    assert sorted(first) == sorted(second) == list(range(30))
    assert sorted(last) == [i for i in range(30) if not AUGMENTED[i]]
    # the mixed epochs are the plan a run without the finishing phase would have
    plain, _ = step_plan(LENGTHS, TrainConfig(epochs=3, batch_size=4), AUGMENTED)
    assert plan[:16] == plain[:16] and plan != plain


def test_without_augmented_rows_the_plan_is_unchanged() -> None:
    cfg = TrainConfig(epochs=2.5, batch_size=4, max_tokens=40)
    finishing = cfg.model_copy(update={"real_only_epochs": 1})
    assert step_plan(LENGTHS, finishing, [False] * 30) == step_plan(LENGTHS, cfg)
    assert step_plan(LENGTHS, finishing) == step_plan(LENGTHS, cfg)


def test_a_finishing_phase_that_cannot_happen_is_refused() -> None:
    with pytest.raises(ValidationError, match="fewer than epochs"):
        TrainConfig(epochs=2, real_only_epochs=2)


def test_max_steps_overrides_the_finishing_phase_as_it_overrides_epochs() -> None:
    cfg = TrainConfig(epochs=3, real_only_epochs=1, max_steps=7, batch_size=4)
    plan, _ = step_plan(LENGTHS, cfg, AUGMENTED)
    assert plan == step_plan(LENGTHS, cfg.model_copy(update={"real_only_epochs": 0}))[0]
    assert len(plan) == 7


def test_encoding_keeps_the_source_flag() -> None:
    from serifu import plugins
    from serifu.modeling import load_tokenizer, resolve_base

    base = resolve_base("tiny-llama")
    tokenizer = load_tokenizer(base)
    rows = cast_pairs(limit=4)
    rows = [dict(r, source="augmented" if i % 2 else "real") for i, r in enumerate(rows)]
    examples = encode_rows(
        rows,
        fmt="dialogue",
        tokenizer=tokenizer,
        template=plugins.get_prompt_template(base.template),
        system=None,
        add_special_tokens=True,
        max_length=256,
    )
    assert [ex.augmented for ex in examples] == [False, True, False, True]


def test_training_with_a_finishing_phase_runs_and_records_it(
    tmp_path: Path, dataset_writer: Callable[..., Path]
) -> None:
    rows = [
        dict(r, source="augmented" if i % 2 else "real") for i, r in enumerate(cast_pairs(limit=24))
    ]
    data = dataset_writer(tmp_path / "data", "dialogue", rows)
    cfg = TrainConfig(
        epochs=2, real_only_epochs=1, batch_size=4, save_steps=0, eval=False, report_to="none"
    )
    result = train("tiny-llama", data, tmp_path / "run", cfg, progress=False)
    # 21 train rows (3 went to validation): 6 mixed steps, then 11 real rows -> 3 steps
    train_rows = rows[3:]
    real = sum(r["source"] == "real" for r in train_rows)
    assert result.steps == -(-len(train_rows) // 4) + -(-real // 4)
    recorded = json.loads((tmp_path / "run" / "serifu.json").read_text(encoding="utf-8"))
    assert recorded["config"]["real_only_epochs"] == 1
    assert recorded["epochs"] == pytest.approx(2.0)
    assert Counter(r["source"] for r in train_rows)["augmented"] > 0
