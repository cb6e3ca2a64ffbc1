#!/usr/bin/env python3
"""Profile-QA on questions worded differently from both the card's and augmentation's.

The card's own ``[[questions]]`` are the evaluation's test; the augmentation
(``serifu.data.augment``) trains on its own templates. These questions use other words
again (written for this check: sets A and B one or two per fact, set C three or four, set D
four, by a writer who saw nothing of this repository), so
a heroine that only memorised surface forms fails them. A reply is right when it states
the fact in one of the forms ``serifu.profile`` accepts. Runs on the default chat path
(CPU: best-of-1, her output vocabulary), with her profile prompt.

    python bench/profile_paraphrase.py [--characters akane,rei] [--out FILE]

``--recognition-only`` loads no model: it asks the chat path's recognition alone (the
reranker's ``asked``: topic patterns, then the question classifier at its threshold) which
fact each question of every set asks, and whether a :data:`NEGATIVES` line or one of the
evaluation's 100 openers triggers one.

    python bench/profile_paraphrase.py --recognition-only --set A,B,C [--out FILE]
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
# set C (2026-12-03, session 8) was written before recognition was changed or augmentation's
# templates read: casual, polite, indirect, kana and slangy wordings, 3-4 per fact (its
# 「なんねんせい？」 and 「血の型ってなに？」 were dropped: the classifier now learns every
# template in kana too, and they are the kana of augmentation's 「何年生？」 and 「血の型って何？」).
PARAPHRASES_C = {
    "age": [
        "失礼かもだけど、おいくつですか？",
        "としいくつ？",
        "見た目より大人っぽいけど、実際は何歳なん？",
        "俺と同い年くらいかな？何歳？",
    ],
    "grade": [
        "高校の何年生なんですか？",
        "先輩なの？後輩なの？学年おしえて",
        "今って一年生だっけ、二年生だっけ？",
    ],
    "birthday": [
        "たんじょーびいつ？プレゼント用意したいし",
        "何月何日に生まれたんですか？",
        "誕生日もう過ぎちゃった？いつだっけ",
        "ケーキ買いたいから生まれた日おしえて",
    ],
    "zodiac": [
        "今朝の占い見た？そっちは何座？",
        "せいざってなに座ですか？",
        "十二星座だとどこに入るの？",
    ],
    "blood_type": [
        "けつえきがた何？",
        "几帳面だしA型っぽいけど、当たり？",
        "献血のとき何型って言われた？",
    ],
    "height_cm": [
        "しんちょう何せんち？",
        "並ぶとちっちゃく見えるけど、何cmあるの？",
        "背の高さってどれくらいですか？",
    ],
    "hobbies": [
        "しゅみ何？",
        "休日はいつも何してますか？",
        "家でヒマなときって何してんの？",
        "最近ハマってることある？",
    ],
    "specialty": [
        "とくぎってある？",
        "これだけは誰にも負けないってこと、ある？",
        "得意なことは何ですか？",
    ],
    "favorite_food": [
        "だいこうぶつ何？",
        "何でもおごるって言ったら、何食べたい？",
        "食べ物で好きなのってなんですか？",
        "好物おしえて～",
    ],
    "disliked_food": [
        "にがてな食べ物ある？",
        "好き嫌いある？何がダメ？",
        "これだけは無理！って食べ物は？",
        "嫌いな食べもんってなんですか？",
    ],
    "club": [
        "ぶかつ何部？",
        "何部に所属してるんですか？",
        "放課後って部活あるの？何やってる？",
    ],
    "friends": [
        "いつもつるんでるのって誰？",
        "親友って呼べる人、いますか？",
        "クラスでなかいい子だれ？",
    ],
}
# set D (2026-12-04, session 15) was written by a helper that saw none of this repository
# (no templates, no earlier sets, no code): how a native speaker asks each fact in a chat, four
# ways each; its one line equal to an earlier set's (「高校の何年生なんですか？」, set C) is left out.
PARAPHRASES_D = {
    "age": [
        "ねえ、今いくつなん？",
        "失礼かもしれないですけど、おいくつですか？",
        "大人っぽく見えるけど、実際は何歳なの？",
        "同い年かなって思ってたんだけど、年っていくつだっけ？",
    ],
    "grade": [
        "今って何年生だっけ？",
        "先輩なのか後輩なのか分かんないんだけど、学年どこ？",
        "もしかして一年生だったりする？",
    ],
    "birthday": [
        "たんじょうびっていつなん？",
        "プレゼント用意したいから、生まれた日教えてよ",
        "お誕生日はいつですか？",
        "そういえばさ、何月何日生まれなの？",
    ],
    "zodiac": [
        "星占い見てたんだけどさ、何座なの？",
        "今朝の占いランキング見た？そういえば星座なんだったっけ",
        "相性占いをしたいので、星座を教えてもらえますか？",
        "せいざって何座？",
    ],
    "blood_type": [
        "血液型なに型？",
        "A型っぽいってよく言われない？実際は何型なん？",
        "血液型占いの話になったんですけど、何型ですか？",
        "もしかしてO型だったりする？",
    ],
    "height_cm": [
        "身長なんセンチあるの？",
        "並ぶと意外とちっちゃいね。背ってどのくらい？",
        "身長は何センチですか？",
        "モデルさんみたいにスラッとしてるよね、ちなみに何cmあるの？",
    ],
    "hobbies": [
        "休みの日って何してることが多い？",
        "最近ハマってることとかある？",
        "ご趣味は何ですか？",
        "ひまな時なにしてんの？しゅみとかある？",
    ],
    "specialty": [
        "特技ってなんかある？",
        "これだけは誰にも負けない！ってこと、ある？",
        "得意なことって何ですか？",
        "文化祭でなにか披露するとしたら、自分の得意なことってなに？",
    ],
    "favorite_food": [
        "好きな食べ物なに？",
        "今度ごはん行くとき参考にしたいんだけど、何食べるのが好き？",
        "好物はなんですか？",
        "これさえあれば幸せ〜って食べ物ある？",
    ],
    "disliked_food": [
        "にがてな食べ物ってある？",
        "給食でいつも残してたものとかあった？嫌いな食べ物教えて",
        "お店を予約するので、苦手な食べ物があれば教えてください",
        "好き嫌い多いほう？これだけは無理って食べ物なに？",
    ],
    "club": [
        "部活なにやってんの？",
        "放課後っていつも何部に行ってるの？",
        "何部に入ってるんですか？",
        "帰宅部っぽくないよね。どこの部に所属してるの？",
    ],
    "friends": [
        "学校で仲いい子って誰？",
        "いつも一緒にいる友達って誰なん？",
        "仲の良いお友達のことを教えてください",
        "休み時間とか、よくつるんでるのって誰なの？",
    ],
}
SETS = {"A": PARAPHRASES, "B": PARAPHRASES_B, "C": PARAPHRASES_C, "D": PARAPHRASES_D}
# lines that look like profile questions but ask for none of her facts (greetings, small talk,
# off-card tastes): recognition should return no fact for them
NEGATIVES = [
    "部活お疲れさま！",
    "誕生日おめでとう！",
    "好きな色は？",
    "好きな季節はいつ？",
    "好きな教科はなに？",
    "今日の給食おいしかったね",
    "お腹すいたー、何か食べに行こう",
    "何歳になっても一緒にいようね",
    "何年ぶりだろう、ここに来るの",
    "占いって信じる？",
    "星がきれいだね",
    "背中に何かついてるよ",
    "先輩がさっき呼んでたよ",
    "友達と遊びに行くんだ",
    "ケーキ焼いたんだけど食べる？",
    "血が出ちゃった、絆創膏ある？",
    "今日の部活は何時まで？",
    "テスト何点だった？",
    # set D's writer's look-alikes (session 15)
    "俺の誕生日、来週なんだよね",
    "部活おつかれさま！",
    "今度一緒に何か食べに行かない？",
    "最近身長伸びた気がするんだよな",
    "友達に君のこと話したらうらやましがられたよ",
    "今夜は星がきれいだね",
    "指切って血が出ちゃった、絆創膏ある？",
    "年末年始はどう過ごす予定？",
    "俺って何型に見える？",
    "好きな食べ物の話してたらお腹すいてきた",
    "部活のあと、一緒に帰ろうよ",
    "星座占いって信じるタイプ？",
    "友達の誕生日プレゼント、何がいいと思う？",
    "今年の文化祭、楽しみだね",
]


def recognise(question: str, facts: list[Any]) -> dict[str, Any]:
    """What the chat path takes ``question`` to ask (``Reranker.asked``), and its parts."""
    from serifu.inference.rerank import Reranker
    from serifu.profile import asked_facts
    from serifu.profile_intent import question_fact

    key, p = question_fact(question)
    return {
        "recognised": [f.key for f in Reranker(facts=facts).asked(question)],
        "patterns": [f.key for f in asked_facts(facts, question)],
        "classifier": [key, round(p, 3)],
    }


def recognition_report(ids: list[str], sets: list[str]) -> dict[str, Any]:
    """Per set (and ``negatives``, and the evaluation's 100 ``openers``, of which a few do ask
    a fact): each question's recognition for every heroine, with counts: ``right`` (only its
    fact), ``extra`` (its fact and another), ``wrong``, ``missed``; for negatives and openers
    ``triggered`` (any fact)."""
    from serifu import plugins
    from serifu.profile import card_facts
    from serifu.queries import builtin_openers

    cards = {cid: card_facts(plugins.get_character(cid).card()) for cid in ids}
    report: dict[str, Any] = {}
    named = [(name, [(k, q) for k, qs in SETS[name].items() for q in qs]) for name in sets]
    negatives = [("negatives", NEGATIVES), ("openers", builtin_openers())]
    for name, items in [*named, *[(n, [("none", q) for q in qs]) for n, qs in negatives]]:
        rows, counts = [], dict.fromkeys(("right", "extra", "wrong", "missed", "triggered"), 0)
        for fact, q in items:
            for cid, facts in cards.items():
                row = {"character": cid, "fact": fact, "q": q} | recognise(q, facts)
                got = row["recognised"]
                if fact == "none":
                    verdict = "triggered" if got else "right"
                elif not got:
                    verdict = "missed"
                else:
                    verdict = ("right" if got == [fact] else "extra") if fact in got else "wrong"
                row["verdict"] = verdict
                counts[verdict] += 1
                rows.append(row)
        report[name] = {"n": len(rows), "counts": counts, "items": rows}
    return report


def print_recognition(report: dict[str, Any], n_characters: int) -> None:
    """A table of counts per set, then every question not recognised as its fact alone."""
    print(f"recognition ({n_characters} heroines; counts over question x heroine)")
    print(f"{'set':<10}{'n':>5}{'right':>7}{'extra':>7}{'wrong':>7}{'missed':>8}{'trig.':>7}")
    for name, part in report.items():
        c = part["counts"]
        print(
            f"{name:<10}{part['n']:>5}{c['right']:>7}{c['extra']:>7}{c['wrong']:>7}"
            f"{c['missed']:>8}{c['triggered']:>7}"
        )
    for name, part in report.items():
        seen: dict[tuple[str, str, str], int] = {}
        for row in part["items"]:
            if row["verdict"] != "right":
                key = (row["fact"], row["q"], ",".join(row["recognised"]) or "-")
                seen[key] = seen.get(key, 0) + 1
        for (fact, q, got), n in seen.items():
            print(f"  {name}: {q} [{fact}] -> {got} ({n}/{n_characters})")


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
    ap.add_argument("--set", default="A,B", help="question sets, e.g. A, B, C or A,B,C")
    ap.add_argument(
        "--recognition-only",
        action="store_true",
        help="no model: which fact the chat path recognises in each question (and in the "
        "negative lines), a table and --out JSON",
    )
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
    ap.add_argument(
        "--card-answers",
        action="store_true",
        help="with --profile-best-of: the chat/game path's card answers (a question whose "
        "candidates all miss the fact gets her card's answer in her voice); each row records "
        "`grounded`, and `model_correct` counts the model's own right answers",
    )
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU path")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed of every reply")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cast = "akane,himari,hina,kaede,rei,sayaka,shiori,yuzuha"
    ids = [c for c in (args.characters or cast).split(",") if c]
    if args.recognition_only:
        recognition = recognition_report(ids, args.set.split(","))
        print_recognition(recognition, len(ids))
        if args.out:
            text = json.dumps(recognition, ensure_ascii=False, indent=1)
            args.out.write_text(text, encoding="utf-8")
        return
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
                card_answers=args.card_answers,
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
            texts, seconds, reranked, grounded = [], [], 0, []
            for _, q in items:
                t1 = time.perf_counter()
                reranked += bot.candidates(q) > 1
                before = bot.grounded_replies
                texts.append(bot.reply(q, seed=args.seed))
                seconds.append(time.perf_counter() - t1)
                grounded.append(bot.grounded_replies > before)
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
        if args.profile_best_of and args.card_answers:
            for row, g in zip(rows, grounded, strict=True):
                row["grounded"] = g
            report[cid]["grounded"] = sum(grounded)
            report[cid]["model_correct"] = sum(r["correct"] and not r["grounded"] for r in rows)
        report[cid] |= {"seed": args.seed, "profile_greedy": bot.profile_greedy}
        if args.profile_best_of:
            report[cid] |= {
                "reranked": reranked,
                "reply_s_median": round(statistics.median(seconds), 3),
                "reply_s_max": round(max(seconds), 3),
            }
        extra = f", model alone {report[cid]['model_correct']}" if "grounded" in report[cid] else ""
        print(f"{cid}: {right}/{len(rows)}{extra} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
