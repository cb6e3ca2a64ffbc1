"""Which profile fact a question asks about, when the topic patterns do not say.

:func:`serifu.profile.asked_facts` matches hand-written topic patterns: exact on the cards'
own questions, but blind to new wordings (「ごはんで一番テンション上がるのは何？」). This is
a learned fallback: a character n-gram TF-IDF + logistic regression (scikit-learn) fitted
on augmentation's question templates (``serifu.data.augment``: whole questions and
topic x frame, with its conversational leads) labelled by fact, against ordinary lines
said to the sample cast's heroines and questions about topics no card has (label
``none``). The cards' ``[[questions]]`` and the
held-out paraphrase sets of ``bench/profile_paraphrase.py`` are never used.

Every template question is also learned spelt in kana (:func:`serifu.profile.in_kana`:
「しゅみは？」 for 「趣味は？」), and all text is read as :func:`serifu.profile.question_text` reads it
(katakana as hiragana, ー as its vowel). A line that asks nothing
(:func:`serifu.profile.is_question`), or asks about the player or her opinion
(:func:`serifu.profile.asks_her_fact`), is ``none`` without the model.

The reranker (``serifu.inference.rerank``) asks it only when no pattern matched, and only
trusts a probability of at least :data:`MIN_PROBABILITY`.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

MIN_PROBABILITY = 0.6
NONE = "none"
OFF_CARD = (
    "好きな色",
    "好きな季節",
    "好きな動物",
    "好きな映画",
    "好きな花",
    "好きな教科",
    "好きな天気",
    "好きな場所",
    "好きな本",
    "将来の夢",
    "好きなテレビ番組",
    "好きなスポーツ選手",
)
"""Topics no card has, asked in augmentation's frames and labelled ``none``: 「好きな…」 names
her favourite food only when it is food, so a question about another favourite is no
profile question."""


def training_questions(seed: int = 0) -> list[tuple[str, str]]:
    """(question, fact key) from augmentation's templates, each lead and frame used, each
    also spelt in kana; a sample-cast card's own question is left out in either spelling
    (as augmentation leaves it out)."""
    from serifu import plugins
    from serifu.builtin.sample_cast import cast_ids
    from serifu.data.augment import FRAMES, LEADS, QUESTIONS, TOPICS
    from serifu.profile import in_kana, normalise

    cards = [q.q for cid in cast_ids() for q in plugins.get_character(cid).card().questions]
    excluded = {normalise(q) for q in cards} | {normalise(in_kana(q)) for q in cards}

    rng = random.Random(seed)
    names = ["君", "あなた", "お前", "先輩", "茜", "ひな", "紗耶香"]
    rows = []
    for key, questions in QUESTIONS.items():
        for q in questions:
            for lead in dict.fromkeys(LEADS):
                rows.append((lead + q.format(n=rng.choice(names)), key))
    for key, topics in TOPICS.items():
        for topic in topics:
            for frame in FRAMES:
                rows.append((rng.choice(LEADS) + frame.format(t=topic, n=rng.choice(names)), key))
    rows += [(in_kana(q), k) for q, k in rows if in_kana(q) != q]
    return [(q, k) for q, k in rows if normalise(q) not in excluded]


def off_card_questions(seed: int = 0) -> list[str]:
    """:data:`OFF_CARD` topics in every frame of augmentation, with its leads (``none``)."""
    from serifu.data.augment import FRAMES, LEADS

    rng = random.Random(seed)
    names = ["君", "あなた", "お前", "先輩"]
    return [
        rng.choice(LEADS) + frame.format(t=topic, n=rng.choice(names))
        for topic in OFF_CARD
        for frame in FRAMES
    ]


def ordinary_lines(limit: int = 2000, seed: int = 0) -> list[str]:
    """Lines said to the sample cast's heroines in their scripts (not profile questions):
    a line a topic pattern recognises never reaches the classifier, and may well ask for a
    fact (「じゃあ、趣味は？」), so it is left out."""
    from serifu import plugins
    from serifu.builtin.sample_cast import cast_ids
    from serifu.data.characters import character_pairs
    from serifu.profile import Fact, asked_facts, card_facts

    lines: list[str] = []
    facts: list[Fact] = []
    for cid in cast_ids():
        pack = plugins.get_character(cid)
        lines += [p.query for p in character_pairs(pack)]
        facts = facts or card_facts(pack.card())
    lines = [line for line in dict.fromkeys(lines) if not asked_facts(facts, line)]
    random.Random(seed).shuffle(lines)
    return lines[:limit]


def in_context(
    rows: list[tuple[str, str]], lines: list[str], seed: int = 0
) -> list[tuple[str, str]]:
    """Each question after an ordinary line (「今日は暑いね。趣味は？」): players ask inside
    small talk, and the fact stays the question's. Cross-validated over augmentation's
    whole-question templates (5 folds; 258 questions of unseen templates, both spellings;
    about 815 unseen ordinary lines that ask something), recall at the threshold was 189
    with these against 179 without (false triggers 3 against 1), and after an unseen
    ordinary line 139 against 48; C=10 without them: 164, no false trigger."""
    rng = random.Random(seed)
    return [(rng.choice(lines).rstrip("。") + "。" + q, k) for q, k in rows]


@lru_cache(maxsize=1)
def _classifier() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from serifu.fitcache import cached_fit
    from serifu.profile import question_text

    ordinary = ordinary_lines()
    rows = training_questions()
    rows += in_context(rows[::3], ordinary)
    texts = [q for q, _ in rows] + ordinary + off_card_questions()
    labels = [k for _, k in rows] + [NONE] * (len(texts) - len(rows))
    texts = [question_text(t) for t in texts]
    model = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
        LogisticRegression(C=30, max_iter=3000, class_weight="balanced"),
    )
    material = {"texts": texts, "labels": labels, "model": repr(model)}
    return cached_fit("profile-intent", material, lambda: model.fit(texts, labels))


def question_fact(question: str) -> tuple[str, float]:
    """(fact key or ``none``, probability) for one question (``none``, 1.0 for a line that
    asks nothing or nothing of hers)."""
    from serifu.profile import asks_her_fact, question_text

    if not asks_her_fact(question):
        return NONE, 1.0
    model = _classifier()
    probs = model.predict_proba([question_text(question)])[0]
    best = int(probs.argmax())
    return str(model.classes_[best]), float(probs[best])
