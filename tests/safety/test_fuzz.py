"""Fuzz: readers, card and save loaders get random bytes and truncations of real files.

Each must give a valid result or its clear error (SerifuError; SaveError for saves), never
another exception or a crash. Fixed seeds and a bounded number of cases: a few seconds.
The morphological analyser (which can crash the process) is fuzzed in a subprocess.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from serifu.data.io import get_source, read_file
from serifu.errors import SerifuError

from .conftest import ROOT

CAST = ROOT / "packages/core/src/serifu/cast"
CASES = 40
SPECIALS = [
    b'"', b"\n", b"\r", b"\t", b",", b"\x00", b"\xff", b"\xe3\x80", "【".encode(), "「".encode(),
    "」".encode(), "［＃".encode(), "※".encode(), "《".encode(), b"{", b"}", b"[scene]", b"//",
    b"\xef\xbb\xbf", b"\xff\xfe",
]  # fmt: skip


def mutations(data: bytes, seed: int, n: int = CASES) -> Iterator[bytes]:
    """Empty, truncations, flipped bytes, inserted syntax characters, splices, random bytes."""
    rng = random.Random(seed)
    yield b""
    for i in range(n):
        kind = i % 5
        cut = rng.randrange(len(data) + 1)
        if kind == 0:
            yield data[:cut]
        elif kind == 1:
            out = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                if out:
                    out[rng.randrange(len(out))] = rng.randrange(256)
            yield bytes(out)
        elif kind == 2:
            out = bytearray(data)
            for _ in range(rng.randint(1, 6)):
                out[rng.randrange(len(out) + 1) : 0] = rng.choice(SPECIALS)
            yield bytes(out)
        elif kind == 3:
            other = rng.randrange(len(data) + 1)
            yield data[:cut] + data[min(cut, other) : max(cut, other)] + data[cut:]
        else:
            yield rng.randbytes(rng.randint(1, 400))


def check(case: bytes, path: Path, load: Callable[[Path], Any], errors: tuple[type, ...]) -> None:
    path.write_bytes(case)
    try:
        load(path)
    except errors:
        pass
    except Exception as exc:
        raise AssertionError(
            f"{type(exc).__name__}: {exc} on {len(case)} bytes starting {case[:80]!r}"
        ) from exc


READERS: list[tuple[str, Path, dict[str, Any]]] = [
    ("script", CAST / "akane" / "script.txt", {}),
    ("script", ROOT / "examples/scripts/mixed_styles.txt", {"tag_styles": ["bracket", "colon", "hash"]}),
    ("lines", ROOT / "examples/scripts/cast_format.txt", {"blank_line_scenes": True}),
]  # fmt: skip


def _table(tmp_path: Path, suffix: str) -> Path:
    rows = [("茜", "おはよう、今日もええ天気やな", "1"), ("主人公", 'そうだね、"晴れ"', "1")]
    path = tmp_path / f"sample{suffix}"
    if suffix == ".jsonl":
        text = "".join(
            json.dumps({"speaker": s, "text": t, "scene": c}, ensure_ascii=False) + "\n"
            for s, t, c in rows
        )
    else:
        sep = "\t" if suffix == ".tsv" else ","
        quote = (lambda v: '"' + v.replace('"', '""') + '"') if sep == "," else (lambda v: v)
        text = f"speaker{sep}text{sep}scene\n" + "".join(
            sep.join(quote(v) for v in row) + "\n" for row in rows
        )
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("index", range(len(READERS)))
def test_readers_never_raise_anything_but_a_clear_error(tmp_path: Path, index: int) -> None:
    source_id, sample, options = READERS[index]
    source = get_source(source_id)
    target = tmp_path / f"fuzz{sample.suffix}"
    data = sample.read_bytes()[:6000]
    for case in mutations(data, seed=index):
        check(case, target, lambda p: read_file(p, source, options), (SerifuError,))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_table_reader_fuzz(tmp_path: Path, suffix: str) -> None:
    source = get_source("table")
    data = _table(tmp_path, suffix).read_bytes()
    target = tmp_path / f"fuzz{suffix}"
    for case in mutations(data, seed=len(suffix), n=60):
        check(case, target, lambda p: read_file(p, source), (SerifuError,))


@pytest.mark.corpus
def test_aozora_reader_fuzz(tmp_path: Path, aozora_dir: Path) -> None:
    play = aozora_dir / "000083_502_chichi-kaeru.txt"
    if not play.is_file():
        pytest.skip(f"{play.name} is not in the corpus")
    source = get_source("aozora-play")
    target = tmp_path / "fuzz.txt"
    for case in mutations(play.read_bytes()[:8000], seed=7, n=30):
        check(case, target, lambda p: read_file(p, source), (SerifuError,))


def test_card_toml_loader_fuzz(tmp_path: Path) -> None:
    from serifu.characters import load_card

    target = tmp_path / "card.toml"
    for case in mutations((CAST / "akane" / "card.toml").read_bytes(), seed=11):
        check(case, target, load_card, (SerifuError,))


def test_card_file_loader_fuzz(tmp_path: Path) -> None:
    cards = pytest.importorskip("serifu.cards")
    png = pytest.importorskip("serifu.cards.png")
    v2 = {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {"name": "茜", "description": "軽音部のベース担当", "first_mes": "おはよう！"},
    }
    raw_json = json.dumps(v2, ensure_ascii=False).encode()
    chara = base64.b64encode(raw_json).decode("ascii")
    samples = {
        ".json": raw_json,
        ".png": png.with_text_chunks(png.blank_png(), {"chara": chara}, "card.png"),
    }
    for suffix, data in samples.items():
        target = tmp_path / f"card{suffix}"
        target.write_bytes(data)
        assert cards.read_card_file(target).data["name"] == "茜"  # the sample itself is valid
        for case in mutations(data, seed=13):
            check(case, target, cards.read_card_file, (SerifuError,))


def test_save_loader_fuzz(tmp_path: Path) -> None:
    from serifu_game.save import SaveError, read_slot, slot_path, write_slot
    from serifu_game.state import GameState

    write_slot(1, GameState(character="akane", day=2, affection=40), tmp_path)
    data = slot_path(1, tmp_path).read_bytes()
    for case in mutations(data, seed=17, n=60):
        check(case, slot_path(1, tmp_path), lambda p: read_slot(1, tmp_path), (SaveError,))


TAGGER_FUZZ = r"""
import random, sys
from serifu.data.stats import first_person_counts, sentence_endings, _tokenizer
from serifu.evaluation.morph import morphemes
tagger = _tokenizer()
if tagger is None:
    sys.exit(3)
rng = random.Random(5)
alphabet = "あいうえおかきくけこ漢字。、！？…「」 \n\tabcABC123" + "".join(map(chr, range(0x3000, 0x3040)))
texts = ["", " ", "\n" * 50, "あいうえお" * 4_000]  # (1 M chars: test_readers_safety)
texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 3000))) for _ in range(20)]
for text in texts:
    sentence_endings([text], tagger)
    first_person_counts([text], tagger)
    morphemes(text)
print("ok")
"""


def test_tagger_fuzz_never_crashes_the_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", TAGGER_FUZZ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode == 3:
        pytest.skip("fugashi is not installed")
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "ok"
