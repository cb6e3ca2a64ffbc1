"""A small deterministic tokenizer for models made locally (tests, demos, plugin examples)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def byte_level_bpe(texts: Iterable[str], vocab_size: int, special_tokens: Sequence[str]) -> Any:
    """A byte-level BPE (``tokenizers.Tokenizer``) trained on ``texts`` (sorted: deterministic).

    Byte-level: any text encodes, Japanese included. ``special_tokens[1]`` is put in front
    of every encoding (the BOS, e.g. ``<s>``).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sorted(texts), trainer=trainer)
    bos = special_tokens[1]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, 1)]
    )
    return tok
