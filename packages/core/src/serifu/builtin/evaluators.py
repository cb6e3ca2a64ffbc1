"""Built-in evaluators: each wraps a pure function of :mod:`serifu.evaluation` as a plugin.

``evaluate(run)`` gets a :class:`serifu.evaluation.run.EvalRun` and returns a dict with a
``"summary"`` of headline numbers (or ``{"skipped": reason}``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from serifu.evaluation import plots as plotting
from serifu.evaluation import sections
from serifu.hookspecs import hookimpl

if TYPE_CHECKING:
    from serifu.evaluation.run import EvalRun


class CharacterClassifierEvaluator:
    id = "character-classifier"
    description = "Share of replies a 'which character said this' classifier attributes to her."
    headline = {"target_share": "in-character", "heldout_accuracy": "clf ceiling"}
    markdown = staticmethod(sections.classifier_markdown)
    plots = staticmethod(plotting.attribution_plots)

    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        from serifu.evaluation.attribution import fit_and_test

        ref = run.reference
        key = ("classifier", id(ref))
        if key not in run.shared:  # fitted once per evaluation, shared by its conditions
            run.shared[key] = fit_and_test(ref.lines, seed=ref.seed)
        clf, held = run.shared[key]
        if ref.target not in clf.classes:
            return {"skipped": f"{ref.target!r} has no lines in the classifier's training split"}
        texts = run.texts()
        column = clf.classes.index(ref.target)
        probs = clf.predict_proba(texts)
        predicted = [clf.classes[i] for i in probs.argmax(axis=1)] if texts else []
        # An empty reply says nothing about who speaks: never count it as hers.
        hers = [bool(t.strip()) and p == ref.target for t, p in zip(texts, predicted, strict=True)]
        by_kind: dict[str, float] = {}
        for kind in sorted({r.kind for r in run.replies}):
            flags = [h for h, r in zip(hers, run.replies, strict=True) if r.kind == kind]
            by_kind[kind] = round(sum(flags) / len(flags), 4)
        share = sum(hers) / len(hers) if hers else 0.0
        return {
            "summary": {
                "target_share": round(share, 4),
                "mean_target_prob": round(float(probs[:, column].mean()), 4) if texts else 0.0,
                "heldout_accuracy": round(held.accuracy, 4),
                "chance": round(1 / len(clf.classes), 4),
            },
            "target": ref.target,
            "share_by_kind": by_kind,
            "attributed_to": dict(Counter(predicted).most_common()),
            "heldout": held.to_json(),
            "per_reply": [round(float(p), 4) for p in probs[:, column]] if texts else [],
        }


class ProfileQAEvaluator:
    id = "profile-qa"
    description = "Accuracy on the card's profile questions by expected-answer keywords."
    headline = {"accuracy": "profile-QA"}
    markdown = staticmethod(sections.profile_qa_markdown)

    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        from serifu.evaluation.profile_qa import profile_qa

        replies = run.profile()
        if not replies:
            return {"skipped": "no profile questions (no character card, or --limit 0)"}
        result = profile_qa(
            [r.query for r in replies], [r.text for r in replies], [r.answers for r in replies]
        )
        return {
            "summary": {
                "accuracy": result["accuracy"],
                "correct": result["correct"],
                "n": result["n"],
            },
            **result,
        }


class PerplexityEvaluator:
    id = "perplexity"
    description = (
        "Perplexity of her held-out real replies given the protagonist's line, base vs tuned."
    )
    needs_scorers = True
    needs_replies = False
    headline = {"perplexity": "ppl", "base_perplexity": "base ppl", "reduction": "ppl drop"}

    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        from serifu.evaluation.perplexity import perplexity, reduction

        pairs = run.reference.heldout_pairs
        if not pairs or "model" not in run.scorers:
            return {"skipped": "no held-out pairs or no model to score them"}
        queries, replies = [q for q, _ in pairs], [r for _, r in pairs]
        key = ("perplexity", run.condition)
        if key not in run.shared:
            run.shared[key] = {
                name: perplexity(scorer(queries, replies)) for name, scorer in run.scorers.items()
            }
        ppl = run.shared[key]
        summary: dict[str, Any] = {"perplexity": _round(ppl["model"])}
        if "base" in ppl:
            summary["base_perplexity"] = _round(ppl["base"])
            summary["reduction"] = _round(reduction(ppl["base"], ppl["model"]))
        return {"summary": summary, "n_pairs": len(pairs)}


class CoherenceEvaluator:
    id = "coherence"
    description = (
        "Response selection on held-out pairs (validation and test): the chance the model "
        "ranks her true reply to a line above 9 other replies of hers (exact rank@1 by PMI "
        "with a 95% interval; chance 0.1)"
    )
    needs_scorers = True
    needs_replies = False
    headline = {"rank1": "coherence r@1", "base_rank1": "base r@1", "vs_base": "r@1 vs base"}

    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        from serifu.evaluation.coherence import response_selection

        pairs = run.reference.selection_pairs or run.reference.heldout_pairs
        if not pairs or "model" not in run.scorers:
            return {"skipped": "no held-out pairs or no model to score them"}
        key = ("coherence", run.condition)
        if key not in run.shared:
            result = response_selection(run.scorers["model"], pairs)
            if "base" in run.scorers and "summary" in result:  # the base on the same lines
                from serifu.evaluation.coherence import paired_difference

                base = response_selection(run.scorers["base"], pairs)
                result["summary"]["base_rank1"] = base["summary"]["rank1"]
                paired = paired_difference(result["items"], base["items"])
                if paired is not None:
                    result["summary"]["vs_base"] = paired["difference"]
                    result["summary"]["vs_base_ci"] = paired["ci"]
                result["base_items"] = base["items"]
            run.shared[key] = result
        return dict(run.shared[key])


class StyleMarkersEvaluator:
    id = "style-markers"
    description = "Sentence endings, first person, … and ！ rates, length: Jensen-Shannon divergence to her real lines."
    headline = {"jsd_mean": "style JSD"}
    markdown = staticmethod(sections.style_markdown)
    plots = staticmethod(plotting.style_plots)

    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        from serifu.evaluation.style import compare_style

        real = run.reference.target_lines()
        if not real:
            return {"skipped": "no real lines of the character"}
        result = compare_style(run.texts(), real)
        gen = result["generated"]
        return {
            "summary": {
                "jsd_mean": result["jsd_mean"],
                "ellipsis_rate": gen["ellipsis_rate"],
                "exclamation_rate": gen["exclamation_rate"],
                "mean_length": gen["mean_length"],
            },
            **result,
        }


class DiversityEvaluator:
    id = "diversity"
    description = "Distinct-1/2 over morphemes of the replies."
    headline = {"distinct_1": "distinct-1", "distinct_2": "distinct-2"}

    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        from serifu.evaluation.diversity import diversity

        result = diversity(run.texts())
        return {"summary": result}


class FormatEvaluator:
    id = "format"
    description = (
        "Share of clean one-line replies that stop at the reply end; junk (special tokens, "
        "foreign script, mojibake), empty and cut-off replies."
    )
    headline = {"ok_rate": "one-line stop", "clean_rate": "clean", "empty_rate": "empty"}

    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        from serifu.evaluation.reply_format import reply_format

        latin = frozenset(
            w.lower()
            for line in run.reference.target_lines()
            for w in re.findall(r"[A-Za-z]{4,}", line)
        )
        name = run.card.short_name if run.card is not None else run.reference.target
        result = reply_format(run.texts(), [r.stopped for r in run.replies], latin, name or None)
        return {
            "summary": {
                "ok_rate": result["ok_rate"],
                "clean_rate": result["clean_rate"],
                "empty_rate": result["empty_rate"],
            },
            **result,
        }


class EchoEvaluator:
    id = "echo"
    description = "Share of replies that repeat the player's line back instead of answering it."
    headline = {"echo_rate": "echo"}

    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        from serifu.evaluation.echo import echo_report

        result = echo_report([r.query for r in run.replies], run.texts())
        return {"summary": {"echo_rate": result["echo_rate"]}, **result}


class FragmentsEvaluator:
    id = "fragments"
    description = (
        "Share of replies with a broken piece of sentence (one opening with a case particle, "
        "impossible kana, a dangling noun after a finished sentence, a loop), next to her real "
        "lines' rate."
    )
    headline = {"fragment_rate": "fragments"}

    def evaluate(self, run: EvalRun) -> dict[str, Any]:
        from serifu.evaluation.fragments import fragment_report

        result = fragment_report(
            run.texts(), [r.stopped for r in run.replies], run.reference.target_lines()
        )
        summary = {"fragment_rate": result["fragment_rate"]}
        if result["reference_rate"] is not None:
            summary["reference_rate"] = result["reference_rate"]
        return {"summary": summary, **result}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


BUILTIN_EVALUATORS = (
    CharacterClassifierEvaluator,
    ProfileQAEvaluator,
    PerplexityEvaluator,
    CoherenceEvaluator,
    StyleMarkersEvaluator,
    DiversityEvaluator,
    FormatEvaluator,
    EchoEvaluator,
    FragmentsEvaluator,
)


@hookimpl
def register_evaluators(register: Callable[[Any], None]) -> None:
    for evaluator in BUILTIN_EVALUATORS:
        register(evaluator())
