"""``train.capture``: the static training step (fixed shapes: one padded row, padded example
boundaries, weight-0 padding positions in the loss) gathers what the product's loss gathers
and trains as the usual step does; a run records the decision; settings it cannot run with
are an error that names them. The CUDA graph itself needs a GPU: its measurement lives in
docs/benchmarks.md (``bench/gpu/train_capture.py``)."""

from __future__ import annotations

import itertools
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from serifu.config.train import TrainConfig
from serifu.errors import SerifuError


def _examples(n: int, seed: int = 0) -> list:
    from serifu.training.examples import IGNORE, Example

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = [rng.randrange(3, 200) for _ in range(rng.randrange(4, 30))]
        prompt = rng.randrange(0, len(ids) - 1)
        out.append(Example(ids, [IGNORE] * prompt + ids[prompt:]))
    return out


def test_static_batch_gathers_the_positions_the_product_loss_uses() -> None:
    from serifu.accel.loss import labelled_positions
    from serifu.training.batches import pack_batch
    from serifu.training.capture import plan_shapes, static_batch

    examples = _examples(9)
    shapes = plan_shapes([examples[:5], examples[5:]], budget=256, chunk=64)
    assert shapes.longest == max(map(len, examples)) and shapes.labels % 64 == 0
    for part in (examples[:5], examples[5:]):
        packed = pack_batch(part)
        width = packed["input_ids"].shape[1]
        dim = 3
        hidden = torch.arange(width * dim, dtype=torch.float32).view(1, width, dim)
        want_h, want_y = labelled_positions(hidden, packed["labels"])
        batch = static_batch(part, shapes)
        real = batch["weight"] > 0
        wide = torch.zeros(1, shapes.width, dim)
        wide[:, :width] = hidden
        got_h = wide.reshape(-1, dim).index_select(0, batch["index"][real])
        assert torch.equal(got_h, want_h) and torch.equal(batch["targets"][real], want_y)
        assert float(batch["inv_labels"]) == pytest.approx(1 / len(want_y))
        assert torch.equal(batch["input_ids"][:, :width], packed["input_ids"])
        cu = batch["cu"]
        assert cu.shape == (shapes.sequences + 1,) and int(cu[-1]) == shapes.width
        sizes = [b - a for a, b in zip(cu.tolist(), cu.tolist()[1:], strict=False)]
        assert min(sizes) > 0 and max(sizes) <= shapes.longest  # none empty, none past the bound
        assert cu.tolist()[: len(part) + 1] == [0, *itertools.accumulate(map(len, part))]
        starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
        assert starts == cu.tolist()[:-1]  # positions restart where every example starts


def test_the_row_holds_every_step_and_pads_little() -> None:
    """Random runs: every step fits the planned row (static_batch checks the padding
    examples: none empty, none past ``longest``); a run of full steps pads little."""
    from serifu.training.capture import plan_shapes, static_batch

    rng = random.Random(1)
    for trial in range(200):
        pool = _examples(60, seed=trial)
        steps = [rng.sample(pool, rng.randrange(1, 12)) for _ in range(rng.randrange(1, 6))]
        budget = max(sum(map(len, exs)) for exs in steps) + rng.randrange(0, 20)
        shapes = plan_shapes(steps, budget=budget, chunk=16)
        for exs in steps:
            cu = static_batch(exs, shapes)["cu"].tolist()
            sizes = [b - a for a, b in zip(cu, cu[1:], strict=False)]
            assert min(sizes) > 0 and max(sizes) <= shapes.longest and cu[-1] == shapes.width
    full = [_examples(40, seed=s) for s in range(4)]
    budget = max(sum(map(len, exs)) for exs in full)
    shapes = plan_shapes(full, budget=budget, chunk=16)
    # the fullest step's unused end and the other steps' slack, no more (one token for each
    # of the 40 example slots, as before, made this row 723 tokens)
    assert shapes.width < budget + 40


def test_a_step_over_the_budget_is_refused() -> None:
    from serifu.training.capture import plan_shapes

    with pytest.raises(ValueError, match="more than the budget 40"):
        plan_shapes([_examples(9)], budget=40, chunk=64)


def _config(**extra: object) -> TrainConfig:
    cfg = TrainConfig(
        max_steps=3,
        max_tokens=256,
        save_steps=0,
        eval=False,
        report_to="none",
        gradient_checkpointing=False,
        **extra,  # type: ignore[arg-type]
    )
    cfg.lora.dropout = 0.0  # the two steps draw dropout's random numbers in another order
    return cfg


def test_a_captured_run_trains_as_the_usual_step(dialogue_dir: Path, tmp_path: Path) -> None:
    """Same data, same LoRA start: the static step's losses follow the usual step's, step
    by step, on a QLoRA base with prompt-masked dialogue rows; serifu.json records it."""
    from serifu.training import train

    torch.set_num_threads(1)
    usual = train("tiny-llama", dialogue_dir, tmp_path / "usual", _config(), progress=False)
    static = train(
        "tiny-llama", dialogue_dir, tmp_path / "static", _config(capture="on"), progress=False
    )
    info = json.loads((tmp_path / "static" / "serifu.json").read_text(encoding="utf-8"))
    assert info["capture"] == static.info["capture"]
    assert info["capture"]["capture"] == "on" and info["capture"]["graph"] is False
    assert "eagerly (no CUDA device" in info["capture"]["reason"]
    assert info["capture"]["fused_softmax"] is False  # compiled only where a graph runs
    shapes = info["capture"]["shapes"]
    assert shapes["sequences"] >= 2 and shapes["labels"] % shapes["chunk"] == 0  # + padding
    assert len(info["loss"]) == 3 and len(set(info["loss"])) > 1
    assert info["loss"] == pytest.approx(usual.info["loss"], rel=1e-4)
    assert usual.info["capture"]["capture"] == "off" and usual.summary()["capture"] == "off"
    assert static.summary()["capture"] == "on"


def test_validation_between_static_steps_changes_nothing(
    dialogue_dir: Path, tmp_path: Path
) -> None:
    """Validation every step (eval forward passes between the static step's runs, and its
    next batch built ahead) leaves the training losses as without it."""
    from serifu.training import train

    torch.set_num_threads(1)
    quiet = train("tiny-llama", dialogue_dir, tmp_path / "a", _config(capture="on"), progress=False)
    checked = _config(capture="on").model_copy(update={"eval": True, "eval_steps": 1})
    with_eval = train("tiny-llama", dialogue_dir, tmp_path / "b", checked, progress=False)
    assert with_eval.info["loss"] == pytest.approx(quiet.info["loss"], rel=1e-6)
    assert len(with_eval.info["eval_losses"]) >= 3


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (
            {"gradient_checkpointing": True, "lora_dropout": 0.05},
            "LoRA dropout 0.05 draws new masks there",
        ),
        (
            {"gradient_checkpointing": True, "checkpoint_offload": "on"},
            "train.checkpoint_offload = 'off'",
        ),
        ({"gradient_accumulation_steps": 2}, "gradient_accumulation_steps = 1"),
        ({"packing": False}, "train.packing = true"),
        ({"compile": "on"}, "replaces train.compile"),
    ],
)
def test_settings_it_cannot_run_with_are_named(
    extra: dict[str, object], named: str, lines_dir: Path, tmp_path: Path
) -> None:
    from serifu.training import train

    extra = dict(extra)
    dropout = extra.pop("lora_dropout", None)
    cfg = _config(capture="on").model_copy(update=extra)
    if dropout is not None:
        cfg.lora.dropout = dropout  # type: ignore[assignment]
    with pytest.raises(SerifuError) as err:
        train("tiny-llama", lines_dir, tmp_path / "x", cfg, progress=False)
    assert "train.capture = 'on' cannot run" in str(err.value) and named in str(err.value)
    assert not (tmp_path / "x" / "adapter_model.safetensors").exists()


def test_a_checkpointed_static_step_recomputes_without_rng_replay(
    dialogue_dir: Path, tmp_path: Path
) -> None:
    """With the lean LoRA function the static step's dropout masks come from a hash that the
    recompute computes again, so the step may checkpoint (no RNG replay, which a graph cannot
    capture): its losses with dropout 0.05 are those of the static step without
    checkpointing, and the run gives the layers their RNG replay back (and drops the hash)
    when it ends."""
    from serifu.training import Trainer
    from serifu.training.model_setup import checkpointed_layers

    torch.set_num_threads(1)

    def run(name: str, checkpointing: bool) -> tuple[Trainer, Any]:
        cfg = _config(capture="on", lora_backward="lean")
        cfg = cfg.model_copy(update={"gradient_checkpointing": checkpointing})
        cfg.lora.dropout = 0.05
        trainer = Trainer("tiny-llama", dialogue_dir, tmp_path / name, cfg, progress=False)
        return trainer, trainer.fit()

    _, plain = run("plain", False)
    trainer, checkpointed = run("ckpt", True)
    info = checkpointed.info
    assert info["capture"]["capture"] == "on" and "without RNG replay" in info["capture"]["reason"]
    assert "masks from a hash" in info["capture"]["reason"]
    assert (
        info["gradient_checkpointing"]["on"] is True
        and info["gradient_checkpointing"]["layers"] == 2
    )
    assert info["loss"] == pytest.approx(plain.info["loss"], rel=1e-5)
    assert len(set(info["loss"])) > 1
    # the trained LoRA weights, where a recompute with other masks shows at once
    from safetensors.torch import load_file

    want = load_file(tmp_path / "plain" / "adapter_model.safetensors")
    got = load_file(tmp_path / "ckpt" / "adapter_model.safetensors")
    assert got.keys() == want.keys()
    for k, w in want.items():
        assert float((got[k] - w).norm()) <= 1e-5 * float(w.norm()) + 1e-9, k
    layers = [m for m in trainer.model.modules() if "_gradient_checkpointing_func" in m.__dict__]
    assert checkpointed_layers(trainer.model) == 2 and layers
    for m in layers:  # the RNG replay is back once the run ends
        assert "preserve_rng_state" not in m.__dict__["_gradient_checkpointing_func"].keywords
    hashed = ("serifu_lean_hash", "serifu_mask_clock")
    assert not any(k in m.__dict__ for m in trainer.model.modules() for k in hashed)


def test_a_failed_auto_capture_gives_the_usual_step_its_masks_and_rng_replay_back(
    dialogue_dir: Path, tmp_path: Path
) -> None:
    """When ``"auto"``'s static step fails, the run goes on with the usual step. That step
    draws no new key for the hash, so the lean layers must draw by ``bernoulli_`` again (else
    every step would drop out the same inputs) and checkpointing must replay the RNG again."""
    import dataclasses

    from serifu.accel.lora_train import HASH_ATTR
    from serifu.accel.mask_hash import CLOCK_ATTR
    from serifu.training import Trainer

    torch.set_num_threads(1)
    cfg = _config(capture="on", lora_backward="lean")
    cfg = cfg.model_copy(update={"gradient_checkpointing": True})
    cfg.lora.dropout = 0.05
    trainer = Trainer("tiny-llama", dialogue_dir, tmp_path / "x", cfg, progress=False)
    trainer.started, trainer.dist = time.perf_counter(), None  # as fit() sets them
    trainer._check_outputs()
    trainer._setup()
    try:
        model = trainer.model
        funcs = [
            m.__dict__["_gradient_checkpointing_func"]
            for m in model.modules()
            if "_gradient_checkpointing_func" in m.__dict__
        ]
        assert funcs and all(f.keywords.get("preserve_rng_state") is False for f in funcs)
        assert CLOCK_ATTR in model.__dict__
        assert any(HASH_ATTR in m.__dict__ for m in model.modules())
        trainer.capture = dataclasses.replace(trainer.capture, setting="auto")
        assert trainer._capture_failed(RuntimeError("capture failed on this machine"))
        assert trainer.static is None and trainer.capture.capture == "off"
        assert CLOCK_ATTR not in model.__dict__
        assert not any(HASH_ATTR in m.__dict__ for m in model.modules())
        funcs = [
            m.__dict__["_gradient_checkpointing_func"]
            for m in model.modules()
            if "_gradient_checkpointing_func" in m.__dict__
        ]
        assert funcs and all("preserve_rng_state" not in f.keywords for f in funcs)
        micro = [[trainer.train_ex[i] for i in ix] for ix in trainer.plan[0]]
        loss, tokens = trainer._forward_backward(micro)  # the usual step runs
        assert loss > 0 and tokens > 0
    finally:
        if trainer._unpatch is not None:
            trainer._unpatch()


def test_what_keeps_a_checkpointed_recompute_from_capture() -> None:
    from transformers import AutoModelForCausalLM

    from serifu.training.capture import recompute_draws
    from serifu_models.tiny import TINY_MODELS

    spec = next(m for m in TINY_MODELS if m.id == "tiny-llama")
    base = AutoModelForCausalLM.from_config(spec.build_config())
    assert recompute_draws(base, _config()) is None  # no dropout anywhere
    peft = _config()
    peft.lora.dropout = 0.1
    assert "LoRA dropout 0.1 draws new masks" in (recompute_draws(base, peft) or "")
    lean = _config(lora_backward="lean")
    lean.lora.dropout = 0.1
    assert recompute_draws(base, lean) is None  # the recompute hashes the forward's mask again
    base.config.attention_dropout = 0.1
    assert "attention_dropout = 0.1" in (recompute_draws(base, lean) or "")


def test_a_softmax_that_fails_to_compile_falls_back_to_the_eager_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The compiled softmax is an optional speed-up: when compiling it fails, the static step
    says so and runs the eager one (same loss as a step that never tried)."""
    import serifu.training.capture as cap
    from serifu.training.capture import StaticStep, plan_shapes
    from serifu.training.model_setup import add_lora

    torch.set_num_threads(1)
    real = cap.forward_backward

    def compile_fails(*args: object, fused: bool = False, **kw: object) -> torch.Tensor:
        if fused:
            raise RuntimeError("inductor: triton missing\nmore")
        return real(*args, **kw)  # type: ignore[arg-type]

    from transformers import AutoModelForCausalLM

    from serifu_models.tiny import TINY_MODELS

    spec = next(m for m in TINY_MODELS if m.id == "tiny-llama")
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(spec.build_config())
    model = add_lora(base, _config(), ("q_proj",), quantized=False)
    examples = _examples(6)
    shapes = plan_shapes([examples], budget=256, chunk=64)
    want = StaticStep(model, shapes, "cpu", graph=False).run(examples)
    monkeypatch.setattr(cap, "forward_backward", compile_fails)
    step = StaticStep(model, shapes, "cpu", graph=False, fused=True)
    assert step.run(examples) == pytest.approx(want, rel=1e-6) and step.fused is False
    assert (
        "compiled softmax failed (RuntimeError: inductor: triton missing)"
        in capsys.readouterr().err
    )


def test_auto_captures_small_models_on_cuda_only(
    monkeypatch: pytest.MonkeyPatch, lines_dir: Path, tmp_path: Path
) -> None:
    """``"auto"``: off without CUDA, off for models past 1B parameters (their
    step is bound by its math), and a run records why."""
    import serifu.training.capture as cap
    from serifu.training import train

    torch.set_num_threads(1)
    model = torch.nn.Linear(4, 4)
    assert (
        cap.auto_blocker(model, "cpu") == "the model is on cpu (a CUDA graph needs a CUDA device)"
    )
    assert cap.auto_blocker(model, "cuda:0") is None
    monkeypatch.setattr(cap, "AUTO_MAX_PARAMS", 10)
    assert "bound by its math" in str(cap.auto_blocker(model, "cuda:0"))
    assert TrainConfig().capture == "auto"  # since it ran end to end on a GPU, eval on
    result = train(
        "tiny-llama",
        lines_dir,
        tmp_path / "run",
        _config(capture="auto").model_copy(update={"max_steps": 1}),
        progress=False,
    )
    assert result.info["capture"]["capture"] == "off"
    assert result.info["capture"]["reason"].startswith("auto: off: the model is on cpu")
