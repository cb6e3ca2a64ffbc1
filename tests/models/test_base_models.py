"""Base-model plugins: registry, exact architectures, tiny tokenizer, resolving and offline errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu import plugins
from serifu.errors import SerifuError
from serifu.modeling import load_model, resolve_base

IDS = [
    "line-3.6b",
    "novel-gptj-6b",
    "stablelm-beta-7b",
    "gemma-3-270m",
    "tiny-neox",
    "tiny-gptj",
    "tiny-llama",
    "tiny-gemma",
]


def test_all_base_models_registered_with_templates() -> None:
    models = plugins.base_models()
    assert set(IDS) <= set(models)
    templates = plugins.prompt_templates()
    for model_id in IDS:
        assert models[model_id].item.template in templates


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        (
            "line-3.6b",
            {
                "model_type": "gpt_neox",
                "hidden_size": 3072,
                "num_hidden_layers": 30,
                "num_attention_heads": 32,
                "intermediate_size": 12288,
                "vocab_size": 51200,
                "tie_word_embeddings": True,
                "pad_token_id": 2,
                "bos_token_id": 2,
                "eos_token_id": 2,
            },
        ),
        (
            "novel-gptj-6b",
            {
                "model_type": "gptj",
                "n_embd": 4096,
                "n_layer": 28,
                "n_head": 16,
                "n_inner": 16384,
                "rotary_dim": 64,
                "vocab_size": 50400,
            },
        ),
        (
            "stablelm-beta-7b",
            {
                "model_type": "llama",
                "hidden_size": 4096,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "intermediate_size": 11008,
                "vocab_size": 32000,
                "bos_token_id": 1,
                "eos_token_id": 2,
                "pad_token_id": 0,
            },
        ),
        (
            "gemma-3-270m",
            {
                "model_type": "gemma3_text",
                "hidden_size": 640,
                "num_hidden_layers": 18,
                "vocab_size": 262144,
            },
        ),
    ],
)
def test_report_architectures_are_exact(model_id: str, expected: dict[str, object]) -> None:
    cfg = plugins.get_base_model(model_id).build_config()
    for key, value in expected.items():
        assert getattr(cfg, key) == value, key


def test_report_model_lora_targets_and_quirks() -> None:
    assert plugins.get_base_model("line-3.6b").lora_targets == ("query_key_value",)
    assert plugins.get_base_model("line-3.6b").tokenizer_kwargs == {"use_fast": False}
    gptj = plugins.get_base_model("novel-gptj-6b")
    assert gptj.lora_targets == ("q_proj", "v_proj") and gptj.add_special_tokens is False
    assert plugins.get_base_model("stablelm-beta-7b").template == "llama2"


def test_tiny_tokenizer_is_deterministic_and_round_trips() -> None:
    from serifu_models.tiny import build_tiny_tokenizer

    texts = ["【茜】「ほんまに？めっちゃええやん！」", "【主人公】「今日は何するの？」\n"] * 20
    a, b = build_tiny_tokenizer(texts, vocab_size=400), build_tiny_tokenizer(texts, vocab_size=400)
    assert a.to_str() == b.to_str()
    text = "ユーザー: 今日は何してたの？\nシステム: ほんまに…めっちゃ楽しかったで！"
    ids = a.encode(text).ids
    assert ids[0] == 1 and a.decode(ids) == text


def _stale_online_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub imported while HF_HUB_OFFLINE was unset, as in a long-lived process."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _loader_never_entered(source: str, model_id: str) -> list[bool]:
    """Run :func:`hub_errors` around a body that records being entered (the slow loader)."""
    from serifu.modeling.hub import hub_errors

    entered: list[bool] = []
    with pytest.raises(SerifuError), hub_errors(source, model_id):
        entered.append(True)
    return entered


def test_hub_model_offline_gives_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _stale_online_hub(monkeypatch)  # HF_HUB_OFFLINE=1 (conftest) must be read at load time
    base = resolve_base("stablelm-beta-7b")
    with pytest.raises(SerifuError) as info:
        load_model(base, quantize=False, device="cpu")
    message = str(info.value)
    assert "stabilityai/japanese-stablelm-instruct-beta-7b" in message and "--model DIR" in message
    assert "\n" not in message
    # no hub retries: the error comes before transformers' loader (which retries) starts
    assert _loader_never_entered(base.source(), base.id) == []


def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    _stale_online_hub(monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    base = resolve_base("line-3.6b")
    with pytest.raises(SerifuError) as info:
        load_model(base, quantize=False, device="cpu")
    assert "line-corporation/japanese-large-lm-3.6b-instruction-sft" in str(info.value)
    assert "hub cannot be reached" in str(info.value)
    assert _loader_never_entered(base.source(), base.id) == []


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ("GatedRepoError", "gated repository"),
        ("RepositoryNotFoundError", "check the spelling"),
        ("LocalEntryNotFoundError", "hub cannot be reached"),
    ],
)
def test_hub_errors_tell_gated_and_misspelled_from_offline(error: str, says: str) -> None:
    import httpx
    from huggingface_hub import errors

    from serifu.modeling.hub import hub_message

    request = httpx.Request("GET", "https://huggingface.co/owner/name/resolve/main/config.json")
    cls = getattr(errors, error)
    if issubclass(cls, errors.HfHubHTTPError):
        cause = cls("hub said no", response=httpx.Response(401, request=request))
    else:
        cause = cls("not in the cache")
    try:  # as transformers raises it: an OSError whose cause is the hub's error
        raise OSError("wrapped by transformers") from cause
    except OSError as exc:
        message = hub_message(exc, "owner/name", "owner/name")
    assert says in message and "owner/name" in message
    others = {"gated repository", "check the spelling", "hub cannot be reached"} - {says}
    assert not any(o in message for o in others)


def test_resolve_local_folder_and_unknown(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gptj"}), encoding="utf-8")
    base = resolve_base(str(tmp_path))
    assert base.template == "novel" and base.lora_targets == ("q_proj", "v_proj")
    with pytest.raises(SerifuError, match="unknown model"):
        resolve_base("no-such-model")
