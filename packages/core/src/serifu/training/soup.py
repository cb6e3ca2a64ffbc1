"""An adapter soup: the exact average of several LoRA adapters of one recipe.

Adapters trained with the same recipe and different seeds differ in what they get right
(docs/results: coherence moved with the seed, not the recipe). Averaging their weight
deltas is the "model soup" way to keep what they share and shrink what each got by chance.
LoRA deltas average exactly as one LoRA of the summed rank: with ``k`` adapters of rank
``r`` and scaling ``s``, ``A = [A_1; ...; A_k]`` and ``B = [B_1, ..., B_k] / k`` give
``s * B A = s/k * sum(B_i A_i)`` — so the soup loads, merges and serves like any adapter.
With ``rank`` the averaged delta is cut back to its best rank-``rank`` approximation (a
truncated SVD per layer): the soup then weighs what one member weighs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from serifu.errors import SerifuError
from serifu.fsutil import atomic_output_dir
from serifu.training.adapters import read_adapter, read_json_object

# adapter_config.json keys that must agree for deltas to be averaged
_SAME = ("peft_type", "r", "lora_alpha", "use_rslora", "base_model_name_or_path", "bias")


def _check_alike(folders: list[Path], configs: list[dict[str, Any]]) -> None:
    first = configs[0]
    for folder, cfg in zip(folders, configs, strict=True):
        if cfg.get("peft_type") != "LORA" or cfg.get("use_dora") or cfg.get("rank_pattern"):
            raise SerifuError(
                "only plain LoRA adapters average exactly (no DoRA, no per-layer ranks)",
                path=folder / "adapter_config.json",
            )
        if cfg.get("alpha_pattern") or cfg.get("modules_to_save"):
            raise SerifuError(
                "adapters with per-layer alphas or fully trained modules cannot be averaged",
                path=folder / "adapter_config.json",
            )
        for key in _SAME:
            if cfg.get(key) != first.get(key):
                raise SerifuError(
                    f"adapters to average must share {key} ({folders[0]}: {first.get(key)!r}, "
                    f"this one: {cfg.get(key)!r})",
                    path=folder / "adapter_config.json",
                )
        if sorted(cfg.get("target_modules") or []) != sorted(first.get("target_modules") or []):
            raise SerifuError(
                f"adapters to average must adapt the same layers as {folders[0]}",
                path=folder / "adapter_config.json",
            )


def _truncate(a: Any, b: Any, rank: int) -> tuple[Any, Any, float]:
    """The best rank-``rank`` factors of ``b @ a`` (Eckart-Young: truncated SVD) as (A, B),
    and the share of the product's squared norm they keep. The SVD is taken of the small
    ``R_b R_aᵀ`` (QR of each factor: ``b @ a = Q_b (R_b R_aᵀ) Q_aᵀ``), never of the
    out × in product: exact, and (out + in)·r² work instead of out·in·min(out, in)."""
    import torch

    q_b, r_b = torch.linalg.qr(b.double())  # (out, r), (r, r)
    q_a, r_a = torch.linalg.qr(a.double().T)  # (in, r), (r, r)
    u, s, vh = torch.linalg.svd(r_b @ r_a.T)
    root = s[:rank].sqrt()
    kept = float((s[:rank] ** 2).sum() / (s**2).sum().clamp(min=1e-30))
    new_a = (root[:, None] * (vh[:rank] @ q_a.T)).to(a.dtype)
    new_b = ((q_b @ u[:, :rank]) * root[None, :]).to(b.dtype)
    return new_a, new_b, kept


def average_adapters(
    folders: list[Path], out: Path, *, rank: int | None = None, force: bool = False
) -> dict[str, Any]:
    """Write the soup of ``folders`` (≥ 2 adapters of one base and LoRA shape) to ``out``;
    returns its ``serifu.json``. The exact soup has rank ``k * r`` and ``lora_alpha``
    ``k * alpha`` (same scaling); ``rank`` cuts it back (``serifu.json`` records the share of
    the delta's energy kept, worst layer). Computed in float32, stored in the first
    adapter's dtype."""
    import torch
    from safetensors.torch import load_file, save_file

    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise SerifuError("an adapter soup needs at least two adapters")
    if rank is not None and rank < 1:
        raise SerifuError(f"the soup's rank must be at least 1 (got {rank})")
    infos = [read_adapter(f) for f in folders]
    bases = {str(i.get("base_model")) for i in infos if i.get("base_model")}
    if len(bases) > 1:
        raise SerifuError(f"adapters to average were trained on different bases: {sorted(bases)}")
    configs = [read_json_object(f / "adapter_config.json") for f in folders]
    _check_alike(folders, configs)
    tensors = [load_file(str(f / "adapter_model.safetensors")) for f in folders]
    keys = set(tensors[0])
    for folder, t in zip(folders[1:], tensors[1:], strict=True):
        if set(t) != keys:
            raise SerifuError(
                f"the adapter's layers differ from {folders[0]}'s",
                path=folder / "adapter_model.safetensors",
            )
    k = len(folders)
    soup: dict[str, Any] = {}
    for key in sorted(keys):  # in float32; stored below in the first adapter's dtype
        if "lora_A" in key:  # (r, in): stack the ranks
            soup[key] = torch.cat([t[key].float() for t in tensors], dim=0)
        elif "lora_B" in key:  # (out, r): side by side, each share 1/k
            soup[key] = torch.cat([t[key].float() for t in tensors], dim=1) / k
        else:
            raise SerifuError(
                f"cannot average the adapter weight {key!r} (only lora_A / lora_B)",
                path=folders[0] / "adapter_model.safetensors",
            )
    config = dict(configs[0])
    r_each, alpha = int(config["r"]), float(config["lora_alpha"])
    new_rank = r_each * k
    kept = 1.0
    if rank is not None and rank < new_rank:
        for key in [x for x in soup if "lora_A" in x]:
            b_key = key.replace("lora_A", "lora_B")
            soup[key], soup[b_key], share = _truncate(soup[key], soup[b_key], rank)
            kept = min(kept, share)
        new_rank = rank
    soup = {key: v.to(tensors[0][key].dtype).contiguous() for key, v in soup.items()}
    # the same scaling as each member's: alpha/r, or alpha/sqrt(r) with rsLoRA
    factor = new_rank / r_each
    config["r"] = new_rank
    config["lora_alpha"] = alpha * (factor**0.5 if config.get("use_rslora") else factor)
    # the first member's serifu.json (its training numbers, its recipe) + what was averaged
    info = dict(infos[0])
    info["soup"] = {
        "of": [str(f) for f in folders],
        "seeds": [(i.get("config") or {}).get("seed") for i in infos],
        "rank_each": r_each,
        "rank": new_rank,
        "energy_kept_min": round(kept, 4),
    }
    with atomic_output_dir(out, kind="adapter", inputs=folders, force=force) as tmp:
        save_file(soup, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        (tmp / "serifu.json").write_text(
            json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8"
        )
        if "dataset" in info:  # members written by `serifu train`: a model card too
            from serifu.training.outputs import model_card

            (tmp / "README.md").write_text(model_card(info), encoding="utf-8")
        _keep_vocabulary(folders, tmp)
        _keep_examples(folders, tmp)
    return info


def _keep_vocabulary(folders: list[Path], out: Path) -> None:
    """Her tokens, as the members keep them (``serifu.inference.vocab``): their union, when
    every member has them (a member without them: the soup goes without, as it did)."""
    from serifu.inference.vocab import read_adapter_vocabulary, write_adapter_ids

    kept = [read_adapter_vocabulary(f) for f in folders]
    if kept and all(ids is not None for ids in kept):
        write_adapter_ids(out, (i for member in kept for i in member or ()))


def _keep_examples(folders: list[Path], out: Path) -> None:
    """Her training exchanges, as the members keep them (``serifu.retrieval.examples``)."""
    from serifu.retrieval.examples import read_adapter_examples, write_adapter_examples

    pairs = [p for folder in folders for p in read_adapter_examples(folder)]
    if pairs:
        write_adapter_examples(out, pairs)
