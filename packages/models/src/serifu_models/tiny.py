"""Tiny random-init models of the four architectures, for tests and CPU demos.

They share one small byte-level BPE tokenizer (``data/tiny_tokenizer.json``, built by
:func:`build_tiny_tokenizer` from the sample cast's scripts and committed). Weights are
initialised from a fixed seed and saved under ``cache_dir()/models/<id>`` on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from serifu.modeling.spec import ModelSpec

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
TOKENIZER_VOCAB = 2000
MODEL_VOCAB = 2048  # tokenizer size rounded up to a multiple of 64
IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}


def tokenizer_file() -> Path:
    return Path(str(resources.files("serifu_models") / "data" / "tiny_tokenizer.json"))


def build_tiny_tokenizer(texts: Iterable[str], vocab_size: int = TOKENIZER_VOCAB) -> Any:
    """A deterministic byte-level BPE (``tokenizers``) that adds ``<s>`` in front."""
    from serifu.modeling.tokenizer import byte_level_bpe

    return byte_level_bpe(texts, vocab_size, SPECIAL_TOKENS)


def tiny_tokenizer() -> Any:
    """The tiny models' tokenizer (byte-level BPE with Gemma's turn tokens)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_file()),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )


def _write_tokenizer(folder: Path) -> None:
    tiny_tokenizer().save_pretrained(folder)


def _prepare(spec_id: str, model_type: str, config: Mapping[str, Any]) -> str:
    from serifu.paths import cache_dir

    folder = cache_dir() / "models" / spec_id
    if (folder / "model.safetensors").is_file():
        return str(folder)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from serifu.fsutil import atomic_output_dir

    with atomic_output_dir(folder) as tmp:
        cfg = AutoConfig.for_model(model_type, **dict(config))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        model.save_pretrained(tmp)
        _write_tokenizer(tmp)
    return str(folder)


def _tiny(
    spec_id: str,
    arch: str,
    template: str,
    targets: tuple[str, ...],
    model_type: str,
    config: dict[str, Any],
) -> ModelSpec:
    config = {**config, **IDS, "vocab_size": MODEL_VOCAB}
    return ModelSpec(
        id=spec_id,
        description=f"tiny random-init {arch} for tests and CPU demos; template '{template}'",
        template=template,
        lora_targets=targets,
        model_type=model_type,
        config=config,
        prepare=lambda: _prepare(spec_id, model_type, config),
    )


TINY_MODELS = (
    _tiny(
        "tiny-neox",
        "GPT-NeoX",
        "line",
        ("query_key_value",),
        "gpt_neox",
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 256,
            "max_position_embeddings": 1024,
            "tie_word_embeddings": True,
            "use_parallel_residual": False,
        },
    ),
    _tiny(
        "tiny-gptj",
        "GPT-J",
        "novel",
        ("q_proj", "v_proj"),
        "gptj",
        {"n_embd": 64, "n_layer": 2, "n_head": 4, "rotary_dim": 8, "n_positions": 1024},
    ),
    _tiny(
        "tiny-llama",
        "Llama",
        "llama2",
        ("q_proj", "v_proj"),
        "llama",
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 128,
            "max_position_embeddings": 1024,
        },
    ),
    _tiny(
        "tiny-gemma",
        "Gemma 3",
        "gemma",
        ("q_proj", "v_proj"),
        "gemma3_text",
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "intermediate_size": 128,
            "max_position_embeddings": 1024,
            "sliding_window": 16,
            "layer_types": ["sliding_attention", "full_attention"],
            "query_pre_attn_scalar": 32,
        },
    ),
)


def main() -> None:
    """Rebuild ``data/tiny_tokenizer.json`` from the sample cast's scripts (run by hand)."""
    from serifu import plugins

    texts = [
        p.read_text(encoding="utf-8")
        for reg in plugins.characters().values()
        for p in reg.item.scripts
        if p.is_file()
    ]
    texts += [
        reg.item.card_path.read_text(encoding="utf-8") for reg in plugins.characters().values()
    ]
    texts.append("ユーザー: システム: [INST] <<SYS>> <</SYS>> [/INST] 主人公「」\n")
    build_tiny_tokenizer(texts).save(str(tokenizer_file()))


if __name__ == "__main__":
    main()
