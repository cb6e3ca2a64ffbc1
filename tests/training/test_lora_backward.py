"""``train.lora_backward = "lean"`` (serifu.accel.lora_train): PEFT's LoRA math with less kept
for backward. Checked against PEFT, against a by-hand reference with the same dropout mask,
under gradient checkpointing, and by the bytes autograd keeps."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from serifu.accel.lora_train import (
    draw_mask,
    lean_lora,
    pack_mask,
    unpack_mask,
    use_lean_lora,
)
from serifu.config.train import TrainConfig

torch.set_num_threads(1)


TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _lora_model(
    dtype: torch.dtype,
    dropout: float,
    *,
    targets: tuple[str, ...] = TARGETS,
    layers: int | None = None,
) -> Any:
    """tiny-llama (``layers`` decoder layers) with a PEFT LoRA whose B is not zero."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from serifu_models.tiny import TINY_MODELS

    torch.manual_seed(0)
    spec = next(m for m in TINY_MODELS if m.id == "tiny-llama")
    config = spec.build_config()
    if layers is not None:
        config.num_hidden_layers = layers
    base = AutoModelForCausalLM.from_config(config, dtype=dtype)
    for p in base.parameters():
        p.requires_grad_(False)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=dropout, target_modules=list(targets))
    model = get_peft_model(base, lora)
    for name, p in model.named_parameters():  # B starts at zero: give it values to test
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    model.train()
    return model


def _loss_and_grads(
    model: Any, ids: torch.Tensor, seed: int | None = None
) -> tuple[float, dict[str, torch.Tensor]]:
    """One step's loss and LoRA gradients (``seed``: drawn from it, the same masks each run)."""
    model.zero_grad(set_to_none=True)
    if seed is not None:
        torch.manual_seed(seed)
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return float(out.loss), grads


def test_masks_pack_eight_to_a_byte_and_back() -> None:
    keep = torch.rand(3, 5, 64) > 0.3
    packed = pack_mask(keep)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 5, 8)
    assert torch.equal(unpack_mask(packed, 64), keep)
    drawn = draw_mask(torch.zeros(4000, 64), 0.25)
    assert drawn.dtype == torch.bool and abs(float(drawn.float().mean()) - 0.75) < 0.01


def test_without_dropout_the_model_trains_as_with_peft() -> None:
    model = _lora_model(torch.float32, dropout=0.0)
    ids = torch.randint(3, 200, (2, 24))
    peft_loss, peft_grads = _loss_and_grads(model, ids)
    assert use_lean_lora(model) == 14  # 2 layers x 7 targets
    lean_loss, lean_grads = _loss_and_grads(model, ids)
    assert abs(lean_loss - peft_loss) <= 1e-6 * abs(peft_loss)
    assert lean_grads.keys() == peft_grads.keys() and len(peft_grads) == 28
    for k, g in peft_grads.items():
        assert float((lean_grads[k] - g).norm()) <= 1e-5 * float(g.norm()) + 1e-9, k


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_with_dropout_it_is_the_math_of_its_own_mask(dtype: torch.dtype) -> None:
    """Against autograd on ``scaling * B(A(dropout(x)))`` written out with the same mask, the
    matmuls in float32 (the LoRA weights' dtype) as PEFT does without autocast."""
    torch.manual_seed(1)
    x = torch.randn(2, 10, 64, dtype=dtype, requires_grad=True)
    a = torch.randn(8, 64, requires_grad=True)
    b = torch.randn(48, 8, requires_grad=True)
    g = torch.randn(2, 10, 48)
    state = torch.get_rng_state()
    out = lean_lora(x, a, b, 0.3, 2.0)
    out.backward(g)
    assert out.dtype == torch.float32
    torch.set_rng_state(state)
    keep = draw_mask(x, 0.3)  # the same draw
    x2, a2, b2 = (t.detach().clone().requires_grad_() for t in (x, a, b))
    ref = ((x2.float() * keep / 0.7) @ a2.t()) @ b2.t() * 2.0
    ref.backward(g)
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5)
    for mine, theirs in ((x, x2), (a, a2), (b, b2)):
        assert mine.grad is not None and theirs.grad is not None
        assert mine.grad.dtype == theirs.grad.dtype
        assert torch.allclose(mine.grad.float(), theirs.grad.float(), rtol=1e-2, atol=1e-3)


def test_checkpointing_replays_the_same_masks() -> None:
    """The recomputed forward draws the masks again from the restored RNG: gradients with
    gradient checkpointing equal those without."""
    model = _lora_model(torch.float32, dropout=0.2)
    use_lean_lora(model)
    ids = torch.randint(3, 200, (1, 32))
    torch.manual_seed(5)
    plain = _loss_and_grads(model, ids)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(5)
    recomputed = _loss_and_grads(model, ids)
    assert plain[0] == pytest.approx(recomputed[0], rel=1e-6)
    for k, g in plain[1].items():
        assert float((recomputed[1][k] - g).norm()) <= 1e-5 * float(g.norm()) + 1e-9, k


def _kept_bytes(model: Any, ids: torch.Tensor) -> int:
    """Bytes autograd keeps for backward during one forward (each storage once)."""
    from bench.peak_memory import kept_for_backward

    with kept_for_backward(model, {}) as kept:
        model(input_ids=ids).logits.float().sum()
    return sum(kept.values())


def test_it_keeps_less_for_backward() -> None:
    """bf16 base, dropout 0.05 (the recipe's): PEFT keeps each LoRA layer's input again, in
    float32, per layer; lean keeps the shared input and a 1-bit mask."""
    model = _lora_model(torch.bfloat16, dropout=0.05)
    ids = torch.randint(3, 200, (1, 256))
    peft_bytes = _kept_bytes(model, ids)
    use_lean_lora(model)
    lean_bytes = _kept_bytes(model, ids)
    hidden, inter, tokens = 64, 128, 256
    # PEFT's float32 dropout outputs per decoder layer: 6 hidden-wide LoRA inputs + down's
    copies = 2 * (6 * hidden + inter) * tokens * 4
    assert peft_bytes - lean_bytes >= 0.7 * copies
    assert lean_bytes < 0.6 * peft_bytes


def test_disabled_adapters_and_no_grad_fall_back_to_peft() -> None:
    model = _lora_model(torch.float32, dropout=0.1)
    ids = torch.randint(3, 200, (1, 16))
    model.eval()
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    use_lean_lora(model)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, before)
        with model.disable_adapter():
            assert torch.equal(model(input_ids=ids).logits, base)
    model.train()
    with model.disable_adapter():
        assert torch.allclose(model(input_ids=ids).logits, base, atol=1e-6)
    assert use_lean_lora(copy.deepcopy(model)) == 0  # already bound: nothing to do


def test_a_lora_bias_runs_peft_forward() -> None:
    """``lora_bias = True`` gives B a bias the lean function has no place for: PEFT's path."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from serifu_models.tiny import TINY_MODELS

    spec = next(m for m in TINY_MODELS if m.id == "tiny-llama")
    base = AutoModelForCausalLM.from_config(spec.build_config())
    lora = LoraConfig(r=4, target_modules=["q_proj"], lora_bias=True, lora_dropout=0.0)
    model = get_peft_model(base, lora)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    ids = torch.randint(3, 200, (1, 12))
    expected = model(input_ids=ids).logits
    use_lean_lora(model)
    assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-6)


def test_a_run_with_lean_lora(lines_dir: Path, tmp_path: Path) -> None:
    """The product's trainer (NF4 base on the CPU): the run records it, its losses are
    finite and near PEFT's, and when training ends the layers have PEFT's forward again."""
    from serifu.training import Trainer

    def run(setting: str) -> tuple[Any, dict[str, Any]]:
        cfg = TrainConfig(max_steps=3, max_tokens=256, save_steps=0, eval=False, report_to="none")
        cfg.lora_backward = setting  # type: ignore[assignment]
        trainer = Trainer("tiny-llama", lines_dir, tmp_path / setting, cfg, progress=False)
        trainer.fit()
        record = json.loads((tmp_path / setting / "serifu.json").read_text(encoding="utf-8"))
        return trainer, record

    peft_trainer, peft_record = run("peft")
    trainer, record = run("lean")
    lora_layers = [m for m in trainer.model.modules() if hasattr(m, "lora_A")]
    assert lora_layers and type(lora_layers[0]).__name__ == "Linear4bit"  # the NF4 base's
    assert record["lora_backward"] == {"setting": "lean", "layers": len(lora_layers)}
    assert peft_record["lora_backward"] == {"setting": "peft", "layers": 0}
    losses, peft_losses = record["loss"], peft_record["loss"]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[0] == pytest.approx(peft_losses[0], rel=1e-6)  # B starts at zero
    assert losses == pytest.approx(peft_losses, rel=0.05)  # other masks, same math
    assert not any("forward" in m.__dict__ for m in trainer.model.modules())


def _grads_with_recompute(model: Any, ids: torch.Tensor, replay_rng: bool) -> dict[str, Any]:
    from serifu.training.model_setup import set_checkpointing

    set_checkpointing(model, True, replay_rng=replay_rng)
    try:
        torch.manual_seed(5)
        return _loss_and_grads(model, ids)[1]
    finally:
        set_checkpointing(model, False)


def test_hashed_masks_need_no_rng_replay_in_the_recompute() -> None:
    """A checkpointed recompute without the RNG replay (what a CUDA graph cannot capture)
    draws other masks, for PEFT's layers and for lean ones drawing by ``bernoulli_``: the
    gradients differ from those without checkpointing. With masks from a hash
    (``use_hashed_masks``) the recompute makes the forward's masks again and the gradients
    are equal; the next step's key gives other masks."""
    from serifu.accel.lora_train import HASH_ATTR, use_hashed_masks
    from serifu.accel.mask_hash import CLOCK_ATTR, advance

    def differs(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return any(not torch.allclose(a[k], g) for k, g in b.items())

    ids = torch.randint(3, 200, (1, 32))
    model = _lora_model(torch.float32, dropout=0.3)
    peft = _grads_with_recompute(model, ids, replay_rng=False)
    torch.manual_seed(5)
    assert differs(peft, _loss_and_grads(model, ids)[1])
    use_lean_lora(model)
    drawn = _grads_with_recompute(model, ids, replay_rng=False)
    torch.manual_seed(5)
    assert differs(drawn, _loss_and_grads(model, ids)[1])
    clock = use_hashed_masks(model)
    assert clock is not None and model.__dict__[CLOCK_ATTR] is clock
    assert sum(HASH_ATTR in m.__dict__ for m in model.modules()) == 14
    advance(model)
    plain = _loss_and_grads(model, ids)[1]
    recomputed = _grads_with_recompute(model, ids, replay_rng=False)
    for k, g in plain.items():
        assert float((recomputed[k] - g).norm()) <= 1e-5 * float(g.norm()) + 1e-9, k
    advance(model)
    assert differs(_loss_and_grads(model, ids)[1], plain)
