"""Coherence per heroine over all her lines: k-fold cross-validation of her recipe.

One shipped adapter is scored on the lines its data build held out (55–65 pairs for some
heroines): too few for a per-heroine interval when the gain over the base is small. Dealing
her scenes into ``k`` folds (``serifu data build --fold I/K``) and training her recipe once
per fold holds out every one of her pairs exactly once; each fold's adapter is scored on its
own held-out pairs against the base on the same pairs, and the paired per-line differences
are pooled. That measures her *recipe* (seed 0, not the shipped soup of three seeds) on
k× the lines.

    python bench/coherence_folds.py build --characters akane,hina,shiori --folds 5 --out .gpu-folds
    # GPU: bash bench/gpu/job-cast.sh cv akane,hina,shiori 5   (carry .gpu-folds; one report per fold)
    python bench/coherence_folds.py summarise REPORT_DIR --out bench/results/coherence-folds-....json

``summarise`` reads ``<id>-f<i>/report.json`` (``serifu eval -e coherence`` reports) and, for
comparison, the shipped adapter's report under ``docs/results/<id>/`` (``--shipped``: its soup's
scores, else its tuned run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "cast-adapter.toml"


def build(ids: list[str], folds: int, out: Path) -> None:
    """``out/f<i>/<id>``: her recipe's dataset with fold ``i`` held out."""
    from serifu.config import load_config
    from serifu.data.build import build_character_dataset

    for cid in ids:
        for i in range(folds):
            config = load_config(RECIPE, [f"data.folds={folds}", f"data.fold={i}"]).data
            result = build_character_dataset(cid, out / f"f{i}" / cid, config=config, force=True)
            print(cid, i, result.splits, flush=True)


def _coherence(report: dict[str, Any], condition: str) -> dict[str, Any] | None:
    cond = report.get("conditions", {}).get(condition, {})
    return cond.get("evaluators", {}).get("coherence")


def _shipped_report(cid: str, shipped: str) -> Path | None:
    """Her shipped adapter's scores: ``docs/results/<id>/<shipped>`` (auto: soup, else tuned)."""
    runs = ("soup", "tuned") if shipped == "auto" else (shipped,)
    for run in runs:
        for name in ("scores.json", "report.json"):
            path = ROOT / "docs" / "results" / cid / run / name
            if path.exists():
                return path
    return None


def _base_items(cid: str, condition: str) -> list[dict[str, Any]]:
    """The base model's coherence items from ``docs/results/<id>/base`` (older tuned runs
    kept the base in its own report)."""
    path = ROOT / "docs" / "results" / cid / "base" / "report.json"
    coh = (
        _coherence(json.loads(path.read_text(encoding="utf-8")), condition)
        if path.exists()
        else None
    )
    return list(coh.get("items", [])) if coh else []


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    """A summary metric over her folds, each weighted by its lines."""
    weights = [r["coherence_vs_base"]["n"] for r in rows]
    total = sum(w * r["metrics"][key] for w, r in zip(weights, rows, strict=True))
    return round(total / max(sum(weights), 1), 4)


def summarise(folder: Path, condition: str, shipped: str) -> dict[str, Any]:
    """Per heroine: each fold's difference over the base and the folds pooled
    (:func:`serifu.evaluation.compare.pooled_coherence`, as ``serifu eval compare`` prints
    them), beside her shipped adapter's own split."""
    from serifu.evaluation.coherence import paired_diffs, summarise_diffs
    from serifu.evaluation.compare import compare_rows, pooled_coherence

    runs = sorted(path.parent for path in folder.glob("*-f*/report.json"))
    rows = [
        r for r in compare_rows(runs) if r["condition"] == condition and "coherence_vs_base" in r
    ]
    pooled = {p["character"]: p for p in pooled_coherence(rows) if "character" in p}
    out: dict[str, Any] = {
        "method": (
            "k-fold cross-validation of her recipe (configs/cast-adapter.toml + her [ID.train] "
            "overrides, seed 0, no soup): scenes dealt into folds (serifu data build --fold I/K), "
            "one adapter per fold, coherence rank@1 (PMI, exact over draws of 9 from a pool of "
            "19 of the fold's held-out replies) against the base on the same lines; paired "
            "per-line differences pooled over the folds, 95 % bootstrap interval over lines"
        ),
        "condition": condition,
        "characters": {},
    }
    for cid in dict.fromkeys(r["character"] for r in rows):
        mine = [r for r in rows if r["character"] == cid]
        together = pooled.get(cid, mine[0]["coherence_vs_base"])  # one fold: itself
        row: dict[str, Any] = {
            "folds": [{"fold": Path(r["run"]).name} | r["coherence_vs_base"] for r in mine],
            "rank1": _mean(mine, "coherence.rank1"),
            "base_rank1": _mean(mine, "coherence.base_rank1"),
            "vs_base": {k: together[k] for k in ("difference", "ci", "n")},
        }
        ship = _shipped_report(cid, shipped)
        coh = _coherence(json.loads(ship.read_text(encoding="utf-8")), condition) if ship else None
        if ship and coh and "items" in coh:
            base_items = coh.get("base_items") or _base_items(cid, condition)
            row["shipped"] = {
                "report": str(ship.relative_to(ROOT)),
                "vs_base": summarise_diffs(paired_diffs(coh["items"], base_items)),
            }
        out["characters"][cid] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--characters", required=True)
    b.add_argument("--folds", type=int, default=5)
    b.add_argument("--out", type=Path, default=ROOT / ".gpu-folds")
    s = sub.add_parser("summarise")
    s.add_argument("folder", type=Path)
    s.add_argument("--condition", default="system-prompt-on")
    s.add_argument(
        "--shipped",
        default="auto",
        help="docs/results/<id>/<run> of the shipped adapter (auto: soup, else tuned)",
    )
    s.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.cmd == "build":
        build([c for c in args.characters.split(",") if c], args.folds, args.out)
        return
    result = summarise(args.folder, args.condition, args.shipped)
    text = json.dumps(result, ensure_ascii=False, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    for cid, row in result["characters"].items():
        v, sh = row["vs_base"], row.get("shipped", {}).get("vs_base")
        print(f"{cid}: cross-validated {v}  shipped {sh}", file=sys.stderr)


if __name__ == "__main__":
    main()
