"""Knowledge augmentation: profile question → answer pairs from a card, in her voice.

The lab's next step 3. For every fact her card states (``serifu.profile``) many questions
are written — casual, polite, indirect, and inside small talk — and each gets an answer in
her voice: her first person, and the sentence endings she puts after a noun in her own
lines (learned with the morphological analyser, e.g. 「〜や！」「〜やで」 for a Kansai
speaker, 「〜ですわ」 for a polite one), sometimes opened with one of her usual
interjections. Clauses of her personality text that mention a fact (「軽音部のベース担当」)
become answers too. The card's own ``[[questions]]`` are never used: they are the test.

Rows have the dialogue columns plus ``source = "augmented"``; ``serifu data build
--augment R`` adds ``R`` × (real training pairs) of them to the training split only.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from serifu.profile import Fact, card_facts, normalise

_SENTENCE = re.compile(r"[^。！？!?…]+[。！？!?…]*")
_NOT_ENDING = re.compile(r"[『』「」（）()？?]")

LEADS = (
    "",
    "",
    "",
    "ねえ、",
    "ところで、",
    "そういえば、",
    "急に聞くけど、",
    "話変わるけど、",
    "前から気になってたんだけど、",
    "ちょっと聞いていい？",
)

QUESTIONS: dict[str, tuple[str, ...]] = {
    "age": (
        "何歳？",
        "歳いくつ？",
        "{n}って何歳なの？",
        "年齢を聞いてもいい？",
        "おいくつですか？",
        "今いくつなの？",
        "年はいくつ？",
        "何歳になったんだっけ？",
        "{n}の年齢、教えてよ",
        "年齢はいくつですか？",
        "歳はいくつだったっけ？",
    ),
    "grade": (
        "何年生？",
        "学年はどこ？",
        "{n}って何年生なの？",
        "今何年生ですか？",
        "学年を教えてくれる？",
        "高校何年？",
        "何年のクラスにいるの？",
        "{n}は何年生だったっけ？",
    ),
    "birthday": (
        "誕生日はいつ？",
        "{n}の誕生日っていつなの？",
        "誕生日を教えてください",
        "何月何日生まれ？",
        "誕生日、いつだっけ？",
        "お誕生日はいつですか？",
        "生まれた日を教えてよ",
        "誕生日っていつ頃なの？",
    ),
    "zodiac": (
        "星座は？",
        "何座なの？",
        "{n}って何座？",
        "星座を教えてください",
        "星座、何だっけ？",
        "何座生まれ？",
    ),
    "blood_type": (
        "血液型は？",
        "{n}って何型なの？",
        "血液型を教えてください",
        "血液型、何型だっけ？",
        "何型？",
        "血液型って何？",
    ),
    "height_cm": (
        "身長いくつ？",
        "背ってどれくらい？",
        "身長は何センチ？",
        "{n}の身長って何cmなの？",
        "身長を教えてください",
        "何センチあるの？",
        "背の高さはどのくらい？",
    ),
    "hobbies": (
        "趣味は？",
        "{n}の趣味って何？",
        "休みの日は何してるの？",
        "ハマってることある？",
        "趣味を教えてください",
        "暇な時って何してる？",
        "好きなことって何？",
        "趣味、何だっけ？",
    ),
    "specialty": (
        "特技は？",
        "{n}の特技って何？",
        "得意なことってある？",
        "特技を教えてください",
        "何が得意なの？",
        "誰にも負けないことってある？",
        "自慢できることって何？",
    ),
    "favorite_food": (
        "好きな食べ物は？",
        "{n}の好物って何？",
        "何を食べるのが好き？",
        "好きな食べ物を教えてください",
        "大好物は何？",
        "一番好きな料理って何？",
        "食べ物だと何が好き？",
        "好きな食べ物、何だっけ？",
    ),
    "disliked_food": (
        "苦手な食べ物は？",
        "嫌いな食べ物ってある？",
        "{n}が食べられないものって何？",
        "苦手な食べ物を教えてください",
        "食べ物で苦手なものある？",
        "嫌いな料理って何？",
        "これだけは食べられないってものある？",
    ),
    "club": (
        "部活は？",
        "何部なの？",
        "{n}って何部に入ってるの？",
        "部活は何をしていますか？",
        "所属してる部活って何？",
        "放課後は部活？何部？",
        "部活、何やってたっけ？",
        "どこの部に入ってるの？",
    ),
    "friends": (
        "友達は誰？",
        "{n}の仲のいい友達って誰？",
        "親友って誰なの？",
        "いつも誰と一緒にいるの？",
        "仲良しは誰ですか？",
        "友達を教えてよ",
        "仲がいい子って誰？",
    ),
    "name": (
        "名前は？",
        "名前を教えてくれる？",
        "お名前は何ですか？",
        "なんて呼べばいい？",
        "君の名前、もう一回教えて",
    ),
}

ANSWERS: dict[str, tuple[str, ...]] = {
    "age": ("{v}{e}", "{fp}？{v}{e}", "{fp}は{v}{e}", "今{v}{e}"),
    "grade": ("{v}{e}", "{fp}は{v}{e}", "{v}{e}"),
    "birthday": ("{v}{e}", "{fp}の誕生日は{v}{e}", "誕生日？{v}{e}"),
    "zodiac": ("{v}{e}", "{fp}は{v}{e}", "星座は{v}{e}"),
    "blood_type": ("{v}{e}", "{fp}は{v}{e}", "血液型は{v}{e}"),
    "height_cm": ("{v}{e}", "{fp}の身長は{v}{e}", "身長？{v}{e}"),
    "hobbies": ("{v}{e}", "{fp}の趣味は{v}{e}", "趣味？{v}{e}"),
    "specialty": ("{v}{e}", "{fp}の特技は{v}{e}", "特技？{v}{e}"),
    "favorite_food": ("{v}{e}", "{fp}の好物は{v}{e}", "好きな食べ物は{v}{e}"),
    "disliked_food": ("{v}{e}", "{fp}、{v}は苦手{e}", "苦手なんは{v}{e}"),
    "club": ("{v}{e}", "{fp}は{v}{e}", "部活は{v}{e}"),
    "friends": ("{v}{e}", "{fp}の友達は{v}{e}", "仲ええのは{v}{e}"),
    "name": ("{v}{e}", "{fp}は{v}{e}", "{v}{e}"),
}


@dataclass
class Voice:
    """How she speaks, as far as answers need it."""

    first_person: str
    endings: list[str] = field(default_factory=list)
    """Sentence endings she puts after a noun (copula + particles + punctuation), most first."""
    openers: list[str] = field(default_factory=list)
    """Short interjections she opens lines with."""
    weights: list[int] = field(default_factory=list)
    """How often she uses each ending (answers pick endings in proportion)."""


def _noun_tails(sentence: str, tagger: Any) -> str | None:
    """What follows the last noun of a sentence when it is a copula/sentence-final ending
    (「や！」「ですわ。」「だよ」), not a case particle or a past tense."""
    words = [(w.surface, w.feature.pos1, w.feature.pos2, w.feature.lemma) for w in tagger(sentence)]
    last_noun = max((i for i, w in enumerate(words) if w[1] == "名詞"), default=None)
    if last_noun is None or last_noun == len(words) - 1:
        return None
    tail = words[last_noun + 1 :]
    first = tail[0]
    if all(w[1] == "補助記号" for w in tail):  # a bare noun: 「十六。」 (a curt speaker)
        return "".join(w[0] for w in tail)
    if not (first[1] == "助動詞" or (first[1] == "助詞" and first[2] == "終助詞")):
        return None
    for _, pos1, pos2, lemma in tail:
        if lemma == "た" or not (
            pos1 in ("助動詞", "補助記号") or (pos1 == "助詞" and pos2 == "終助詞")
        ):
            return None
    return "".join(w[0] for w in tail)


def learn_voice(lines: Sequence[str], first_person: str, top: int = 6) -> Voice:
    """Her copula-like endings and openers from her real lines."""
    endings: Counter[str] = Counter()
    openers: Counter[str] = Counter()
    try:
        import fugashi

        tagger: Any = fugashi.Tagger()
    except Exception:  # no analyser: endings after the last kanji/katakana character
        tagger = None
    for line in lines:
        text = line.strip()
        head = re.split(r"[、。！？!?…]", text, maxsplit=1)[0]
        if 1 < len(head) <= 5 and text.startswith(head + "、"):
            openers[head] += 1
        for sentence in _SENTENCE.findall(text):
            if tagger is not None:
                tail = _noun_tails(sentence[:200], tagger)
            else:
                m = re.search(
                    r"[\u4e00-\u9fff\u30a0-\u30ff]([\u3040-\u309f]{0,4}[。！？!?…]*)$", sentence
                )
                tail = m.group(1) if m else None
            if tail and len(tail) <= 8 and not _NOT_ENDING.search(tail):
                endings[tail] += 1
    most = endings.most_common(1)[0][1] if endings else 0
    # frequent enough to be hers: at least 3 times and a fifth as often as her top ending
    common = [e for e, n in endings.most_common(top * 3) if n >= max(3, most / 5)][:top]
    return Voice(
        first_person,
        common or ["です。", "だよ。"],
        [o for o, n in openers.most_common(8) if n >= 2],
        [endings[e] for e in common] if common else [],
    )


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in re.split(r"[。、,]", text) if len(c.strip()) >= 4]


def _value_texts(fact: Fact, personality: str, rng: random.Random) -> list[str]:
    """Ways to state the fact's value: as on the card, or a personality clause mentioning it."""
    values = [fact.value]
    if fact.key == "age":
        values = [fact.value, fact.forms[-1] + "歳"]
    if fact.key == "height_cm":
        values = [f"{fact.forms[0]}センチ", f"{fact.forms[0]}cm"]
    if fact.items:
        values = ["と".join(fact.items), "、".join(fact.items)]
    for clause in _clauses(personality):
        if any(form in clause for form in fact.forms if len(form) >= 2) and fact.key not in (
            "name",
            "age",
        ):
            values.append(clause)
    return values


def augment_pairs(
    card: Any,
    lines: Sequence[str],
    *,
    n: int,
    seed: int = 0,
    speaker: str | None = None,
) -> list[dict[str, Any]]:
    """``n`` augmented dialogue rows for ``card`` (spread evenly over its facts)."""
    rng = random.Random(seed)
    facts = [f for f in card_facts(card) if f.key in QUESTIONS]
    if not facts or n <= 0:
        return []
    voice = learn_voice(lines, getattr(card, "first_person", None) or "私")
    name = str(getattr(card, "short_name", "") or "")
    personality = str(getattr(card, "personality", "") or "")
    protagonist = str(getattr(card, "protagonist", "主人公") or "主人公")
    excluded = {normalise(q.q) for q in getattr(card, "questions", []) or []}
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    attempts = 0
    while len(rows) < n and attempts < n * 20:
        fact = facts[attempts % len(facts)]
        attempts += 1
        question = rng.choice(LEADS) + rng.choice(QUESTIONS[fact.key]).format(n=name or "君")
        if "{n}" in question or normalise(question) in excluded:
            continue
        ending = rng.choices(voice.endings, weights=voice.weights or None)[0]
        value = rng.choice(_value_texts(fact, personality, rng))
        answer = rng.choice(ANSWERS[fact.key]).format(fp=voice.first_person, v=value, e=ending)
        if voice.openers and rng.random() < 0.3:
            answer = rng.choice(voice.openers) + "、" + answer
        if (question, answer) in seen:
            continue
        seen.add((question, answer))
        rows.append(
            {
                "context": [],
                "query": question,
                "query_speaker": protagonist,
                "reply": answer,
                "character": speaker or name,
                "scene": f"augmented#{fact.key}",
                "source": "augmented",
            }
        )
    return rows
