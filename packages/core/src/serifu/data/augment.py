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

from serifu.profile import Fact, card_facts, in_kana, normalise

_SENTENCE = re.compile(r"[^。！？!?…]+[。！？!?…]*")
_DENIAL = re.compile(r"(いいえ|いや|いえ|ううん|違|ちが|でも|だって|けど|しかし)")
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
    "あのさ、",
    "ひとつ聞きたいんだけど、",
    "今さらだけど、",
    "せっかくだし聞くけど、",
    "よければ教えてほしいんですけど、",
)

# Whole questions per fact (verbs and indirect wordings) ...
QUESTIONS: dict[str, tuple[str, ...]] = {
    "age": (
        "何歳？",
        "歳いくつ？",
        "{n}って何歳なの？",
        "おいくつですか？",
        "今いくつなの？",
        "何歳になったんだっけ？",
        "{n}の年齢、教えてよ",
        "同い年だっけ？何歳？",
        "もう大人？まだ十代？何歳？",
        "年上なのか年下なのか気になるな。何歳？",
        "{n}っていくつなの？",
        "年はいくつ？",
        "今、何歳なんですか？",
        "実は年上だったりする？",
    ),
    "grade": (
        "何年生？",
        "{n}って何年生なの？",
        "今何年生ですか？",
        "高校何年？",
        "何年のクラスにいるの？",
        "先輩？それとも同学年？何年生？",
        "来年で卒業だっけ？今何年？",
        "{n}って何年の生徒？",
        "同じ学年だっけ？",
        "一年生？それとも上級生？",
    ),
    "birthday": (
        "何月何日生まれ？",
        "生まれた日を教えてよ",
        "誕生日プレゼント用意したいんだけど、いつ生まれ？",
        "何月生まれなの？日にちも教えて",
        "生まれたのは何月の何日？",
        "何月の生まれ？",
        "{n}の誕生日、カレンダーに書いておきたいな。いつ？",
        "誕生日ってもう来た？",
        "誕生日は何月何日ですか？",
    ),
    "zodiac": (
        "何座なの？",
        "{n}って何座？",
        "何座生まれ？",
        "占い好き？自分は何座？",
        "星座占いだと何座を見ればいい？",
        "何座ですか？",
        "雑誌の占いページ見てるんだけど、何座だっけ？",
    ),
    "blood_type": (
        "{n}って何型なの？",
        "何型？",
        "A型っぽいけど、実際は何型？",
        "性格診断に使うから、何型か教えて",
        "何型ですか？",
        "血液型、A・B・O・ABのどれ？",
        "{n}は何型っぽいって言われる？",
    ),
    "height_cm": (
        "何センチあるの？",
        "背の高さはどのくらい？",
        "並ぶと同じくらいかな？背、何センチ？",
        "背比べしよう。何センチ？",
        "背、伸びた？今何センチ？",
        "身長って測ったらいくつだった？",
        "何センチくらいあるんですか？",
    ),
    "hobbies": (
        "休みの日は何してるの？",
        "ハマってることある？",
        "暇な時って何してる？",
        "週末は何して過ごすの？",
        "家にいる時は何してることが多い？",
        "時間があったら何がしたい？",
        "好きでずっと続けてることってある？",
        "休日の楽しみって何？",
        "放課後とか何して遊んでるの？",
        "つい時間を忘れちゃうことってある？",
        "熱中してることってある？",
        "一人の時は何してるの？",
        "最近何にハマってる？",
        "家に帰ったら何してる？",
    ),
    "specialty": (
        "誰にも負けないことってある？",
        "自慢できることって何？",
        "何が得意なの？",
        "これだけは得意ってものある？",
        "みんなに褒められることって何？",
        "得意なことで何か見せてよ",
        "得意なことある？",
        "人に自慢できる特技ってある？",
        "一番得意なことは？",
        "{n}の才能って何だと思う？",
        "取り柄ってなに？",
        "褒められることが多いのって何？",
    ),
    "favorite_food": (
        "何を食べるのが好き？",
        "ご褒美に食べたいものって何？",
        "お昼に何が出たら嬉しい？",
        "毎日でも食べたいものってある？",
        "お腹すいたね。何が食べたい？好物ある？",
        "おいしいものの話しよう。一番好きなのは？",
        "食べ物なら何が好き？",
        "晩ご飯に出たら嬉しいものって何？",
        "好きなおかずは？",
        "ごちそうするなら何がいい？",
        "食べ物の好みを教えて",
    ),
    "disliked_food": (
        "{n}が食べられないものって何？",
        "これだけは食べられないってものある？",
        "好き嫌いある？何が苦手？",
        "お弁当に入ってたら嫌なものって何？",
        "食べると顔をしかめちゃうものってある？",
        "どうしても食べられないものってある？",
        "口に合わない食べ物ってある？",
        "食べ物の好き嫌いってある？",
        "食べ物で苦手なのは？",
        "メニューにあったら避けるものって何？",
    ),
    "club": (
        "何部なの？",
        "{n}って何部に入ってるの？",
        "放課後は部活？何部？",
        "どこの部に入ってるの？",
        "部活って何かやってる？",
        "放課後、いつもどこに行ってるの？部活？",
        "何部ですか？",
        "所属してる部活は？",
        "放課後って部活してるの？",
        "どの部活に入ってる？",
        "運動部？文化部？",
    ),
    "friends": (
        "親友って誰なの？",
        "いつも誰と一緒にいるの？",
        "お昼は誰と食べてるの？",
        "仲良しグループのメンバーって誰？",
        "困った時に頼れる友達って誰？",
        "休み時間は誰としゃべってる？",
        "友達で一番仲いいのは誰？",
        "一番の友達は誰？",
        "よく遊ぶ友達は？",
        "クラスで仲良しの子いる？",
        "相談できる友達っている？",
        "{n}の友達、紹介してよ",
    ),
    "name": (
        "名前は？",
        "名前を教えてくれる？",
        "お名前は何ですか？",
        "なんて呼べばいい？",
        "君の名前、もう一回教えて",
    ),
}

# ... and noun phrases for the fact, put into question frames (TOPICS × FRAMES): many
# wordings from few parts, so a question worded in a new way is still near one she saw.
TOPICS: dict[str, tuple[str, ...]] = {
    "age": ("年齢", "歳", "年", "今の年齢", "お歳"),
    "grade": ("学年", "学年とクラス", "今の学年"),
    "birthday": ("誕生日", "お誕生日", "生年月日", "生まれた日", "誕生日の日付"),
    "zodiac": ("星座", "誕生星座", "自分の星座"),
    "blood_type": ("血液型", "血の型", "自分の血液型"),
    "height_cm": ("身長", "背", "背の高さ", "今の身長"),
    "hobbies": (
        "趣味",
        "好きなこと",
        "休日の過ごし方",
        "マイブーム",
        "楽しみ",
        "休みの日の過ごし方",
        "ハマってること",
    ),
    "specialty": (
        "特技",
        "得意なこと",
        "得意技",
        "一番うまくできること",
        "取り柄",
        "人に自慢できること",
    ),
    "favorite_food": (
        "好きな食べ物",
        "好物",
        "大好物",
        "好きな料理",
        "好きなおやつ",
        "好きなメニュー",
        "好きなお菓子",
        "一番好きな食べ物",
    ),
    "disliked_food": (
        "苦手な食べ物",
        "嫌いな食べ物",
        "苦手な料理",
        "食べられないもの",
        "嫌いな料理",
        "苦手な食材",
    ),
    "club": ("部活", "所属してる部", "入ってる部活", "クラブ活動", "入ってる部"),
    "friends": (
        "友達",
        "仲のいい友達",
        "仲良し",
        "親しい友達",
        "いつものメンバー",
        "親友",
        "仲のいい子",
        "よく遊ぶ友達",
    ),
}
FRAMES = (
    "{t}は？",
    "{t}って何？",
    "{t}を教えて",
    "{t}を教えてください",
    "{t}、何だっけ？",
    "{n}の{t}は？",
    "{n}の{t}って？",
    "ちなみに{t}は？",
    "{t}を聞いてもいい？",
    "{t}はなんですか？",
    "よかったら{t}教えて",
    "{t}ってどんな感じ？",
    "{t}はなに？",
    "{t}、教えてくれる？",
    "{t}、聞いてもいいかな？",
    "{t}とか教えてよ",
    "{t}、知りたいな",
    "{n}の{t}、知りたいな",
    "{t}を知りたいです",
    "{t}について聞きたいな",
    "{t}、何ですか？",
    "{t}をうかがってもいいですか？",
    "{t}って？",
    "{t}おしえて",
)


KANA_SHARE = 0.15
"""Share of questions written with their profile words in kana (「しゅみは？」), as players
often type them (``serifu.profile.in_kana``)."""


def question_for(key: str, rng: random.Random, name: str) -> str:
    """One question about fact ``key``: a whole question or a topic in a frame, half each;
    :data:`KANA_SHARE` of them spelt in kana."""
    if key in TOPICS and rng.random() < 0.5:
        text = rng.choice(FRAMES).format(t=rng.choice(TOPICS[key]), n="{n}")
    else:
        text = rng.choice(QUESTIONS[key])
    if rng.random() < KANA_SHARE:
        text = in_kana(text)
    return rng.choice(LEADS) + text.format(n=name or "君")


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
    "disliked_food": ("{v}{e}", "{fp}、{v}は苦手{e}", "苦手なのは{v}{e}", "{v}はちょっと……"),
    "club": ("{v}{e}", "{fp}は{v}{e}", "部活は{v}{e}"),
    "friends": ("{v}{e}", "{fp}の友達は{v}{e}", "仲がいいのは{v}{e}"),
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
        if 1 < len(head) <= 5 and text.startswith(head + "、") and not _DENIAL.match(head):
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
        [o for o, n in openers.most_common(12) if n >= 2 and _interjection(o, tagger)][:8],
        [endings[e] for e in common] if common else [],
    )


def _interjection(word: str, tagger: Any) -> bool:
    """「あはは」「ふふっ」「まあ」 open an answer; 「わたくし」「でしたら」 do not."""
    if tagger is None:
        return True
    return all(w.feature.pos1 in ("感動詞", "フィラー", "補助記号") for w in tagger(word))


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
    if fact.items or fact.key in ("name", "age"):
        # a clause naming one of several items describes something else
        # (「茶道部の部長」 is about her club, not her hobby 茶道)
        return values
    for clause in _clauses(personality):
        if any(form in clause for form in fact.forms if len(form) >= 2):
            values.append(clause)
    return values


def answer_in_voice(fact: Fact, voice: Voice, personality: str, rng: random.Random) -> str:
    """One answer that states ``fact``, in her voice (an answer frame, her first person and
    one of her endings, sometimes after one of her openers)."""
    ending = rng.choices(voice.endings, weights=voice.weights or None)[0]
    value = rng.choice(_value_texts(fact, personality, rng))
    answer = rng.choice(ANSWERS[fact.key]).format(fp=voice.first_person, v=value, e=ending)
    if voice.openers and rng.random() < 0.3:
        answer = rng.choice(voice.openers) + "、" + answer
    return answer


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
    card_questions = [q.q for q in getattr(card, "questions", []) or []]
    excluded = {normalise(q) for q in card_questions} | {
        normalise(in_kana(q)) for q in card_questions
    }
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    attempts = 0
    while len(rows) < n and attempts < n * 20:
        fact = facts[attempts % len(facts)]
        attempts += 1
        question = question_for(fact.key, rng, name)
        if "{n}" in question or normalise(question) in excluded:
            continue
        answer = answer_in_voice(fact, voice, personality, rng)
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
