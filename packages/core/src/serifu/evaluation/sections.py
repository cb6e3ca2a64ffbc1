"""The built-in evaluators' own ``report.md`` sections (``Evaluator.markdown(result)``)."""

from __future__ import annotations

from typing import Any

from serifu.evaluation.report import fmt, markdown_table


def classifier_markdown(result: dict[str, Any]) -> str:
    """Held-out ceiling, who the replies were attributed to, the worst confusions."""
    held = result["heldout"]
    out = [
        f"Held-out accuracy on real lines {held['accuracy']:.3f} (majority baseline "
        f"{held['chance']:.3f}, {held['n_test']} lines). Replies attributed to: "
        + ", ".join(f"{k} {v}" for k, v in result["attributed_to"].items()),
    ]
    if held["confusions"]:
        out += [
            "",
            "Most confused (true → predicted): "
            + ", ".join(
                f"{c['true']}→{c['predicted']} ×{c['count']}" for c in held["confusions"][:5]
            ),
        ]
    return "\n".join(out)


def profile_qa_markdown(result: dict[str, Any]) -> str:
    """One row per profile question: the reply and whether it held an accepted answer."""
    rows = [
        [i["q"], i["reply"] or "(empty)", "✓" if i["correct"] else "✗"] for i in result["items"]
    ]
    return markdown_table(["question", "reply", "ok"], rows)


def _top(dist: dict[str, float], k: int = 4) -> str:
    return " ".join(f"{key} {value:.2f}" for key, value in list(dist.items())[:k]) or "–"


def style_markdown(result: dict[str, Any]) -> str:
    """Generated vs real style markers with each marker's Jensen-Shannon divergence."""
    gen, real, jsd = result["generated"], result["real"], result["jsd"]
    rows = [
        ["top endings", _top(gen["top_endings"]), _top(real["top_endings"]), fmt(jsd["endings"])],
        [
            "first person",
            _top(gen["first_person"]),
            _top(real["first_person"]),
            fmt(jsd["first_person"]),
        ],
    ]
    for label, key, jsd_key in (
        ("… rate", "ellipsis_rate", "ellipsis"),
        ("！ rate", "exclamation_rate", "exclamation"),
        ("？ rate", "question_rate", "question"),
        ("mean length", "mean_length", "length"),
    ):
        rows.append([label, fmt(gen[key]), fmt(real[key]), fmt(jsd[jsd_key])])
    return markdown_table(["marker", "generated", "real", "JSD"], rows)
