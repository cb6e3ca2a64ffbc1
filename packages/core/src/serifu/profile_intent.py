"""Which profile fact a question asks about, when the topic patterns do not say.

:func:`serifu.profile.asked_facts` matches hand-written topic patterns: exact on the cards'
own questions, but blind to new wordings (「ごはんで一番テンション上がるのは何？」). This is
a learned fallback: a character n-gram TF-IDF + logistic regression (scikit-learn) fitted
on augmentation's question templates (``serifu.data.augment``: whole questions and
topic x frame, with its conversational leads) labelled by fact, against ordinary lines
said to the sample cast's heroines and questions about topics no card has (label
``none``). The cards' ``[[questions]]`` and the
held-out paraphrase sets of ``bench/profile_paraphrase.py`` are never used.

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
    """(question, fact key) from augmentation's templates, each lead and frame used; a
    sample-cast card's own question is left out (as augmentation leaves it out)."""
    from serifu import plugins
    from serifu.builtin.sample_cast import cast_ids
    from serifu.data.augment import FRAMES, LEADS, QUESTIONS, TOPICS
    from serifu.profile import normalise

    excluded = {
        normalise(q.q) for cid in cast_ids() for q in plugins.get_character(cid).card().questions
    }

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
    """Lines said to the sample cast's heroines in their scripts (not profile questions)."""
    from serifu import plugins
    from serifu.builtin.sample_cast import cast_ids
    from serifu.data.characters import character_pairs

    lines: list[str] = []
    for cid in cast_ids():
        lines += [p.query for p in character_pairs(plugins.get_character(cid))]
    lines = list(dict.fromkeys(lines))
    random.Random(seed).shuffle(lines)
    return lines[:limit]


@lru_cache(maxsize=1)
def _classifier() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from serifu.fitcache import cached_fit

    rows = training_questions()
    texts = [q for q, _ in rows] + ordinary_lines() + off_card_questions()
    labels = [k for _, k in rows] + [NONE] * (len(texts) - len(rows))
    model = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
        LogisticRegression(C=10, max_iter=2000, class_weight="balanced"),
    )
    material = {"texts": texts, "labels": labels, "model": repr(model)}
    return cached_fit("profile-intent", material, lambda: model.fit(texts, labels))


def question_fact(question: str) -> tuple[str, float]:
    """(fact key or ``none``, probability) for one question."""
    model = _classifier()
    probs = model.predict_proba([question])[0]
    best = int(probs.argmax())
    return str(model.classes_[best]), float(probs[best])
