"""Make existing adapter folders name their real base model (issue 13, portable artifacts).

Adapters trained before this fix carry the folder the base was loaded from (a cache or
temp path such as ``/tmp/serifu-cache/models/gemma-3-270m``) in ``adapter_config.json``
(``base_model_name_or_path``) and in the model card (``README.md``'s ``base_model``).
This rewrites both to the hub id or plugin id that ``serifu train`` writes now
(:func:`serifu.training.outputs.adapter_base_name`), regenerates the card as a valid
Hub card (``huggingface_hub.ModelCard``), and drops the cache path from ``serifu.json``.
Every file is replaced atomically; other keys are kept.

    python scripts/fix_adapter_base.py packages/core/src/serifu/cast/*/adapters/gemma-3-270m
    python scripts/fix_adapter_base.py ADAPTER --base google/gemma-3-270m --dry-run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError
from serifu.fsutil import atomic_write_text


def base_name_for(info: dict[str, Any], override: str | None) -> str:
    if override:
        return override
    from serifu.modeling import resolve_base
    from serifu.training.outputs import adapter_base_name

    return adapter_base_name(resolve_base(str(info["base_model"])))


def usage_line(folder: Path, info: dict[str, Any]) -> str:
    """A character pack's own adapter is used by naming the character; others by path."""
    character = (info.get("dataset") or {}).get("character_id")
    if folder.parent.name == "adapters" and character:
        return f"serifu chat --character {character}"
    return f"serifu chat --adapter {folder}" + (f" --character {character}" if character else "")


def new_card(folder: Path, info: dict[str, Any], name: str) -> str:
    """The card ``serifu train`` writes now; when ``serifu.json`` lacks what it needs,
    the old card with only its ``base_model`` changed."""
    from huggingface_hub import ModelCard

    from serifu.training.outputs import model_card

    try:
        return model_card({**info, "base_name": name, "usage": usage_line(folder, info)})
    except (KeyError, TypeError, ValueError):
        card = ModelCard.load(folder / "README.md")
        card.data.base_model = name
        return str(card.content)


def fix(folder: Path, override: str | None, dry_run: bool) -> str:
    from huggingface_hub import ModelCard

    from serifu.training.adapters import read_adapter

    info = read_adapter(folder)
    if "base_model" not in info:
        raise SerifuError("serifu.json does not name the base model; pass --base", path=folder)
    name = base_name_for(info, override)
    config_file = folder / "adapter_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    old = config.get("base_model_name_or_path")
    config["base_model_name_or_path"] = name
    card = new_card(folder, info, name)
    if ModelCard(card).data.to_dict().get("base_model") != name:  # parses back as a Hub card
        raise SerifuError("the new model card does not parse back", path=folder / "README.md")
    new_info = {k: v for k, v in info.items() if k != "base_source"} | {"base_name": name}
    if not dry_run:
        atomic_write_text(config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")
        atomic_write_text(folder / "README.md", card)
        atomic_write_text(
            folder / "serifu.json", json.dumps(new_info, ensure_ascii=False, indent=2)
        )
    return f"{folder}: {old!r} -> {name!r}" + (" (dry run)" if dry_run else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("adapters", nargs="+", type=Path, help="adapter folders")
    parser.add_argument("--base", help="the base's hub id (default: from the model plugin)")
    parser.add_argument("--dry-run", action="store_true", help="say what would change")
    args = parser.parse_args(argv)
    failed = 0
    for folder in args.adapters:
        try:
            print(fix(folder, args.base, args.dry_run))
        except SerifuError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
