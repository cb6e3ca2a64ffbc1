"""A step's common prompt prefix run once per packed row (serifu.training.shared_prefix):
the same loss and LoRA gradients as packing every example whole, on every tiny
architecture (tiny-gemma's sliding window of 16 included), and on real dialogue examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from serifu.accel.varlen import segment_mask
from serifu.config.train import TrainConfig
from serifu.modeling import load_model, resolve_base
from serifu.training.batches import pack_batch
from serifu.training.examples import IGNORE, Example
from serifu.training.loss import loss_sum
from serifu.training.model_setup import shares_prefix
from serifu.training.shared_prefix import (
    MIN_SHARED,
    pack_shared,
    prefix_to_share,
    run_tokens,
    shared_length,
)
from serifu.training.step import collate
from serifu.training.trainer import add_lora, use_fast_attention


def _dialogue(prefix: int, tails: list[tuple[int, int]], seed: int = 0) -> list[Example]:
    """Examples that share ``prefix`` tokens, then (prompt tokens, reply tokens) of their own;
    the loss is on the reply only, as in a dialogue dataset."""
    g = torch.Generator().manual_seed(seed)
    head = torch.randint(6, 1900, (prefix,), generator=g).tolist()
    out = []
    for prompt, reply in tails:
        own = torch.randint(6, 1900, (prompt + reply,), generator=g).tolist()
        ids = head + own
        out.append(Example(ids, [IGNORE] * (prefix + prompt) + own[prompt:]))
    return out


def test_the_shared_length_stops_before_any_learned_token_and_each_last_token() -> None:
    examples = _dialogue(40, [(3, 5), (6, 2), (1, 4)])
    assert shared_length(examples) == 40  # the tails' first tokens differ (random ids)
    assert shared_length(examples[:1]) == 0  # one example shares nothing
    learned_early = Example(examples[0].input_ids, [IGNORE] * 10 + examples[0].input_ids[10:])
    assert shared_length([learned_early, *examples[1:]]) == 9  # the token before a label is its own
    same = Example(examples[0].input_ids[:41], [IGNORE] * 41)
    assert shared_length([same, examples[0]]) == 40  # at most each one's length - 1
    lines = [Example(ex.input_ids, list(ex.input_ids)) for ex in examples]
    assert shared_length(lines) == 0  # learned from the first token: nothing to share


def test_rows_hold_the_prefix_once_then_each_examples_own_tokens() -> None:
    examples = _dialogue(40, [(3, 5), (6, 2), (1, 4)])
    batch = pack_shared(examples, 40)
    assert batch["input_ids"].shape == (1, 40 + 8 + 8 + 5)
    ids, pos, seg = batch["input_ids"][0], batch["position_ids"][0], batch["serifu_segments"][0]
    assert ids[:40].tolist() == examples[0].input_ids[:40]
    assert ids[48:56].tolist() == examples[1].input_ids[40:]
    assert pos.tolist() == [*range(40), *range(40, 48), *range(40, 48), *range(40, 45)]
    assert seg.tolist() == [0] * 40 + [1] * 8 + [2] * 8 + [3] * 5
    assert batch["labels"][0, 48:56].tolist() == examples[1].labels[40:]
    # rows bounded by the tokens they run: each row has its own copy of the prefix
    rows = pack_shared(examples, 40, row_tokens=56)
    assert rows["input_ids"].shape == (2, 56)  # [P, 8, 8] and [P, 5] + a tail of 11
    assert rows["serifu_segments"][1].tolist() == [0] * 40 + [1] * 5 + [2] * 11
    assert (rows["labels"][1, 45:] == IGNORE).all()


def test_the_mask_lets_each_example_see_the_prefix_and_itself_only() -> None:
    seg = torch.tensor([[0, 0, 1, 1, 2]])
    pos = torch.tensor([[0, 1, 2, 3, 2]])
    mask = segment_mask(seg, pos)[0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 0, 0, 1],  # the second example: the prefix and itself, not the first
    ]
    windowed = segment_mask(seg, pos, sliding_window=2)[0, 0].int().tolist()
    assert windowed[3] == [0, 0, 1, 1, 0] and windowed[4] == [0, 1, 0, 0, 1]


def _loss_and_grads(model_id: str, batch_of: str, examples: list[Example]) -> tuple:
    torch.manual_seed(0)  # the same LoRA initialisation
    base = resolve_base(model_id)
    config = TrainConfig(attention="varlen", lora={"dropout": 0.0})
    model = add_lora(
        load_model(base, quantize=False, device="cpu"), config, base.lora_targets, False
    )
    assert use_fast_attention(model, config, "cpu") and shares_prefix(model, config)
    batch = (
        pack_shared(examples, shared_length(examples))
        if batch_of == "shared"
        else pack_batch(examples)
    )
    total, n = loss_sum(model, batch)
    total.backward()
    grads = {k: p.grad for k, p in model.named_parameters() if p.requires_grad}
    return float(total), n, grads, batch["input_ids"].numel()


@pytest.mark.parametrize("model_id", ["tiny-llama", "tiny-gemma", "tiny-gptj", "tiny-neox"])
def test_shared_rows_give_the_loss_and_gradients_of_whole_examples(model_id: str) -> None:
    examples = _dialogue(40, [(3, 5), (20, 2), (1, 12), (7, 7)])
    ref, n_ref, g_ref, tokens_ref = _loss_and_grads(model_id, "whole", examples)
    got, n_got, g_got, tokens_got = _loss_and_grads(model_id, "shared", examples)
    assert tokens_got == tokens_ref - 3 * 40  # the prefix ran once instead of four times
    assert n_got == n_ref and got == pytest.approx(ref, rel=1e-5)
    assert g_ref.keys() == g_got.keys() and g_ref
    for k in g_ref:
        assert torch.allclose(g_ref[k], g_got[k], atol=1e-6, rtol=1e-4), k


def test_a_wrong_mask_would_be_caught() -> None:
    """The comparison above can fail: letting the examples see each other moves the loss
    beyond its tolerance (random tiny weights attend almost evenly, so not by much)."""
    examples = _dialogue(40, [(3, 5), (20, 2), (1, 12)])
    batch = pack_shared(examples, 40)
    leaky = dict(batch, serifu_segments=(batch["serifu_segments"] > 0).long())
    torch.manual_seed(0)
    model = load_model(resolve_base("tiny-llama"), quantize=False, device="cpu")
    from serifu.accel.varlen import use_varlen_attention

    use_varlen_attention(model)
    with torch.no_grad():
        right, _ = loss_sum(model, batch)
        wrong, _ = loss_sum(model, leaky)
        whole, _ = loss_sum(model, pack_batch(examples))
    assert float(right) == pytest.approx(float(whole), rel=1e-5)
    assert float(wrong) != pytest.approx(float(whole), rel=1e-5)


def test_collate_shares_only_when_asked_and_worth_it() -> None:
    examples = _dialogue(40, [(3, 5), (6, 2)])
    shared = collate(examples, packing=True, pad_id=0, device="cpu", share_prefix=True)
    assert "serifu_segments" in shared and shared["input_ids"].shape[1] == 40 + 8 + 8
    plain = collate(examples, packing=True, pad_id=0, device="cpu", share_prefix=False)
    assert "serifu_segments" not in plain and plain["input_ids"].shape[1] == 96
    short = _dialogue(MIN_SHARED - 1, [(3, 5), (6, 2)])
    assert "serifu_segments" not in collate(
        short, packing=True, pad_id=0, device="cpu", share_prefix=True
    )
    padded = collate(examples, packing=False, pad_id=0, device="cpu", share_prefix=True)
    assert "serifu_segments" not in padded


def test_shared_prefix_needs_packing_and_serifus_attention() -> None:
    base = resolve_base("tiny-llama")
    model = load_model(base, quantize=False, device="cpu")
    assert not shares_prefix(model, TrainConfig())  # sdpa: no segment mask there
    from serifu.accel.varlen import use_varlen_attention

    use_varlen_attention(model)
    assert shares_prefix(model, TrainConfig())
    assert not shares_prefix(model, TrainConfig(shared_prefix="off"))
    assert not shares_prefix(model, TrainConfig(packing=False))


def test_real_dialogue_examples_share_their_system_prompt(dialogue_dir: Path) -> None:
    """The sample cast's dialogue rows, encoded as the trainer does (template + card)."""
    from serifu.modeling import load_tokenizer
    from serifu.prompts.chat_template import template_for
    from serifu.training.data import load_dataset_folder
    from serifu.training.examples import encode_rows

    base = resolve_base("tiny-llama")
    tokenizer = load_tokenizer(base)
    folder = load_dataset_folder(dialogue_dir)
    examples = encode_rows(
        folder.splits["train"],
        fmt="dialogue",
        tokenizer=tokenizer,
        template=template_for(base, tokenizer),
        system=folder.system_prompt(),
        add_special_tokens=base.add_special_tokens,
        max_length=1024,
    )[:8]
    prefix = shared_length(examples)
    whole = sum(len(ex) for ex in examples)
    assert prefix >= MIN_SHARED
    assert prefix * (len(examples) - 1) > whole / 2  # most of the step's tokens are shared
    model = load_model(base, quantize=False, device="cpu")
    from serifu.accel.varlen import use_varlen_attention

    use_varlen_attention(model)
    with torch.no_grad():
        shared, n_shared = loss_sum(model, pack_shared(examples, prefix))
        ref, n_ref = loss_sum(model, pack_batch(examples))
    assert n_shared == n_ref and float(shared) == pytest.approx(float(ref), rel=1e-5)


def test_run_tokens_count_what_the_rows_run_for_the_memory_policy() -> None:
    examples = _dialogue(40, [(3, 5), (20, 2), (1, 12), (7, 7)])
    whole = sum(len(ex) for ex in examples)
    assert run_tokens(examples, share=False) == whole
    assert run_tokens(examples, share=True) == pack_shared(examples, 40)["input_ids"].numel()
    assert run_tokens(examples, share=True, row_tokens=80) == 2 * 70 < whole  # [P 8 22] [P 13 14]
    # rows so short that the prefix's copies and the rows' tails outweigh it: packed whole
    assert pack_shared(examples, 40, row_tokens=64)["input_ids"].numel() > whole
    assert prefix_to_share(examples, row_tokens=64) == 0
    assert run_tokens(examples, share=True, row_tokens=64) == whole
    assert (
        run_tokens(_dialogue(MIN_SHARED - 1, [(3, 5), (6, 2)]), share=True)
        == 2 * (MIN_SHARED - 1) + 16
    )


def test_the_memory_policy_sizes_the_step_that_runs() -> None:
    from serifu.training.memory_policy import choose_checkpointing

    model = load_model(resolve_base("tiny-llama"), quantize=False, device="cpu")
    config = TrainConfig(max_tokens=16384, gradient_checkpointing=True)
    assert choose_checkpointing(model, config, 1870).on  # a fixed setting stays as set
    off = TrainConfig(max_tokens=16384, gradient_checkpointing=False)
    assert not choose_checkpointing(model, off, 1870).on


def test_serifu_train_shares_the_prompt_and_learns_the_same(
    dialogue_dir: Path, tmp_path: Path
) -> None:
    """The product's whole run on the sample cast's dialogue data (rei's card as system
    prompt): the same losses with the prefix shared or not, and serifu.json says what ran."""
    import json

    from serifu.training import Trainer

    results = {}
    for setting in ("auto", "off"):
        cfg = TrainConfig(
            max_steps=2,
            batch_size=6,
            save_steps=0,
            eval=False,
            report_to="none",
            shared_prefix=setting,
        )
        cfg.lora.dropout = 0.0
        out = tmp_path / setting
        results[setting] = Trainer("tiny-llama", dialogue_dir, out, cfg, progress=False).fit()
        record = json.loads((out / "serifu.json").read_text(encoding="utf-8"))["shared_prefix"]
        assert record["setting"] == setting and record["on"] == (setting == "auto")
        if setting == "auto":
            assert record["most_run_tokens"] < record["most_step_tokens"] / 2
    shared, whole = results["auto"].info["loss"], results["off"].info["loss"]
    assert shared == pytest.approx(whole, rel=1e-4)
