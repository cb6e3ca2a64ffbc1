"""A third-party base model: ``example-tiny-llama``, described with :class:`serifu.modeling.ModelSpec`.

A real model names its weights with ``hub_id="owner/name"`` and no ``prepare``. This one
is made here instead (so the example runs offline): a byte-level BPE tokenizer trained on
the plugin's own texts and a seeded random-init Llama, saved once in Serifu's cache.
Serifu then loads it (4-bit or full precision), tunes it with LoRA and chats with it
like any other base model.
"""

from __future__ import annotations

from pathlib import Path

from serifu.modeling import ModelSpec

MODEL_ID = "example-tiny-llama"
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
VOCAB = 384
CONFIG = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
    "vocab_size": VOCAB,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


def _texts() -> list[str]:
    mio = Path(__file__).parent / "mio"
    return [(mio / name).read_text(encoding="utf-8") for name in ("card.toml", "chat.log")]


def _save_tokenizer(folder: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    from serifu.modeling.tokenizer import byte_level_bpe

    PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(_texts(), VOCAB, SPECIALS),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    ).save_pretrained(folder)


def prepare() -> str:
    """The weights folder, made on first use (atomically: an interrupted build leaves nothing)."""
    from serifu.fsutil import atomic_output_dir
    from serifu.paths import cache_dir

    folder = cache_dir() / "models" / MODEL_ID
    if (folder / "model.safetensors").is_file():
        return str(folder)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with atomic_output_dir(folder) as tmp:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            LlamaForCausalLM(LlamaConfig(**CONFIG)).save_pretrained(tmp)
        _save_tokenizer(tmp)
    return str(folder)


EXAMPLE_TINY_LLAMA = ModelSpec(
    id=MODEL_ID,
    description="example plugin: a tiny random-init Llama made locally; template 'line'",
    template="line",  # a built-in template id (`serifu plugins` lists them)
    lora_targets=("q_proj", "v_proj"),
    model_type="llama",
    config=CONFIG,
    prepare=prepare,  # a real model: hub_id="owner/name" instead
    generation={"do_sample": False},
)
