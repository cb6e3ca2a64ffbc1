"""An adapter keeps her lines' tokens (``vocabulary.json``), so a character trained from any
play's speaker — no character pack — keeps her output vocabulary in chat, the server and
evaluation; before, such replies were unmasked (junk like ``mendatanguser`` in one of
four replies of an adapter for 修禅寺物語's かつら)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu.config.train import TrainConfig
from serifu.inference import load_chatbot
from serifu.inference.vocab import ADAPTER_FILE, her_token_ids, read_adapter_vocabulary
from serifu.retrieval.examples import HEADER, read_adapter_examples
from serifu.training.trainer import train


def _rows() -> list[dict[str, object]]:
    lines = ["まあ、ようこそおいでなされました。", "わたくしは面を打つ家の娘でござります。"]
    return [
        {"context": [], "query": f"問{i}", "query_speaker": "客", "reply": lines[i % 2] + "OK",
         "character": "かつら", "scene": "p#1"}
        for i in range(16)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def script_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny adapter trained on a dataset of a script's speaker (no character id)."""
    from datasets import Dataset, DatasetDict

    root = tmp_path_factory.mktemp("script-adapter")
    data = root / "data"
    rows = _rows()
    DatasetDict(
        {"train": Dataset.from_list(rows[2:]), "validation": Dataset.from_list(rows[:2])}
    ).save_to_disk(str(data))
    build = {"format": "dialogue", "character": "かつら", "character_id": None, "options": {}}
    (data / "build.json").write_text(json.dumps(build, ensure_ascii=False), encoding="utf-8")
    out = root / "adapter"
    config = TrainConfig(max_steps=1, batch_size=4, save_steps=0, eval=False)
    train("tiny-gptj", data, out, config, device="cpu", progress=False)
    return out


def test_training_keeps_her_tokens_next_to_the_adapter(script_adapter: Path) -> None:
    from serifu.modeling import load_tokenizer, resolve_base

    ids = read_adapter_vocabulary(script_adapter)
    tok = load_tokenizer(resolve_base("tiny-gptj"))
    assert ids == her_token_ids(tok, [str(r["reply"]) for r in _rows()])
    ok = tok("OK", add_special_tokens=False)["input_ids"]
    assert ok and set(ok) <= set(ids)


def test_training_keeps_her_training_exchanges_for_examples(script_adapter: Path) -> None:
    """Her training split's pairs (never the held-out ones) go next to the adapter, so
    ``examples`` can show a character without a pack her own exchanges."""
    rows = _rows()
    kept = read_adapter_examples(script_adapter)
    assert kept == [(str(r["query"]), str(r["reply"])) for r in rows[2:]]
    bot = load_chatbot(adapter=script_adapter, device="cpu", examples=2)
    shown = bot._system_for("問5", None) or ""
    assert shown.startswith(HEADER.format(name="かつら"))
    assert "客「問5」" not in shown and "主人公「問5」" in shown  # the closest exchange first
    assert "「問0」" not in shown and "「問1」" not in shown  # held-out rows are never shown
    assert load_chatbot(adapter=script_adapter, device="cpu").examples is None  # off by default


def test_an_adapter_without_a_pack_brings_her_vocabulary(script_adapter: Path) -> None:
    bot = load_chatbot(adapter=script_adapter, device="cpu")
    assert bot.card is None and bot.rules.vocab is not None
    vocab = set(bot.rules.vocab.ids)
    assert set(read_adapter_vocabulary(script_adapter) or ()) <= vocab
    latin = [
        i
        for p, i in bot.tokenizer.get_vocab().items()
        if p.strip("Ġ▁").isascii() and p.strip("Ġ▁").isalpha() and len(p.strip("Ġ▁")) >= 4
    ]
    assert latin and not vocab & set(latin)  # Latin words she never says stay out
    off = load_chatbot(adapter=script_adapter, device="cpu", vocabulary="off")
    assert off.rules.vocab is None


def test_a_scripts_speaker_lines_bring_her_vocabulary() -> None:
    bot = load_chatbot(model="tiny-gptj", device="cpu", lines=["Romeo、おお Romeo。"])
    assert bot.rules.vocab is not None
    romeo = bot.tokenizer("Romeo", add_special_tokens=False)["input_ids"]
    assert set(romeo) <= set(bot.rules.vocab.ids)
    assert load_chatbot(model="tiny-gptj", device="cpu").rules.vocab is None  # nothing known


@pytest.mark.parametrize("content", ["{not json", '{"ids": "abc"}', '["no", "ids"]'])
def test_a_damaged_vocabulary_file_is_ignored(tmp_path: Path, content: str) -> None:
    (tmp_path / ADAPTER_FILE).write_text(content, encoding="utf-8")
    assert read_adapter_vocabulary(tmp_path) is None
    assert read_adapter_vocabulary(None) is None
    (tmp_path / ADAPTER_FILE).write_text(json.dumps({"ids": [3, 1]}), encoding="utf-8")
    assert read_adapter_vocabulary(tmp_path) == [3, 1]


def test_an_adapter_without_a_pack_answers_under_the_name_she_was_trained_as(
    script_adapter: Path,
) -> None:
    """Prompts that name her (the novel template: 主人公「…」 then かつら「) match her
    training prompts; before, they said 「キャラクター」 to a model trained on 「かつら」."""
    bot = load_chatbot(adapter=script_adapter, device="cpu")
    assert bot.character_name == "かつら"
    if bot.template.id == "novel":
        assert bot.template.render("やあ", character=bot.character_name).endswith("かつら「")


def test_serve_takes_an_adapter_without_a_pack_as_a_heroine_of_its_own(
    script_adapter: Path,
) -> None:
    """`serifu serve --adapter DIR` with no --character: OpenAI clients reach her by the
    folder's name, on the adapter's own base, with her name and output vocabulary."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from serifu.serving.app import create_app
    from serifu.serving.engine import Engine
    from serifu.serving.heroines import load_heroines

    heroines = load_heroines([], adapter=script_adapter, device="cpu")
    assert set(heroines) == {"adapter", "tiny-gptj"}  # her folder's name, and the bare base
    her = heroines["adapter"].bot
    assert her.card is None and her.system is None and her.character_name == "かつら"
    assert her.rules.vocab is not None
    assert set(read_adapter_vocabulary(script_adapter) or ()) <= set(her.rules.vocab.ids)
    body = {
        "model": "adapter",
        "messages": [{"role": "user", "content": "やあ"}],
        "max_tokens": 4,
        "temperature": 0,
    }
    with TestClient(create_app(Engine(heroines))) as client:
        models = [m["id"] for m in client.get("/v1/models").json()["data"]]
        reply = client.post("/v1/chat/completions", json=body)
    assert "adapter" in models
    assert reply.status_code == 200 and isinstance(
        reply.json()["choices"][0]["message"]["content"], str
    )
