"""Incremental detokenization (:mod:`serifu.inference.detokenize`) gives exactly the full
decode of every prefix of a growing reply: byte-level BPE (the tiny models' tokenizer) and
a SentencePiece-style tokenizer with byte-fallback pieces and a stripped leading space, on
Japanese text and on random ids (stray UTF-8 bytes, unfinished characters)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from serifu.inference.detokenize import EVERY, Detokenizer

JAPANESE = "今日の放課後は何をするつもりなの？🍣 ねえ、一緒に帰ろうよ。えへへ……\n明日も晴れるかな"


def _byte_fallback_tokenizer() -> Any:
    """A Llama-style tokenizer: a few pieces, all 256 ``<0xNN>`` byte pieces, decoder
    Replace(▁) + ByteFallback + Fuse + Strip(one leading space)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    pieces += ["▁", "今日", "の", "▁ねえ", "、", "一緒", "に", "▁ok", "ok", "▁", "。"]
    vocab = {p: i for i, p in enumerate(dict.fromkeys(pieces))}
    model = models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True)
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False)


@pytest.fixture(scope="module", params=["byte-level", "byte-fallback"])
def tokenizer(request: pytest.FixtureRequest) -> Any:
    if request.param == "byte-fallback":
        return _byte_fallback_tokenizer()
    from serifu_models.tiny import tiny_tokenizer

    return tiny_tokenizer()


def _check(tokenizer: Any, ids: list[int]) -> int:
    """Feed ``ids`` one token at a time; every prefix's text equals the full decode.
    Returns how many steps decoded only a window."""
    detok = Detokenizer(tokenizer)
    text = detok.text()
    for n in range(1, len(ids) + 1):
        want = tokenizer.decode(ids[:n], skip_special_tokens=False)
        assert text(ids[:n]) == want, (n, ids[:n])
    return text.p


def test_japanese_replies_decode_exactly_and_incrementally(tokenizer: Any) -> None:
    ids = tokenizer(JAPANESE * 3, add_special_tokens=False)["input_ids"]
    assert len(ids) > 3 * EVERY
    if "<0xE3>" in tokenizer.get_vocab():  # the text does go through byte pieces
        assert any(Detokenizer(tokenizer).byte_piece(i) for i in ids)
    assert Detokenizer(tokenizer).incremental
    assert _check(tokenizer, ids) > 0  # a checkpoint was taken: windows were decoded


def test_random_ids_with_stray_bytes_decode_exactly(tokenizer: Any) -> None:
    rng = random.Random(7)
    vocab = len(tokenizer)
    byte_ids = [i for t, i in tokenizer.get_vocab().items() if t.startswith("<0x")]
    for _ in range(30):
        ids = []
        for _ in range(60):  # runs of byte pieces (half-finished characters) between pieces
            pool = byte_ids if byte_ids and rng.random() < 0.5 else range(3, vocab)
            ids.append(rng.choice(list(pool)))
        _check(tokenizer, ids)


def test_a_row_that_is_not_the_same_row_is_decoded_again(tokenizer: Any) -> None:
    ids = tokenizer(JAPANESE * 2, add_special_tokens=False)["input_ids"]
    text = Detokenizer(tokenizer).text()
    for n in range(1, len(ids) + 1):
        text(ids[:n])
    other = list(reversed(ids))
    assert text(other) == tokenizer.decode(other, skip_special_tokens=False)
    assert text(ids[:3]) == tokenizer.decode(ids[:3], skip_special_tokens=False)
