"""The tied embedding/head table of the uint4 reply path, stored once in int8 rows
(serifu.accel.int8_table), on tiny Gemma 3 models built from config (tied, scaled embeddings).

On CUDA GemLite's A16W8 kernel is the head (bench/gpu/uint4_check.py checks it against the
dequantised table); here a float32 matmul over the same codes stands in for it, so the wiring
is checked: the embedding and head read one int8 copy, and the model computes what the CPU
simulation (the table rounded in place) computes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from serifu.accel.int8_table import (
    INT8_GROUP,
    Int8Embedding,
    int8_dequantize,
    int8_rows,
    round_int8_rows_,
    tie_int8_table_,
)
from serifu.errors import SerifuError
from serifu.inference.quantize import _head_is_tied, prepare_reply_weights, weight_bytes


class _FloatInt8Head(torch.nn.Module):
    """The output head over int8 codes × group scales, in float32 (what GemLite's 8-bit layer
    computes)."""

    def __init__(self, codes: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("codes", codes)
        self.register_buffer("scales", scales)
        self.out_features = codes.shape[0]
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() @ int8_dequantize(self.codes, self.scales).t()).to(self.dtype)


def _gemma() -> Any:
    """The tiny Gemma 3 test model (tied, scaled embeddings), random weights."""
    from transformers import AutoModelForCausalLM

    from serifu_models.tiny import TINY_MODELS

    torch.manual_seed(0)
    spec = next(m for m in TINY_MODELS if m.id == "tiny-gemma")
    model = AutoModelForCausalLM.from_config(spec.build_config()).eval()
    assert _head_is_tied(model)
    return model


def _ids() -> torch.Tensor:
    return torch.randint(3, 300, (1, 20), generator=torch.Generator().manual_seed(2))


def test_int8_groups_round_trip_within_half_a_step() -> None:
    w = torch.randn(40, 64, generator=torch.Generator().manual_seed(1))
    w[5] = 0.0  # an all-zero row: the scale clamps, the row survives
    w[7, 3] = 40.0  # an outlier costs its own group of 32 only
    codes, scales = int8_rows(w, 32)
    assert codes.dtype == torch.int8 and scales.shape == (40, 2)
    peaks = codes.reshape(40, 2, 32).abs().amax(-1)
    assert bool((peaks[torch.arange(40) != 5] == 127).all())  # each group's peak on the grid
    err = (int8_dequantize(codes, scales) - w).abs()
    assert bool((err <= scales.repeat_interleave(32, dim=1) / 2 + 1e-7).all())
    assert float(err[5].max()) == 0.0
    assert float(err[7, 32:].max()) <= float(w[7, 32:].abs().max()) / 254 + 1e-7
    per_row = int8_dequantize(*int8_rows(w, 64))
    assert float((per_row - w)[7, 32:].norm()) > 4 * float(err[7, 32:].norm())  # one scale a row
    with pytest.raises(ValueError, match="divisible by 32"):
        int8_rows(torch.zeros(4, 48), 32)


def test_one_int8_table_computes_what_the_cpu_simulation_computes() -> None:
    """Embedding (with Gemma's scale) and head read one int8 copy; the logits and greedy tokens
    equal those of the same model with its table rounded in place (the CPU's uint4 path)."""
    from serifu.accel.decode import StaticDecoder

    simulated = _gemma()
    table = simulated.get_input_embeddings().weight
    before = table.detach().clone()
    round_int8_rows_(table)
    assert not torch.equal(table, before)
    assert _head_is_tied(simulated)  # rounded in place: still tied
    one = tie_int8_table_(copy.deepcopy(_gemma()), head_factory=_FloatInt8Head)
    embed, head = one.get_input_embeddings(), one.get_output_embeddings()
    assert isinstance(embed, Int8Embedding) and embed.embed_scale is not None
    assert embed.codes.untyped_storage().data_ptr() == head.codes.untyped_storage().data_ptr()
    assert _head_is_tied(one)
    # the table is counted once, in int8 with its scales: a quarter of float32's bytes
    saved = weight_bytes(simulated) - weight_bytes(one)
    groups = 64 // INT8_GROUP
    vocab = table.shape[0]
    assert saved == table.numel() * 4 - (table.numel() + vocab * groups * 4)
    with torch.no_grad():
        want = simulated(input_ids=_ids()).logits
        got = one(input_ids=_ids()).logits
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    ref = simulated.generate(input_ids=_ids(), max_new_tokens=6, do_sample=False, pad_token_id=0)
    decoder = StaticDecoder(one, max_len=32, batch_size=1, graph=False)
    tokens = torch.cat(list(decoder.greedy(_ids(), max_new_tokens=6)), 1)
    assert torch.equal(tokens, ref[:, 20:])


def test_uint4_rounds_a_tied_table_to_int8_rows_unless_asked_not_to() -> None:
    for table, changed in (("int8", True), ("bf16", False)):
        model = _gemma()
        before = model.get_input_embeddings().weight.detach().clone()
        out = prepare_reply_weights(model, "uint4", table=table)
        weight = out.get_input_embeddings().weight
        assert _head_is_tied(out)
        assert (not torch.equal(weight, before)) is changed
        if changed:
            assert torch.allclose(weight, int8_dequantize(*int8_rows(before)), atol=1e-7)
    with pytest.raises(SerifuError, match="table must be one of int8, bf16"):
        prepare_reply_weights(_gemma(), "uint4", table="int4")


def test_her_vocabulary_rows_come_from_the_int8_table() -> None:
    from serifu.inference.vocab import OutputVocabulary

    model = tie_int8_table_(_gemma(), head_factory=_FloatInt8Head)
    vocab = OutputVocabulary([1, 7, 42, 299])
    rows = vocab.head(model)
    embed = model.get_input_embeddings()
    assert rows is not None and rows.shape == (4, 64)
    want = int8_dequantize(embed.codes, embed.scales)[torch.tensor([1, 7, 42, 299])]
    assert torch.equal(rows, want)
    assert vocab.head(model) is rows  # taken once per table


def test_without_gemlites_head_the_table_stays_in_bf16_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """GemLite's 8-bit head cannot be built here (no GemLite, no CUDA): the uint4 path keeps
    the table as it was, untouched and tied, and says why in one line."""
    try:
        import gemlite  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("GemLite is installed: its head would be built")
    from serifu.inference.quantize import _int8_table_or_notice

    model = _gemma()
    before = model.get_input_embeddings().weight.detach().clone()
    _int8_table_or_notice(model)
    assert not isinstance(model.get_input_embeddings(), Int8Embedding)
    assert torch.equal(model.get_input_embeddings().weight, before) and _head_is_tied(model)
    err = capsys.readouterr().err
    assert "table stays in bf16" in err and "ModuleNotFoundError" in err
