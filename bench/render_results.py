"""Render a GPU results file (bench/results/<date>-<gpu>.json) or an ablation file
(<date>-<gpu>-ablation.json) as the markdown tables of docs/benchmarks.md; any other record
(a JSON object: the bench scripts' own shapes, with a ``note``) as its note and one table per
list or mapping of rows in it.

    python bench/render_results.py bench/results/2026-11-29-nvidia-h200.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _plain(v: Any) -> bool:
    """A value one cell shows: a scalar or a list of scalars."""
    return _scalar(v) or isinstance(v, list) and all(map(_scalar, v))


def _rows(value: Any) -> list[dict]:
    """``value`` as table rows: a list of objects, or an object of objects (each key first,
    as ``name``); [] for anything else."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return value
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return [{"name": k} | v for k, v in value.items()]
    return []


def _tables(value: Any, path: str) -> Iterator[tuple[str, list[dict]]]:
    """(where, rows) for every list or mapping of rows inside ``value``, outermost first."""
    rows = _rows(value)
    if rows:
        yield path, rows
    if isinstance(value, dict):
        for key, child in value.items():
            if isinstance(child, dict | list) and key != "versions":
                yield from _tables(child, f"{path}.{key}" if path else key)


def _cell(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    return "–" if v is None else str(v).replace("|", "\\|").replace("\n", " ")


def render_record(record: dict) -> str:
    """A record of any other shape: its note, then one table per set of rows (their scalar
    fields and lists of scalars as columns)."""
    out = [str(record["note"]), ""] if "note" in record else []
    fields = {k: v for k, v in record.items() if k != "note" and _plain(v)}
    if fields:  # the record's own scalar fields
        out += ["| field | value |", "|---|---|"]
        out += [f"| {k} | {_cell(v)} |" for k, v in fields.items()] + [""]
    for where, rows in _tables(record, ""):
        cols: list[str] = []
        for r in rows:
            plain = (
                k
                for k, v in r.items()
                if _scalar(v) or isinstance(v, list) and all(map(_scalar, v))
            )
            cols += [k for k in plain if k not in cols]
        if cols == ["name"]:
            continue
        out += [f"**{where}**", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        out += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
        out.append("")
    return "\n".join(out)


def render_any(data: Any) -> str:
    """The tables of one results file, whichever of the shapes above it has."""
    if isinstance(data, list) and data and {"variant", "settings"} <= data[0].keys():
        return render_ablation(data)
    if isinstance(data, list) and data and {"model", "workload", "metric"} <= data[0].keys():
        return render(data)
    return render_record(data if isinstance(data, dict) else {"rows": data})


if __name__ == "__main__":
    print(render_any(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
