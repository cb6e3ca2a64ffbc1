"""Fragments: pieces of sentences that no Japanese speaker writes, in clean-looking replies.

An undertrained model, or one forced off its junk by her output vocabulary, often finishes a
sentence and then goes on with a broken piece of web text: 「夕焼けがきれいだね。事に」,
「…よく来るの？で購入者」, 「…勉強してないんだ。にあった」. These replies are clean, Japanese and
one line, so the ``format`` checks pass them. Four rules, the first three read off UniDic's
tags (fugashi + unidic-lite):

- ``starts-with-particle``: a sentence that begins with a case particle (に, を, の, が) that is
  not set off by a comma, or with a bare で glued to a noun (「で購入」);
- ``impossible-kana``: a small ゃ/ゅ/ょ after a hiragana outside the i-row (「なおょうり」);
- ``dangling-tail``: in a reply that stopped by itself, a last sentence after a finished one
  that has no end punctuation and is one or two nouns, maybe followed by a case particle, or
  a lone conjunction (「…持ってる？審査」, 「…きれいだね。事に」, 「…あるの？ちなみに」). A tail
  after an ellipsis is an afterthought (「……お茶を入れてきた。……ほうじ茶」), one after a short
  question is her answer to it (「好きな食べ物？わらび餅」): neither counts;
- ``loop``: a piece of up to :data:`LOOP_UNIT` characters said four or more times in a row, at least
  :data:`LOOP_CHARS` characters in all (「媾合したくないよ。媾合したくないよ。…」,
  「行ったことがある？行ったことがある？…」); one character must run to
  :data:`LOOP_CHARS_ONE` (laughter, 「あははははははは」, is speech).

Real lines score 0–0.6 % on these rules (each sample-cast heroine's), 0–3.2 % (each
shared Aozora play's; a drill's 「一、二、一、二…」 loops); ``bench/reply_rates.py``. The
report gives her real lines' rate next to the replies' as ``reference_rate``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from serifu.evaluation.morph import Morpheme, morphemes

KINDS = ("starts-with-particle", "impossible-kana", "dangling-tail", "loop")

_CLOSERS = "」』）)\\]］】〉》"
_SENTENCE_END = re.compile(
    rf"(?:(?<=[。！？!?…‥])|(?<=[。！？!?…‥][{_CLOSERS}]))(?![。！？!?…‥{_CLOSERS}])"
)
_CLOSED = re.compile(r"[。！？!?…‥」』）)\]］】〉》ー〜～っッ、,]$")
_JAPANESE = re.compile(r"[\u3041-\u30ff\u4e00-\u9fff]")
_OPENING_PARTICLES = frozenset({"に", "を", "の", "が"})
_SET_OFF = frozenset("、,，…‥。！？!? ")
_I_ROW = frozenset("きしちにひみりぎじぢびぴ")
_SKIPPED_POS = frozenset({"補助記号", "空白"})
LOOP_UNIT = 12
"""Longest piece a loop repeats."""
LOOP_CHARS = 8
LOOP_CHARS_ONE = 12
_LOOP = re.compile(rf"(.{{1,{LOOP_UNIT}}}?)\1{{3,}}", re.DOTALL)
_PAUSES = "…‥・ー〜～-—.。、，,"
SHORT_QUESTION = 8
"""A question this short before a bare noun is hers repeated back (「趣味？読書」), not a fragment."""


@dataclass(frozen=True)
class Fragment:
    kind: str
    text: str


def sentences(text: str) -> list[str]:
    """``text`` cut after 。！？… (closing quotes and brackets stay with their sentence)."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _words(sentence: str) -> list[Morpheme]:
    return [m for m in morphemes(sentence) if m.pos1 not in _SKIPPED_POS]


def _starts_with_particle(sentence: str, words: Sequence[Morpheme]) -> bool:
    if not words:
        return False
    first = words[0]
    after = sentence.lstrip()[len(first.surface) :][:1]
    if after in _SET_OFF or not after:
        return False
    if first.pos2 == "格助詞" and first.surface in _OPENING_PARTICLES:
        return True
    # colloquial で ("so") takes a comma or a clause, never a bare noun: 「で購入」
    return first.surface == "で" and len(words) > 1 and words[1].pos1 == "名詞"


def _is_dangling(tail: str, words: Sequence[Morpheme]) -> bool:
    if _CLOSED.search(tail.strip()) or not _JAPANESE.search(tail) or not words:
        return False
    if len(words) == 1 and words[0].pos1 == "接続詞":
        return True
    core = words[:-1] if words[-1].pos2 == "格助詞" else words
    return 0 < len(core) <= 2 and all(w.pos1 in ("名詞", "代名詞", "接尾辞") for w in core)


def _answers_own_question(before: str) -> bool:
    """「好きな食べ物？わらび餅」: a short question repeated back, then the answer."""
    return before.rstrip().endswith(("？", "?")) and len(before.strip()) <= SHORT_QUESTION


def impossible_kana(text: str) -> list[str]:
    """Small ゃ/ゅ/ょ after a hiragana that cannot take one (「おょ」)."""
    return [
        a + b
        for a, b in zip(text, text[1:], strict=False)
        if b in "ゃゅょ" and "\u3041" <= a <= "\u3096" and a not in _I_ROW
    ]


def loops(text: str) -> list[str]:
    """Pieces said four or more times in a row (spaces left out), long enough to be no speech."""
    flat = re.sub(r"\s", "", text)
    return [
        m.group(0)
        for m in _LOOP.finditer(flat)
        if len(m.group(0)) >= (LOOP_CHARS_ONE if len(m.group(1)) == 1 else LOOP_CHARS)
        and m.group(1).strip(_PAUSES)  # 「…………」 is a pause
    ]


@lru_cache(maxsize=1)
def can_tag() -> bool:
    """Whether the Japanese analyser (fugashi + unidic-lite) is here; the GPU bench image
    lacks it, and the reranker then keeps to the rules that need no tags."""
    from serifu.data.tagging import tagger

    try:
        tagger()
    except (ImportError, RuntimeError):
        return False
    return True


def fragments(text: str, *, stopped: bool = True, tags: bool = True) -> list[Fragment]:
    """The fragments of one reply (empty: none). ``stopped``: the reply ended by itself, so
    its last sentence is meant to be complete (a reply cut at the token limit is not).
    ``tags=False``: only the rules that need no analyser (impossible kana, loops)."""
    parts = sentences(text)
    tagged = [(s, _words(s)) for s in parts] if tags else []
    found = [Fragment("starts-with-particle", s) for s, w in tagged if _starts_with_particle(s, w)]
    found += [Fragment("impossible-kana", k) for k in impossible_kana(text)]
    found += [Fragment("loop", k) for k in loops(text)]
    if tags and stopped and len(parts) > 1 and not parts[-2].rstrip().endswith(("…", "‥")):
        tail, words = tagged[-1]
        if _is_dangling(tail, words) and not _answers_own_question(parts[-2]):
            found.append(Fragment("dangling-tail", tail))
    return found


def fragment_rate(texts: Sequence[str], stopped: Sequence[bool] | None = None) -> float:
    """Share of ``texts`` with at least one fragment."""
    if not texts:
        return 0.0
    flags = stopped if stopped is not None else [True] * len(texts)
    hits = sum(bool(fragments(t, stopped=s)) for t, s in zip(texts, flags, strict=True))
    return hits / len(texts)


def fragment_report(
    texts: Sequence[str], stopped: Sequence[bool], reference: Sequence[str] = ()
) -> dict[str, object]:
    """Share of replies with a fragment, by kind, her real lines' rate, and the flagged replies."""
    found = [fragments(t, stopped=s) for t, s in zip(texts, stopped, strict=True)]
    n = len(texts)

    def share(hit: list[bool]) -> float:
        return round(sum(hit) / n, 4) if n else 0.0

    return {
        "n": n,
        "fragment_rate": share([bool(fs) for fs in found]),
        "by_kind": {k: share([any(f.kind == k for f in fs) for fs in found]) for k in KINDS},
        "reference_rate": round(fragment_rate(list(reference)), 4) if reference else None,
        "reference_n": len(reference),
        "fragments": [
            {"index": i, "text": texts[i], "found": [[f.kind, f.text] for f in fs][:5]}
            for i, fs in enumerate(found)
            if fs
        ],
    }
