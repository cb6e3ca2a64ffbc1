"""bench/reply_rates.py: echo and fragment rates of saved replies next to real lines'."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def test_saved_replies_base_against_tuned() -> None:
    from bench.reply_rates import reply_rows

    rows = reply_rows([ROOT / "docs" / "results" / "akane"])
    by = {(r["run"], r["condition"]): r for r in rows}
    base = by[("akane/base", "system-prompt-off")]
    tuned = by[("akane/tuned", "system-prompt-off")]
    assert base["n"] == tuned["n"] > 100
    assert base["fragment_rate"] > tuned["fragment_rate"]  # type: ignore[operator]
    assert base["echo_rate"] > tuned["echo_rate"]  # type: ignore[operator]
    from serifu.evaluation.fragments import KINDS

    assert set(base["fragments_by_kind"]) == set(KINDS)  # type: ignore[arg-type]


def test_real_lines_without_the_corpus_are_the_cast_s() -> None:
    from bench.reply_rates import real_rows

    rows = real_rows(None)
    assert len(rows) == 8
    assert all(r["fragment_rate"] < 0.01 for r in rows)  # type: ignore[operator]
