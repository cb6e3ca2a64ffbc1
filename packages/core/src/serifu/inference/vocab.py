"""Which tokens a reply may contain.

Two layers, both applied at every decoding step (``serifu.inference.decoding``):

- :func:`banned_ids` — special, control and unused tokens (``<unused4191>``, ``<pad>``,
  ``<start_of_image>`` …) are never emitted; the stop tokens (EOS, ``<end_of_turn>``) stay.
- :func:`output_vocabulary` — an optional per-character whitelist: tokens whose text is
  Japanese (kana, kanji of JIS X 0208 — what ``cp932`` encodes, which leaves out Chinese-only
  hanzi), Japanese/ASCII punctuation (at most one ASCII symbol per token: ``'","'`` is code)
  and digits, plus every token her own lines and card use.
  Latin words, Cyrillic, Hangul … then cannot appear unless she says them herself.

The whitelist is also a CPU speed lever: the output head can be computed for those rows
only (``OutputVocabulary.head``), a fraction of Gemma's 262k × 640.

Her lines come from her character pack's scripts, from a script's speaker (``serifu eval
--script``), or from the adapter itself: training writes the tokens of her training and
validation lines next to it (:data:`ADAPTER_FILE`), so an adapter trained on any play's
speaker keeps her whitelist in chat, the server and evaluation without her pack.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_UNUSED = re.compile(r"^<(unused|extra_id_|reserved)[_\d]*\d*>$|^\[unused\d+\]$|^<\|.*\|>$")
_BYTE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
_CONTROL_LOOKING = re.compile(r"^<[^<>\s]{2,40}>$|^\[[A-Z_]{2,20}\]$")
_SPACE_MARKERS = ("▁", "Ġ", "Ċ")

_JA_PUNCT = set(
    "、。，．・：；？！゛゜´｀¨＾￣＿ヽヾゝゞ〃仝々〆〇ー―‐／＼～∥｜…‥‘’“”（）〔〕［］｛｝〈〉《》「」『』【】＋－±×÷＝≠＜＞≦≧∞∴♂♀°′″℃￥＄％＃＆＊＠§☆★○●◎◇◆□■△▲▽▼※〒→←↑↓〓♪〜"
)
_ASCII_PUNCT = set("!?.,~-:;()'\"/%&+*=#@")
_FOREIGN_BLOCKS = ("CYRILLIC", "GREEK", "HANGUL", "ARABIC", "HEBREW", "THAI", "DEVANAGARI")


def is_japanese_char(ch: str) -> bool:
    """Kana, JIS kanji, Japanese/ASCII punctuation, digits — what a Japanese line is made of."""
    if ch.isdigit() and ch.isascii():
        return True
    if "０" <= ch <= "９" or ch in _JA_PUNCT or ch in _ASCII_PUNCT:
        return True
    if "\u3040" <= ch <= "\u30ff" or "\uff66" <= ch <= "\uff9f":  # kana, half-width kana
        return True
    if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf":  # CJK ideographs
        try:
            ch.encode("cp932")  # JIS X 0208 (+ vendor extensions): Japanese kanji, no hanzi-only
        except UnicodeEncodeError:
            return False
        return True
    return False


def _code_like(text: str) -> bool:
    """Two or more ASCII symbols in one token (``'","'``, ``'++++'``, ``')));'``): pieces of
    code, the junk an over-trained adapter writes (1,584 of Gemma's tokens); her own lines'
    tokens stay allowed whatever they hold."""
    return sum(ch in _ASCII_PUNCT for ch in text) >= 2


def is_foreign_char(ch: str) -> bool:
    """Characters that never belong in a Japanese heroine's line (for the ``clean`` metric)."""
    if "\u4e00" <= ch <= "\u9fff" and not is_japanese_char(ch):
        return True  # a Chinese-only hanzi
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return unicodedata.category(ch) in {"Co", "Cn", "Cs"}
    return any(name.startswith(block) for block in _FOREIGN_BLOCKS)


def token_text(piece: str) -> str:
    """A vocabulary piece as text (sentencepiece / byte-level space markers removed)."""
    for marker in _SPACE_MARKERS:
        piece = piece.replace(marker, "")
    return piece


def banned_ids(tokenizer: Any, keep: Iterable[int] = ()) -> list[int]:
    """Special, added control and unused tokens, minus ``keep`` (the stop tokens)."""
    keep = set(keep)
    banned: set[int] = set(int(i) for i in tokenizer.all_special_ids)
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    for token_id, token in added.items():
        content = getattr(token, "content", str(token))
        if getattr(token, "special", False) or _CONTROL_LOOKING.match(content):
            banned.add(int(token_id))
    vocab = tokenizer.get_vocab()
    for piece, token_id in vocab.items():
        if _UNUSED.match(piece) or (_CONTROL_LOOKING.match(piece) and not _BYTE.match(piece)):
            banned.add(int(token_id))
    return sorted(banned - keep)


@dataclass
class OutputVocabulary:
    """Token ids a character's reply may use (sorted), and their rows of the output head."""

    ids: list[int]
    _head: Any = None
    _head_of: Any = None  # a weak reference to the weight ``_head`` was taken from
    _index: Any = None

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, device: Any) -> Any:
        import torch

        if self._index is None or self._index.device != torch.device(device):
            self._index = torch.tensor(self.ids, dtype=torch.long, device=device)
        return self._index

    def head(self, lm: Any) -> Any | None:
        """The output head's rows for these tokens (a [K, hidden] tensor), or None when the
        head is not a plain weight matrix (then the full head runs and is masked). Taken once
        per weight: another model (or a re-created one) gets its own rows."""
        import weakref

        out = lm.get_output_embeddings()
        weight = getattr(out, "weight", None)
        embed = lm.get_input_embeddings()
        if weight is None and getattr(embed, "serves_head", False):  # one int8 table
            source, dtype, take = embed.codes, embed.dtype, embed.rows  # accel.int8_table
        elif (
            weight is not None
            and type(weight).__name__ == "Parameter"
            and weight.dim() == 2
            and getattr(out, "bias", None) is None
        ):
            source, dtype, take = weight, weight.dtype, lambda idx: weight.detach()[idx]
        else:
            return None
        stale = self._head is None or self._head_of is None or self._head_of() is not source
        if stale or (self._head.device, self._head.dtype) != (source.device, dtype):
            self._head = take(self.index(source.device)).contiguous()
            self._head_of = weakref.ref(source)
        return self._head


def output_vocabulary(
    tokenizer: Any, texts: Iterable[str], keep: Iterable[int], her_ids: Iterable[int] = ()
) -> OutputVocabulary:
    """Japanese-text tokens + every token of ``texts`` (her lines, her card) and ``her_ids``
    (her lines' tokens, as an adapter keeps them) + ``keep``.

    Newline stays allowed (it ends a reply for line-based templates). Byte-fallback pieces
    are left out (they build the mojibake seen in tuned replies) unless ``texts`` use them.
    """
    allowed: set[int] = set(int(i) for i in keep)
    vocab = tokenizer.get_vocab()
    specials = set(banned_ids(tokenizer))
    for piece, token_id in vocab.items():
        if token_id in specials or _BYTE.match(piece):
            continue
        text = token_text(piece)
        if text and all(is_japanese_char(ch) for ch in text) and not _code_like(text):
            allowed.add(int(token_id))
    allowed.update(_text_ids(tokenizer, texts, specials))
    size = len(vocab)
    allowed.update(int(i) for i in her_ids if 0 <= int(i) < size and int(i) not in specials)
    for nl in tokenizer("\n", add_special_tokens=False)["input_ids"]:
        allowed.add(int(nl))
    return OutputVocabulary(sorted(allowed))


ADAPTER_FILE = "vocabulary.json"
"""Her lines' token ids, written next to an adapter by training."""


def _text_ids(tokenizer: Any, texts: Iterable[str], specials: set[int]) -> set[int]:
    """The distinct token ids of ``texts``, ``specials`` left out."""
    ids: set[int] = set()
    for text in texts:
        ids.update(int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"])
    return ids - specials


def her_token_ids(tokenizer: Any, texts: Iterable[str]) -> list[int]:
    """The distinct token ids of ``texts`` (special tokens left out)."""
    return sorted(_text_ids(tokenizer, texts, set(banned_ids(tokenizer))))


def write_adapter_vocabulary(folder: Path, tokenizer: Any, texts: Iterable[str]) -> None:
    """Keep her lines' tokens next to an adapter (:data:`ADAPTER_FILE`)."""
    write_adapter_ids(folder, her_token_ids(tokenizer, texts))


def write_adapter_ids(folder: Path, ids: Iterable[int]) -> None:
    record = {"what": "token ids of her training and validation lines", "ids": sorted(set(ids))}
    (Path(folder) / ADAPTER_FILE).write_text(json.dumps(record), encoding="utf-8")


def read_adapter_vocabulary(folder: Path | None) -> list[int] | None:
    """Her token ids kept with an adapter; None when it has none (or an unreadable one:
    replies then go without her whitelist, as for adapters trained before it existed)."""
    path = Path(folder) / ADAPTER_FILE if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        ids = json.loads(path.read_text(encoding="utf-8"))["ids"]
        return [int(i) for i in ids]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
