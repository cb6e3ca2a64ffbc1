"""Render a GPU results file (bench/results/<date>-<gpu>.json) or an ablation file
(<date>-<gpu>-ablation.json) as the markdown tables of docs/benchmarks.md.

    python bench/render_results.py bench/results/2026-11-29-nvidia-h200.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ORDER = ["line-3.6b", "novel-gptj-6b", "stablelm-beta-7b", "gemma-3-270m"]


def _fmt(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.2f}".rstrip("0").rstrip(".")


def render(records: list[dict]) -> str:
    by: dict[tuple[str, str, str], list[dict]] = {}
    for r in records:
        by.setdefault((r["model"], r["workload"], r["metric"]), []).append(r)
    out = [
        "| model | workload | metric | Serifu | baseline | baseline kind | ratio | peak GiB (Serifu / baseline) | MFU (Serifu / baseline) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    workloads = [
        "lines",
        "lines-auto",
        "dialogue",
        "dialogue-auto",
        "dialogue-ddp2",
        "generate",
        "generate-batch8",
        "generate-batch32",
    ]
    for model in ORDER:
        for wl in workloads:
            for metric in ("real_tokens_per_s", "job_wall_s", "tokens_per_s", "first_token_ms"):
                for r in by.get((model, wl, metric), []):
                    out.append(_row(model, wl, metric, r))
    return "\n".join(out)


def _row(model: str, wl: str, metric: str, r: dict) -> str:
    peak = r.get("peak_gib") or {}
    mfu = r.get("mfu") or {}
    return (
        f"| {model} | {wl} | {metric} ({r['unit']}) | {_fmt(r['serifu'])} | {_fmt(r['baseline'])} | "
        f"{r.get('baseline_kind', 'recipe')} | "
        + (f"{r['ratio']:.2f}×" if r.get("ratio") is not None else "–")
        + " | "
        + (f"{peak.get('serifu', 0):.1f} / {peak.get('baseline', 0):.1f}" if peak else "–")
        + " | "
        + (f"{mfu['serifu']:.1%} / {mfu['baseline']:.1%}" if mfu else "–")
        + " |"
    )


def render_ablation(rows: list[dict]) -> str:
    """One row per (model, workload, variant): tokens/s, relative to Serifu's settings, peak."""
    ref = {
        (r["model"], r["workload"]): r.get("tokens_per_s") for r in rows if r["variant"] == "serifu"
    }
    out = [
        "| model | workload | variant | settings changed | real tok/s | vs Serifu | peak GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (ORDER.index(r["model"]), r["workload"])):
        base = ref.get((r["model"], r["workload"]))
        rate = r.get("tokens_per_s")
        rel = f"{rate / base:.2f}×" if rate and base else "–"
        changed = {k: v for k, v in r["settings"].items() if k not in ("learning_rate",)}
        text = ", ".join(f"{k}={v}" for k, v in changed.items())
        out.append(
            f"| {r['model']} | {r['workload']} | {r['variant']} | {text} | "
            f"{_fmt(rate) if rate else r.get('error', '–')} | {rel} | {r.get('peak_gib', '–')} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(render_ablation(data) if data and "variant" in data[0] else render(data))
