"""Helpers for the data tests: the Aozora plays and what MANIFEST.md says about them."""

from __future__ import annotations

from pathlib import Path

import pytest

# (file, reader options, top speakers with MANIFEST.md's speech counts)
PLAYS: list[tuple[str, dict[str, object], list[tuple[str, int]]]] = [
    ("001154_52082_kamifusen.txt", {}, [("夫", 131), ("妻", 128)]),
    ("001154_44776_shuuu.txt", {}, [("朋子", 108), ("恒子", 82), ("譲", 57)]),
    ("000083_502_chichi-kaeru.txt", {}, [("賢一郎", 38), ("母", 32), ("新二郎", 30)]),
    (
        "000081_1921_kiga-jinei.txt",
        {"aliases": {"バナナン大将": "大将"}},
        [("大将", 64), ("特務曹長", 56), ("曹長", 11)],
    ),
    ("000082_1309_bancho-sarayashiki.txt", {}, [("播磨", 59), ("お菊", 37), ("十太夫", 21)]),
    ("000083_1051_gimin-jinbee.txt", {}, [("おきん", 69), ("甚兵衛", 48), ("甚吉", 39)]),
    ("000264_42773_romeo-to-juliet.txt", {}, [("ロミオ", 163), ("ヂュリ", 118), ("乳母", 92)]),
    ("000082_1312_shuzenji-monogatari.txt", {}, [("夜叉王", 33), ("頼家", 33), ("かつら", 30)]),
]

ROMEO = "000264_42773_romeo-to-juliet.txt"


@pytest.fixture
def play(aozora_dir: Path):  # type: ignore[no-untyped-def]
    def path(name: str) -> Path:
        p = aozora_dir / name
        if not p.is_file():
            pytest.skip(f"{name} is not in the corpus")
        return p

    return path
