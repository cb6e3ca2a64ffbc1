"""The report's three Japanese LLMs, with their exact architectures (mission notes, table 2)."""

from __future__ import annotations

from serifu.modeling.spec import ModelSpec

LINE_3_6B = ModelSpec(
    id="line-3.6b",
    description="LINE japanese-large-lm 3.6B instruction SFT (GPT-NeoX); template 'line'",
    template="line",
    lora_targets=("query_key_value",),
    model_type="gpt_neox",
    hub_id="line-corporation/japanese-large-lm-3.6b-instruction-sft",
    config={
        "hidden_size": 3072,
        "num_hidden_layers": 30,
        "num_attention_heads": 32,
        "intermediate_size": 12288,
        "vocab_size": 51200,
        "max_position_embeddings": 2048,
        "hidden_act": "gelu",
        "rotary_pct": 1.0,
        "use_parallel_residual": False,
        "tie_word_embeddings": True,
        "pad_token_id": 2,
        "bos_token_id": 2,
        "eos_token_id": 2,
    },
    # sentencepiece T5Tokenizer: the fast conversion changes its output, so keep it slow.
    tokenizer_kwargs={"use_fast": False},
)

NOVEL_GPTJ_6B = ModelSpec(
    id="novel-gptj-6b",
    description="AIBunCho japanese-novel-gpt-j-6b (GPT-J, not instruction-tuned); template 'novel'",
    template="novel",
    lora_targets=("q_proj", "v_proj"),
    model_type="gptj",
    hub_id="AIBunCho/japanese-novel-gpt-j-6b",
    config={
        "n_embd": 4096,
        "n_layer": 28,
        "n_head": 16,
        "n_inner": 16384,
        "rotary_dim": 64,
        "vocab_size": 50400,  # the tokenizer has 32,003 tokens; the embedding is padded
        "n_positions": 2048,
        "tie_word_embeddings": False,
    },
    # AlbertTokenizer: keep accents; prompts are encoded without special tokens.
    tokenizer_kwargs={"keep_accents": True},
    add_special_tokens=False,
)

STABLELM_BETA_7B = ModelSpec(
    id="stablelm-beta-7b",
    description="Japanese StableLM Instruct Beta 7B (Llama-2); template 'llama2'",
    template="llama2",
    lora_targets=("q_proj", "v_proj"),
    model_type="llama",
    hub_id="stabilityai/japanese-stablelm-instruct-beta-7b",
    config={
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "intermediate_size": 11008,
        "vocab_size": 32000,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    },
)

REPORT_MODELS = (LINE_3_6B, NOVEL_GPTJ_6B, STABLELM_BETA_7B)
