"""A card's profile facts: their values, the ways a value may be written, and how to tell
what a question asks or a reply claims.

Used by knowledge augmentation (``serifu.data.augment``: question → answer pairs), by the
reranker (``serifu.inference.rerank``: a reply that contradicts her card loses) and by the
card-consistency numbers of the evaluation. Nothing here reads the card's own
``[[questions]]``: they are the test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

_KANJI_DIGITS = "〇一二三四五六七八九"
_FULLWIDTH = str.maketrans(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ",
)
_HALFWIDTH = str.maketrans(
    "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ",
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
)


def kanji_number(n: int) -> str:
    """17 -> 十七, 158 -> 百五十八 (for 0 < n < 1000)."""
    if n <= 0 or n >= 1000:
        return str(n)
    out = ""
    hundreds, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    if hundreds:
        out += ("" if hundreds == 1 else _KANJI_DIGITS[hundreds]) + "百"
    if tens:
        out += ("" if tens == 1 else _KANJI_DIGITS[tens]) + "十"
    if ones:
        out += _KANJI_DIGITS[ones]
    return out


def number_forms(n: int) -> list[str]:
    return [str(n), str(n).translate(_FULLWIDTH), kanji_number(n)]


def normalise(text: str) -> str:
    """Full-width digits/letters to ASCII, kanji numbers left as they are, no spaces."""
    return re.sub(r"\s+", "", text.translate(_HALFWIDTH))


_KANJI_NUMBER = re.compile(r"[一二三四五六七八九十百]+")


def _kanji_value(word: str) -> str:
    """十七 -> 17, 百五十八 -> 158, 一 -> 1; a word that is not a plain number stays."""
    total, digit = 0, 0
    for ch in word:
        if ch in "十百":
            total += (digit or 1) * (10 if ch == "十" else 100)
            digit = 0
        elif digit:  # 二三: not a number written this way
            return word
        else:
            digit = _KANJI_DIGITS.index(ch)
    return str(total + digit)


def digits(text: str) -> str:
    """``normalise`` with kanji numbers as digits, so 「十月９日」 reads as 「10月9日」."""
    return _KANJI_NUMBER.sub(lambda m: _kanji_value(m.group()), normalise(text))


@dataclass(frozen=True)
class Fact:
    """One profile fact of a card."""

    key: str
    label: str
    """Japanese name of the fact (誕生日, 部活 …)."""
    value: str
    """How the card states it (one string; lists joined with 、)."""
    forms: tuple[str, ...]
    """Ways a reply may state it (any one counts)."""
    items: tuple[str, ...] = ()
    """For list facts (hobbies, friends): the items."""
    topic: str = ""
    """A regex that a question about this fact matches."""
    claim: str | None = None
    """A regex whose first group is a value a reply claims for this fact (for contradictions)."""


def _date_forms(text: str) -> list[str]:
    m = re.match(r"(\d+)月(\d+)日", normalise(text))
    if not m:
        return [text]
    mo, d = int(m.group(1)), int(m.group(2))
    return [
        f"{mo}月{d}日",
        f"{mo}/{d}",
        f"{mo}月{d}日".translate(_FULLWIDTH),
        f"{kanji_number(mo)}月{kanji_number(d)}日",
    ]


def _core_forms(value: str) -> list[str]:
    """``お笑い番組を見ること`` -> itself and ``お笑い番組``; ``たこ焼き作り`` -> ``たこ焼き``."""
    forms = [value]
    core = re.split(r"[をがにでと]|作り|すること|こと$", value, maxsplit=1)[0]
    if 2 <= len(core) < len(value):
        forms.append(core)
    return forms


def _name_forms(name: str) -> list[str]:
    parts = [p for p in re.split(r"[\s・]", name) if p]
    forms = [name, *parts]
    if len(parts) == 1 and len(name) >= 3:  # 日向茜 -> 日向, 茜 (surname of two kanji is common)
        forms += [name[:2], name[2:]]
    return [f for f in dict.fromkeys(forms) if f]


_ZODIAC = (
    r"((?:牡羊|おひつじ|牡牛|おうし|双子|ふたご|蟹|かに|獅子|しし|乙女|おとめ|天秤|てんびん"
    r"|蠍|さそり|射手|いて|山羊|やぎ|水瓶|みずがめ|魚|うお)座)"
)

# kana spellings sit next to the kanji ones: players type 「しゅみ」 as often as 「趣味」.
# Katakana is read as hiragana and a long vowel after kana as its vowel (see
# :func:`question_text`), so 「バースデー」 and 「ばーすでー」 are one spelling here.
_TOPICS: dict[str, str] = {
    "age": (
        r"何歳|なん歳|なんさい|何才|歳(いくつ|は|って)|年齢|ねんれい|おいくつ"
        r"|(?<![学今去来])年(は|っていくつ)|とし(いくつ|は|って)|いくつ(なの|なん|です|だっけ|になる|？|\?)"
        r"|同い年|おないどし|年上|年下|としうえ|としした|十代"
    ),
    "grade": (
        r"何年生|なん年生|なんねんせい|年生|学年|がくねん|(何|なん)年(だ|な|？|\?|の)"
        r"|クラス.*何年|(高校|中学|こうこう|ちゅうがく)(何|なん)年"
    ),
    "birthday": (
        r"誕生日|たんじょうび|たんじょび|生年月日|バースデー|何月生まれ"
        r"|(生|う)まれた(日|ひ)|(いつ|何月).*(生|う)まれ|(生|う)まれ.*(いつ|何月)"
    ),
    "zodiac": r"星座|せいざ|(何|なに|なん)座",
    "blood_type": r"血液型|血液|けつえき|血の型|(何|なに|なん)型|なにがた|なんがた|(AB|A|B|O)型",
    "height_cm": (
        r"身長|しんちょう|背(の高さ|丈|は|って|、|高|低)|せたけ|背が"
        r"|(何|なん)(センチ|cm|ｃｍ)"
    ),
    "hobbies": (
        r"趣味|しゅみ|(休|やす)み(の日|のひ|には|の時)|休日|きゅうじつ"
        r"|ハマって|はまって|好きなこと|すきなこと|(暇|ひま)な(時|とき)|(暇|ひま)つぶし"
        r"|時間があるとき|楽しみ|マイブーム"
    ),
    "specialty": (
        r"特技|とくぎ|(得意|とくい)(なこと|なもの|技|分野|っ|は|？|\?)|自慢でき|誰にも負けない"
        r"|だれにも負けない|取り柄|とりえ"
    ),
    "favorite_food": (
        r"(好|す)きな(食|た)べ(物|もの)|好物|こうぶつ|好きなもの.*食|何が好き.*食"
        r"|(食|た)べ(物|もの).*(好|す)き(?!(嫌|きら)い)|好きな料理|一番好きな食"
    ),
    "disliked_food": (
        r"(苦手|にがて|嫌い|きらい)な(食|た)べ(物|もの)|食べられない|たべられない"
        r"|(苦手|にがて|嫌い|きらい)な(もの|料理)|(食|た)べ(物|もの).*(苦手|にがて|嫌い|きらい)"
        r"|好き嫌い|すききらい"
    ),
    "club": r"部活|ぶかつ|(何|なに|なん)部|クラブ|部に入|入ってる部|放課後.*活動|所属",
    "friends": (
        r"友達|友だち|ともだち|友人|親友|しんゆう|仲(の|が)?(いい|良い)|なか(の|が)?(いい|よい)"
        r"|仲良し|なかよし|つるんで"
    ),
    "name": r"名前|なまえ|何て呼|なんて呼|お名前|君は誰|あなたは誰|誰なの",
}


# profile words that recite a fact when a reply says them unasked (narrower than _TOPICS:
# 「休みの日」 in a reply is not her hobby)
_RECITED: dict[str, str] = {
    "age": r"歳です|年齢",
    "birthday": r"誕生日",
    "zodiac": r"星座",
    "blood_type": r"血液型",
    "height_cm": r"身長",
    "hobbies": r"趣味",
    "specialty": r"特技",
    "favorite_food": r"好物|好きな食べ物",
    "disliked_food": r"苦手な食べ物|嫌いな食べ物",
}


def card_facts(card: Any) -> list[Fact]:
    """The facts a card states (fields that are missing or empty are skipped)."""
    facts: list[Fact] = []

    def get(name: str) -> Any:
        value = getattr(card, name, None)
        return value if value not in (None, "", []) else None

    if (age := get("age")) is not None:
        facts.append(
            Fact(
                "age",
                "年齢",
                f"{age}歳",
                tuple(number_forms(int(age))),
                topic=_TOPICS["age"],
                claim=r"(\d+|[一二三四五六七八九十]+)\s*(?:歳|才)",
            )
        )
    if grade := get("grade"):
        m = re.search(r"(\d+)年", normalise(str(grade)))
        forms: list[str] = [str(grade)]
        if m:
            n = int(m.group(1))
            forms += [f"{f}年" for f in number_forms(n)] + [f"高{f}" for f in number_forms(n)]
        facts.append(
            Fact(
                "grade",
                "学年",
                str(grade),
                tuple(dict.fromkeys(forms)),
                topic=_TOPICS["grade"],
                claim=r"(\d|[一二三])\s*年生",
            )
        )
    if birthday := get("birthday"):
        facts.append(
            Fact(
                "birthday",
                "誕生日",
                str(birthday),
                tuple(_date_forms(str(birthday))),
                topic=_TOPICS["birthday"],
                claim=r"(\d+月\d+日|[一二三四五六七八九十]+月[一二三四五六七八九十]+日)",
            )
        )
    if zodiac := get("zodiac"):
        z = str(zodiac)
        facts.append(
            Fact(
                "zodiac",
                "星座",
                z,
                tuple(dict.fromkeys([z, z.removesuffix("座")])),
                topic=_TOPICS["zodiac"],
                claim=_ZODIAC,
            )
        )
    if blood := get("blood_type"):
        b = str(blood).removesuffix("型")
        facts.append(
            Fact(
                "blood_type",
                "血液型",
                f"{b}型",
                (f"{b}型", b.translate(_FULLWIDTH) + "型", b),
                topic=_TOPICS["blood_type"],
                claim=r"(AB|A|B|O|ＡＢ|Ａ|Ｂ|Ｏ)\s*型",
            )
        )
    if height := get("height_cm"):
        facts.append(
            Fact(
                "height_cm",
                "身長",
                f"{height}cm",
                tuple(number_forms(int(height))),
                topic=_TOPICS["height_cm"],
                claim=r"(\d{3}|百[一二三四五六七八九十]+)\s*(?:cm|センチ|ｃｍ)",
            )
        )
    for key, label in (("hobbies", "趣味"), ("friends", "友達")):
        items = get(key)
        if items:
            items = [str(i) for i in items]
            item_forms: list[str] = []
            for item in items:
                item_forms += _name_forms(item) if key == "friends" else _core_forms(item)
            facts.append(
                Fact(
                    key,
                    label,
                    "、".join(items),
                    tuple(dict.fromkeys(item_forms)),
                    tuple(items),
                    topic=_TOPICS[key],
                )
            )
    for key, label in (
        ("specialty", "特技"),
        ("favorite_food", "好きな食べ物"),
        ("disliked_food", "苦手な食べ物"),
        ("club", "部活"),
    ):
        if value := get(key):
            v = str(value)
            forms = _core_forms(v)
            if key == "club":
                forms.append(v.removesuffix("部"))
            facts.append(Fact(key, label, v, tuple(dict.fromkeys(forms)), topic=_TOPICS[key]))
    if name := get("name"):
        forms = _name_forms(str(name))
        if short := get("short_name"):
            forms.append(str(short))
        facts.append(
            Fact("name", "名前", str(name), tuple(dict.fromkeys(forms)), topic=_TOPICS["name"])
        )
    return facts


READINGS = (
    ("何年生", "なんねんせい"),
    ("何月", "なんがつ"),
    ("何日", "なんにち"),
    ("何年", "なんねん"),
    ("何人", "なんにん"),
    ("何て", "なんて"),
    ("何で", "なんで"),
    ("何の", "なんの"),
    ("何歳", "なんさい"),
    ("何センチ", "なんせんち"),
    ("何部", "なにぶ"),
    ("何型", "なにがた"),
    ("何座", "なにざ"),
    ("大好物", "だいこうぶつ"),
    ("好物", "こうぶつ"),
    ("血液型", "けつえきがた"),
    ("誕生日", "たんじょうび"),
    ("生まれ", "うまれ"),
    ("星座", "せいざ"),
    ("身長", "しんちょう"),
    ("趣味", "しゅみ"),
    ("特技", "とくぎ"),
    ("得意", "とくい"),
    ("部活", "ぶかつ"),
    ("友達", "ともだち"),
    ("親友", "しんゆう"),
    ("仲", "なか"),
    ("年齢", "ねんれい"),
    ("学年", "がくねん"),
    ("食べ物", "たべもの"),
    ("食べ", "たべ"),
    ("料理", "りょうり"),
    ("好き", "すき"),
    ("嫌い", "きらい"),
    ("苦手", "にがて"),
    ("休み", "やすみ"),
    ("暇", "ひま"),
    ("教えて", "おしえて"),
    ("何", "なに"),
    ("誰", "だれ"),
)
"""Kana spellings of the words profile questions are made of (longest first): players type
either, so every template is learned in both."""


def in_kana(text: str) -> str:
    """``text`` with the words of :data:`READINGS` spelt in kana."""
    for word, kana in READINGS:
        text = text.replace(word, kana)
    return text


_LONG_VOWEL = {
    **dict.fromkeys("あかさたなはまやらわがざだばぱぁゃ", "あ"),
    **dict.fromkeys("いきしちにひみりぎじぢびぴぃ", "い"),
    **dict.fromkeys("うくすつぬふむゆるぐずづぶぷぅゅ", "う"),
    **dict.fromkeys("えけせてねへめれげぜでべぺぇ", "え"),
    **dict.fromkeys("おこそとのほもよろごぞどぼぽぉょ", "う"),
}


def question_text(text: str) -> str:
    """A line as recognition reads it: :func:`normalise`d, katakana as hiragana, and ー
    after kana as the vowel it lengthens (お-row as う), so 「たんじょーび」 is
    「たんじょうび」 and 「シュミ」 is 「しゅみ」."""
    folded = fold_kana(normalise(text))
    out: list[str] = []
    for ch in folded:
        out.append(_LONG_VOWEL.get(out[-1], ch) if ch == "ー" and out else ch)
    return "".join(out)


_CONCESSIVE = re.compile(r"(何|なに|なん|いつ|どこ|誰|だれ|どう|どんな)[^、。！？!?]*?[てで]も")
_QUESTION_WORD = re.compile(
    r"[？?]|何|なに|なん(で|の|さい|ねん|がつ|にち|じ|せんち|がた|ぶ|部|ざ|だっけ)|いつ(?!も)"
    r"|どこ|どれ|どの|どう|どんな|どっち|どちら|誰|だれ|いくつ|幾つ"
    r"|教え|おしえ|聞かせ|きかせ|紹介|知りたい|しりたい|聞いて|きいて|聞きたい|ききたい|伺"
)
_QUESTION_END = re.compile(r"(か|かな|かしら|っけ|の|は|って|とか|ある|いる)$")


def is_question(text: str) -> bool:
    """Whether a line asks something: a question mark, a question word (not 「いつも」 or a
    concessive 「何歳になっても」), a request to tell, or a question ending that no 。 or ！
    closes; 「部活がんばってね」 and 「誕生日にケーキ焼いたよ」 do not."""
    q = _CONCESSIVE.sub("", question_text(text)).rstrip("～〜ー…、.w笑 ")
    if _QUESTION_WORD.search(q):
        return True
    return not q.endswith(("。", "！", "!")) and bool(_QUESTION_END.search(q))


# a question about the player (「俺って何型に見える？」, 「僕の誕生日覚えてる？」) or one asking her
# to guess or judge (「何がいいと思う？」, 「占いって信じる？」): no fact of hers is asked
_PLAYER_TOPIC = re.compile(r"(俺|おれ|僕|ぼく)(って|は|の)")
_YOU = re.compile(r"君|きみ|あなた|そっち|お前|おまえ")
_OPINION = re.compile(r"[とっ]思う|どう思う|に見える|信じる")
# a time of day or a duration (「部活って何時まで？」): none of her facts is one
_CLOCK = re.compile(r"(何時|なんじ)(に|から|まで|ごろ|頃|くらい|ぐらい|間|かん)")


def asks_her_fact(text: str) -> bool:
    """Whether a line can ask for one of her facts: :func:`is_question`, and, unless it names
    her (きみ, そっち …), neither about the player (his 俺/僕 as its topic) nor asking her
    opinion or guess (〜と思う？, 〜に見える？, 〜信じる？); never a time of day (〜何時まで？).
    「俺と同い年くらいかな？何歳？」, 「俺はA型だけど、そっちは？」 and 「君の才能って何だと
    思う？」 still ask hers."""
    if not is_question(text):
        return False
    q = question_text(text)
    if _CLOCK.search(q):
        return False
    return bool(_YOU.search(q)) or not (_PLAYER_TOPIC.search(q) or _OPINION.search(q))


@lru_cache(maxsize=64)
def _topic_pattern(topic: str) -> re.Pattern[str]:
    """A fact's topic pattern read as :func:`question_text` reads lines, compiled once."""
    return re.compile(question_text(topic))


def asked_facts(facts: list[Fact], question: str) -> list[Fact]:
    """The facts a question asks about (by topic patterns; none for a line that asks
    nothing or asks about the player, :func:`asks_her_fact`). Her name is dropped beside
    another fact: 「友達の名前」 asks for friends."""
    if not asks_her_fact(question):
        return []
    q = question_text(question)
    found = [f for f in facts if f.topic and _topic_pattern(f.topic).search(q)]
    others = [f for f in found if f.key != "name"]
    return others or found


def fold_kana(text: str) -> str:
    """Katakana as hiragana (プリン -> ぷりん), so a heroine who writes in hiragana still
    states her card's katakana word; ー and other characters stay."""
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in text)


def states(fact: Fact, reply: str) -> bool:
    """Whether a reply states the fact (one of its forms, compared without width/space and
    with katakana read as hiragana)."""
    text, numbers = fold_kana(normalise(reply)), digits(reply)
    return any(fold_kana(normalise(f)) in text or digits(f) in numbers for f in fact.forms if f)


@dataclass
class Consistency:
    """How a reply fits her card: facts asked and stated, facts contradicted."""

    asked: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    contradicted: list[str] = field(default_factory=list)
    volunteered: list[str] = field(default_factory=list)
    """Facts stated although the question asked about none (a non sequitur)."""

    @property
    def score(self) -> float:
        answered = len(self.answered) / len(self.asked) if self.asked else 0.0
        return answered - len(self.contradicted) - 0.5 * bool(self.volunteered)


def consistency(
    facts: list[Fact], question: str, reply: str, asked: list[Fact] | None = None
) -> Consistency:
    """Which asked facts the reply states and which facts it contradicts (``asked``: the
    facts the question asks about, when known otherwise; default :func:`asked_facts`)."""
    out = Consistency()
    for fact in asked_facts(facts, question) if asked is None else asked:
        out.asked.append(fact.key)
        if states(fact, reply):
            out.answered.append(fact.key)
    text = normalise(reply)
    if not out.asked:
        # her profile recited to a line that asked for none of it: the fact's value (or one
        # of its items), or its topic word (「私の趣味は…」). Friends and her name come up in
        # ordinary talk, so they never count.
        out.volunteered = [
            f.key
            for f in facts
            if f.key not in ("name", "friends")
            and (
                (f.value and normalise(f.value) in text)
                or any(normalise(item) in text for item in f.items)
                or (f.key in _RECITED and re.search(_RECITED[f.key], text))
            )
        ]
    for fact in facts:
        if fact.claim is None:
            continue
        for claimed in re.findall(fact.claim, text):
            if not any(
                normalise(form) in claimed or claimed in normalise(form) for form in fact.forms
            ):
                out.contradicted.append(fact.key)
                break
    return out
