"""What a training run writes next to the adapter: ``serifu.json`` and a Hub model card.

Adapters name their real base: ``adapter_config.json``'s ``base_model_name_or_path`` and
the card's ``base_model`` are the hub id (e.g. ``google/gemma-3-270m``) or the plugin id,
never the cache folder the weights were loaded from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _base_grid(cfg: dict[str, Any]) -> str:
    """How the base was held in training, for the adapter card."""
    from serifu.inference.quantize import adapter_grid

    grid = adapter_grid({"config": cfg})
    return {None: "full precision", "uint4": "uint4 grid, for `--weights uint4` replies"}.get(
        grid, "NF4 4-bit"
    )


def versions() -> dict[str, str]:
    from serifu.versions import versions as library_versions

    return library_versions()


def adapter_base_name(base: Any) -> str:
    """The name an adapter gives its base (a :class:`serifu.modeling.ResolvedBase`):
    a plugin's ``upstream_hub_id`` (where converted weights come from), else its
    ``hub_id``, else its id; a hub id or folder given directly, as given."""
    plugin = getattr(base, "plugin", None)
    if plugin is not None:
        return str(
            getattr(plugin, "upstream_hub_id", None) or getattr(plugin, "hub_id", None) or plugin.id
        )
    return str(base.id)


def name_base_in_adapter(peft_model: Any, name: str) -> None:
    """Set ``base_model_name_or_path`` of every adapter config before ``save_pretrained``."""
    for cfg in peft_model.peft_config.values():
        cfg.base_model_name_or_path = name


def write_run_files(folder: Path, info: dict[str, Any]) -> None:
    (folder / "serifu.json").write_text(
        json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    (folder / "README.md").write_text(model_card(info), encoding="utf-8")


def _card_data(info: dict[str, Any]) -> Any:
    from huggingface_hub import ModelCardData

    return ModelCardData(
        base_model=info.get("base_name") or info["base_model"],
        library_name="peft",
        pipeline_tag="text-generation",
        language=["ja"],
        tags=["serifu", "lora", "qlora", "role-play"],
    )


def _soup_row(info: dict[str, Any]) -> list[str]:
    """The card's row for an adapter soup (:mod:`serifu.training.soup`), else none."""
    soup = info.get("soup")
    if not soup:
        return []
    seeds = ", ".join(str(s) for s in soup.get("seeds") or [])
    row = (
        f"| soup | the average of {len(soup['of'])} adapters of this recipe (training seeds "
        f"{seeds}; the rows above are the first one's)"
    )
    if soup["rank"] < soup["rank_each"] * len(soup["of"]):
        row += f", cut to rank {soup['rank']} ({soup['energy_kept_min']:.0%} of the delta kept)"
    return [row + " |"]


def model_card(info: dict[str, Any]) -> str:
    """A Hub model card (YAML metadata + Markdown) that ``huggingface_hub.ModelCard`` loads."""
    from huggingface_hub import ModelCard

    ds = info["dataset"]
    cfg = info["config"]
    lora = cfg["lora"]
    eval_loss = info.get("eval_loss")
    base_name = info.get("base_name") or info["base_model"]
    body = [
        f"# Serifu character adapter: {ds.get('character') or 'unknown character'}",
        "",
        f"A LoRA adapter for **{base_name}** (Serifu base model `{info['base_model']}`) trained "
        f"by Serifu on {ds['train_examples']} `{ds['format']}` examples"
        + (" (with the character's system prompt)." if info["system_prompt"] else "."),
        "",
        "| | |",
        "|---|---|",
        f"| base model | `{info['base_model']}` ({_base_grid(cfg)}) |",
        f"| prompt template | `{info['template']}` |",
        f"| LoRA | r={lora['r']}, alpha={lora['alpha']}, dropout={lora['dropout']}, targets={', '.join(info['lora_targets'])} |",
        f"| steps | {info['steps']} (batch {cfg['batch_size']}, lr {cfg['learning_rate']}, {cfg['lr_scheduler']}) |",
        f"| loss | first {info['loss_first']:.4f}, last {info['loss_last']:.4f}"
        + (f", validation {eval_loss:.4f}" if eval_loss is not None else "")
        + " |",
        f"| speed | {info['tokens_per_s']:.1f} tokens/s, {info['wall_s']:.1f} s, peak {info['peak_gib']:.2f} GiB on {info['device']} |",
        f"| dataset | build.json sha256 `{ds['build_sha256'][:12]}` |",
        *_soup_row(info),
        "",
        "## Use",
        "",
        "```",
        info.get("usage")
        or f"serifu chat --adapter {info['out']}"
        + (f" --character {ds['character_id']}" if ds.get("character_id") else ""),
        "```",
        "",
    ]
    text = f"---\n{_card_data(info).to_yaml()}\n---\n\n" + "\n".join(body)
    return str(ModelCard(text).content)
