#!/usr/bin/env python3
"""Profile-QA on questions worded differently from both the card's and augmentation's.

The card's own ``[[questions]]`` are the evaluation's test; the augmentation
(``serifu.data.augment``) trains on its own templates. These questions use other words
again (written for this check, one or two per fact), so a heroine that only memorised
surface forms fails them. A reply is right when it states the fact in one of the forms
``serifu.profile`` accepts. Runs on the default chat path (CPU: best-of-1, her output
vocabulary), with her profile prompt.

    python bench/profile_paraphrase.py [--characters akane,rei] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

# set A (2026-12-02) and set B (2026-12-03, written before augmentation's templates were
# broadened); a test checks that augmentation never produces any of them.
PARAPHRASES = {
    "age": ["ぶっちゃけ、今年で何歳になるの？", "年齢って聞いても平気？"],
    "grade": ["学校では何年のクラス？"],
    "birthday": ["お祝いしたいから、生まれた月と日を教えて"],
    "zodiac": ["占いで見る自分の星座ってどれ？"],
    "blood_type": ["ABO式だと何型になるの？"],
    "height_cm": ["背丈はどのくらいあるの？"],
    "hobbies": ["空いてる時間は何をして過ごしてる？"],
    "specialty": ["人より上手にできることって何？"],
    "favorite_food": ["ごはんで一番テンション上がるのは何？"],
    "disliked_food": ["出されたら困る食べ物ってある？"],
    "club": ["放課後はどこの部で活動してるの？"],
    "friends": ["学校でよく一緒にいる相手は誰？"],
}
PARAPHRASES_B = {
    "age": ["いま何才？", "年っていくつだっけ、教えて"],
    "grade": ["何学年にいるの？"],
    "birthday": ["バースデーっていつ？"],
    "zodiac": ["星占いだと何座になる？"],
    "blood_type": ["血液型占いするから、型を教えて"],
    "height_cm": ["背、高いほう？何センチくらい？"],
    "hobbies": ["最近夢中になってる遊びって何？"],
    "specialty": ["一番自信のある得意技は？"],
    "favorite_food": ["何を食べてる時が一番幸せ？"],
    "disliked_food": ["給食で残しちゃうものって何？"],
    "club": ["部活動は何に入ってる？"],
    "friends": ["仲良くしてる友達の名前を教えて"],
}
SETS = {"A": PARAPHRASES, "B": PARAPHRASES_B}


def hinted_reply(bot: Any, question: str, fact: Any) -> str:
    """Her reply with 「（いまの質問は…について。…は….）」 added to the system prompt."""
    hint = f"（いまの質問は{fact.label}について。{fact.label}は{fact.value}。）"
    text = ""
    for [state] in bot.decode([bot.encode_prompt(question, extra_system=hint)], seed=0):
        text = state.text
    return text


def main() -> None:
    import torch

    from serifu.inference import load_chatbot
    from serifu.profile import card_facts, states

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--characters", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", default="A,B", help="question sets: A, B or A,B")
    ap.add_argument("--adapters", type=Path, help="<dir>/<id>/adapter instead of the shipped ones")
    ap.add_argument(
        "--fact-hint",
        action="store_true",
        help="experiment: the asked fact's card line after her profile prompt (oracle: the "
        "question's own fact), each reply decoded alone",
    )
    ap.add_argument(
        "--best-of",
        type=int,
        default=1,
        help="candidates per reply, reranked (Chatbot.best_of; the card score asks "
        "serifu.profile_intent when no topic pattern matches)",
    )
    ap.add_argument(
        "--profile-best-of",
        type=int,
        default=0,
        help="the chat/game path with the CPU default (best-of-1, profile questions reranked "
        "over this many candidates); each reply through Chatbot.reply, timed",
    )
    ap.add_argument(
        "--profile-greedy",
        choices=("default", "on", "off"),
        default="default",
        help="the first of a profile question's candidates is the model's mode "
        "(Chatbot.profile_greedy; default: load_chatbot's, on with the CPU default's rerank)",
    )
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU path")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed of every reply")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cast = "akane,himari,hina,kaede,rei,sayaka,shiori,yuzuha"
    ids = [c for c in (args.characters or cast).split(",") if c]
    report = {}
    for cid in ids:
        t0 = time.perf_counter()
        adapter = args.adapters / cid / "adapter" if args.adapters else None
        if args.profile_best_of:
            bot = load_chatbot(
                character=cid,
                adapter=adapter,
                device=args.device,
                profile_best_of=args.profile_best_of,
            )
        else:
            bot = load_chatbot(
                character=cid, adapter=adapter, device=args.device, best_of=args.best_of
            )
        if args.profile_greedy != "default":
            bot.profile_greedy = args.profile_greedy == "on"
        facts = {f.key: f for f in card_facts(bot.card)}
        items = [
            (k, q)
            for name in args.set.split(",")
            for k, qs in SETS[name].items()
            if k in facts
            for q in qs
        ]
        if args.fact_hint:
            texts = [hinted_reply(bot, q, facts[k]) for k, q in items]
        elif args.profile_best_of:
            texts, seconds, reranked = [], [], 0
            for _, q in items:
                t1 = time.perf_counter()
                reranked += bot.candidates(q) > 1
                texts.append(bot.reply(q, seed=args.seed))
                seconds.append(time.perf_counter() - t1)
        elif args.best_of > 1:
            texts = [bot.best_of(q, seed=args.seed) for _, q in items]
        else:
            texts = [g.text for g in bot.generate_batch([q for _, q in items], seed=args.seed)]
        rows: list[dict[str, Any]] = [
            {"fact": k, "q": q, "reply": t, "correct": states(facts[k], t)}
            for (k, q), t in zip(items, texts, strict=True)
        ]
        if bot.rerank is not None:  # which fact the chat path took the line to ask about
            for row in rows:
                row["recognised"] = [f.key for f in bot.rerank.asked(row["q"])]
        right = sum(r["correct"] for r in rows)
        report[cid] = {"correct": right, "n": len(rows), "items": rows}
        report[cid] |= {"seed": args.seed, "profile_greedy": bot.profile_greedy}
        if args.profile_best_of:
            report[cid] |= {
                "reranked": reranked,
                "reply_s_median": round(statistics.median(seconds), 3),
                "reply_s_max": round(max(seconds), 3),
            }
        print(f"{cid}: {right}/{len(rows)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
