"""Re-run evaluators on a finished evaluation's saved replies, without loading any model.

Useful when an evaluator was added or fixed, or failed where the replies were generated
(e.g. a GPU machine without the morphological analyser). Evaluators that need the model
(``needs_scorers``, e.g. ``perplexity``) cannot be re-run this way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError
from serifu.evaluation.run import EvalRun, Reply
from serifu.kinds import needs_scorers


def read_replies(run_dir: Path) -> dict[str, list[Reply]]:
    path = run_dir / "generations.jsonl"
    out: dict[str, list[Reply]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SerifuError("no generations.jsonl here", path=run_dir) from None
    for no, line in enumerate(lines, start=1):
        try:
            reply = Reply(**json.loads(line))
        except (json.JSONDecodeError, TypeError) as exc:
            raise SerifuError(f"not a reply row ({exc})", path=path, line=no) from None
        out.setdefault(reply.condition, []).append(reply)
    return out


def rescore(
    run_dir: Path,
    evaluator_ids: Sequence[str],
    *,
    script: Sequence[Path] = (),
    source: str | None = None,
) -> dict[str, Any]:
    """Re-run ``evaluator_ids`` on ``run_dir``'s replies and rewrite its report files (other
    files in ``run_dir`` stay)."""
    from serifu import plugins
    from serifu.evaluation.compare import load_report
    from serifu.evaluation.reference import cast_reference, script_reference
    from serifu.evaluation.report import headline
    from serifu.evaluation.runner import run_evaluators, selected_evaluators, write_outputs

    evaluators = selected_evaluators(list(evaluator_ids))
    blocked = sorted(i for i, e in evaluators.items() if needs_scorers(e))
    if blocked:
        raise SerifuError(f"{', '.join(blocked)} needs the model: run `serifu eval` again instead")
    report = load_report(run_dir)
    replies = read_replies(run_dir)
    seed = int(report.get("settings", {}).get("seed", 0))
    character = report.get("character")
    if character:
        reference = cast_reference(character, seed=seed)
        card = plugins.get_character(character).card()
    elif script and source:
        reference = script_reference(list(script), source, speaker=report.get("target"), seed=seed)
        card = None
    else:
        raise SerifuError(
            "this evaluation was of a script character: give the same --script and --source",
            path=run_dir,
        )
    shared: dict[Any, Any] = {}
    for condition, data in report["conditions"].items():
        run = EvalRun(condition, replies.get(condition, []), reference, card=card, shared=shared)
        data["evaluators"].update(run_evaluators(run, evaluators))
        data["summary"] = headline(data["evaluators"])
    report["rescored"] = {
        "evaluators": list(evaluator_ids),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_outputs(run_dir, report, replies, evaluators, keep_others=True)
    return report
