"""The real ``openai`` client against a live server: chat and completions, stream or not."""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")

HELLO = [{"role": "user", "content": "こんにちは、今日は何するの？"}]


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_heroines_and_the_base(client) -> None:
    assert [m.id for m in client.models.list()] == ["akane", "rei", "tiny-gemma"]


def test_chat_reply_uses_her_prompt_and_counts_usage(client, live) -> None:
    r = client.chat.completions.create(model="akane", messages=HELLO, max_tokens=12, temperature=0)
    [choice] = r.choices
    assert r.object == "chat.completion" and r.model == "akane"
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert "\n" not in choice.message.content
    bot = live.heroines["akane"].bot
    assert r.usage.prompt_tokens == len(bot.encode_prompt(HELLO[0]["content"]))
    assert 1 <= r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_system_message_and_history_go_into_the_prompt(client, live) -> None:
    messages = [
        {"role": "system", "content": "短く答えて。"},
        {"role": "user", "content": "やあ"},
        {"role": "assistant", "content": "おはよう"},
        {"role": "user", "content": "元気？"},
    ]
    r = client.chat.completions.create(model="rei", messages=messages, max_tokens=4, temperature=0)
    bot = live.heroines["rei"].bot
    expected = bot.encode_prompt("元気？", [("やあ", "おはよう")], extra_system="短く答えて。")
    assert r.usage.prompt_tokens == len(expected)


def test_streamed_chat_equals_the_whole_reply(client) -> None:
    kwargs = dict(model="akane", messages=HELLO, max_tokens=16, temperature=0)
    whole = client.chat.completions.create(**kwargs).choices[0]
    chunks = list(
        client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.message.content
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == [whole.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1


def test_stop_strings_cut_the_reply(client) -> None:
    kwargs = dict(model="akane", messages=HELLO, max_tokens=24, temperature=0)
    full = client.chat.completions.create(**kwargs).choices[0].message.content
    assert len(full) >= 4, full
    stop = full[2:4]
    cut = client.chat.completions.create(**kwargs, stop=[stop, "never-there"]).choices[0]
    assert cut.message.content == full[: full.find(stop)] and cut.finish_reason == "stop"
    streamed = client.chat.completions.create(**kwargs, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == cut.message.content


def test_n_choices_and_seed_reproducibility(client) -> None:
    kwargs = dict(model="rei", messages=HELLO, max_tokens=12, temperature=1.0, n=3)
    a = client.chat.completions.create(**kwargs, seed=7)
    b = client.chat.completions.create(**kwargs, seed=7)
    c = client.chat.completions.create(**kwargs, seed=8)
    assert [ch.index for ch in a.choices] == [0, 1, 2]
    texts = [ch.message.content for ch in a.choices]
    assert texts == [ch.message.content for ch in b.choices]
    assert texts != [ch.message.content for ch in c.choices]
    assert len(set(texts)) > 1  # n samples, not one reply three times


def test_completions_raw_prompt(client) -> None:
    prompt = "<start_of_turn>user\nこんにちは<end_of_turn>\n<start_of_turn>model\n"
    r = client.completions.create(model="akane", prompt=prompt, max_tokens=10, temperature=0)
    [choice] = r.choices
    assert r.object == "text_completion" and choice.finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 10
    streamed = client.completions.create(
        model="akane", prompt=prompt, max_tokens=10, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == choice.text
    echoed = client.completions.create(
        model="akane", prompt=prompt, max_tokens=10, temperature=0, echo=True
    )
    assert echoed.choices[0].text == prompt + choice.text


def test_completions_batch_of_prompts_with_stop_and_seed(client) -> None:
    kwargs = dict(
        model="tiny-gemma", prompt=["昔々", "ある日"], max_tokens=8, n=2, seed=3, temperature=0.8
    )
    r = client.completions.create(**kwargs)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    again = client.completions.create(**kwargs)
    assert [c.text for c in r.choices] == [c.text for c in again.choices]
    first = r.choices[0].text
    assert len(first) >= 3, first
    stop = first[1:3]
    cut = client.completions.create(**kwargs, stop=stop)
    assert cut.choices[0].text == first[: first.find(stop)]


def test_bad_requests_raise_openai_errors(client) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="nobody", messages=HELLO)
    with pytest.raises(openai.BadRequestError, match="over this server's limit"):
        client.chat.completions.create(model="akane", messages=HELLO, max_tokens=10_000)


def test_no_repeat_ngram_size_stops_loops(client, live) -> None:
    """SillyTavern's ``no_repeat_ngram_size`` (text-generation-webui's name) as an extra field."""
    prompt = "<start_of_turn>user\nこんにちは<end_of_turn>\n<start_of_turn>model\n"
    kwargs = dict(model="akane", prompt=prompt, max_tokens=40, temperature=0)
    loop = client.completions.create(**kwargs).choices[0].text
    free = client.completions.create(**kwargs, extra_body={"no_repeat_ngram_size": 2})
    tok = live.heroines["akane"].bot.tokenizer

    def repeats(text: str) -> int:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        pairs = list(zip(ids, ids[1:], strict=False))
        return len(pairs) - len(set(pairs))

    assert repeats(loop) > 0 and repeats(free.choices[0].text) == 0
    off = client.completions.create(**kwargs, extra_body={"no_repeat_ngram_size": 0})
    assert off.choices[0].text == loop
