"""PNG plots of an evaluation (matplotlib, Agg backend), rendered to bytes for atomic writes.

Each evaluator draws its own (``Evaluator.plots``); the built-in ones use the functions here.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

# CJK-capable fonts first where installed; matplotlib warns (not fails) on missing glyphs.
_FONTS = ["Noto Sans CJK JP", "IPAexGothic", "IPAGothic", "TakaoGothic", "DejaVu Sans"]


def _figure(width: float = 7.0, height: float = 3.6) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["font.sans-serif"] = _FONTS
    return plt.subplots(figsize=(width, height), dpi=100)


def _png(fig: Any) -> bytes:
    import warnings

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing CJK glyphs in labels
        fig.tight_layout()
        fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _bars(ax: Any, groups: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(groups))], values, width, label=name)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(groups))], groups)
    ax.legend(fontsize=8)


def style_rates_png(styles: Mapping[str, dict[str, Any]]) -> bytes | None:
    """… / ！ / ？ rates of the replies of each condition next to her real lines."""
    styles = {c: s for c, s in styles.items() if "generated" in s}
    if not styles:
        return None
    markers = ["ellipsis_rate", "exclamation_rate", "question_rate"]
    real = next(iter(styles.values()))["real"]
    series = {cond: [s["generated"][m] for m in markers] for cond, s in styles.items()}
    series["real lines"] = [real[m] for m in markers]
    fig, ax = _figure()
    _bars(ax, ["… rate", "! rate", "? rate"], series)
    ax.set_ylim(0, 1)
    ax.set_title("Style markers: share of replies")
    return _png(fig)


def lengths_png(styles: Mapping[str, dict[str, Any]]) -> bytes | None:
    """Binned reply lengths (characters) of each condition and of her real lines."""
    styles = {c: s for c, s in styles.items() if "generated" in s}
    if not styles:
        return None
    from serifu.evaluation.style import LENGTH_BINS, length_bin

    bins = [length_bin(b) for b in LENGTH_BINS] + [length_bin(LENGTH_BINS[-1] + 1)]
    series = {
        c: [s["length_distribution"]["generated"].get(b, 0.0) for b in bins]
        for c, s in styles.items()
    }
    real = next(iter(styles.values()))["length_distribution"]["real"]
    series["real lines"] = [real.get(b, 0.0) for b in bins]
    fig, ax = _figure()
    _bars(ax, [b.replace("≤", "<=") for b in bins], series)
    ax.set_title("Reply length (characters)")
    return _png(fig)


def attribution_png(found: Mapping[str, dict[str, Any]]) -> bytes | None:
    """Who the classifier thinks said each condition's replies."""
    found = {c: r for c, r in found.items() if "attributed_to" in r}
    if not found:
        return None
    labels = sorted({label for r in found.values() for label in r["attributed_to"]})
    series = {}
    for cond, result in found.items():
        total = sum(result["attributed_to"].values()) or 1
        series[cond] = [result["attributed_to"].get(label, 0) / total for label in labels]
    fig, ax = _figure(max(7.0, 0.7 * len(labels) + 2))
    _bars(ax, labels, series)
    ax.set_ylim(0, 1)
    ax.set_title(
        f"Classifier attribution of replies (target: {next(iter(found.values()))['target']})"
    )
    return _png(fig)


def _rendered(pngs: Mapping[str, bytes | None]) -> dict[str, bytes]:
    return {name: png for name, png in pngs.items() if png is not None}


def style_plots(results: Mapping[str, dict[str, Any]]) -> dict[str, bytes]:
    """``style-markers``' plots (its ``Evaluator.plots``)."""
    return _rendered(
        {"style_rates.png": style_rates_png(results), "lengths.png": lengths_png(results)}
    )


def attribution_plots(results: Mapping[str, dict[str, Any]]) -> dict[str, bytes]:
    """``character-classifier``'s plot (its ``Evaluator.plots``)."""
    return _rendered({"attribution.png": attribution_png(results)})


def render_plots(
    conditions: Mapping[str, Mapping[str, dict[str, Any]]], evaluators: Mapping[str, Any]
) -> dict[str, bytes]:
    """File name -> PNG bytes of every evaluator's plots (condition -> evaluator id -> result).

    Each evaluator gets its own results of the conditions where it neither skipped nor
    failed; a plot that fails is left out with a warning (the numbers matter more).
    """
    import warnings

    from serifu.kinds import evaluator_plots

    out: dict[str, bytes] = {}
    for evaluator_id, evaluator in evaluators.items():
        mine = {
            cond: results[evaluator_id]
            for cond, results in conditions.items()
            if evaluator_id in results and not {"skipped", "error"} & set(results[evaluator_id])
        }
        if not mine:
            continue
        try:
            pngs = evaluator_plots(evaluator, mine)
        except Exception as exc:
            warnings.warn(
                f"{evaluator_id}: plots failed ({type(exc).__name__}: {exc})", stacklevel=2
            )
            continue
        for name, png in pngs.items():
            if name in out:
                warnings.warn(f"{evaluator_id}: plot {name} already exists; skipped", stacklevel=2)
                continue
            out[name] = png
    return out
