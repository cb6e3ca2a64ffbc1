"""``train.checkpoint_offload`` (serifu.training.offload): checkpointed layers' inputs held
on the host between the forward and their recompute. The product offloads on CUDA only;
here the same hooks run with plain copies, which checks what does not depend on the GPU:
the gradients are those of checkpointing alone, every checkpointed layer's input is moved
and the device's own tensor is released, each unpack after the first is served by the fetch
ahead, and the wrapping is undone."""

from __future__ import annotations

import gc
import json
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from serifu.config.train import TrainConfig
from serifu.training.kernels import restore_point
from serifu.training.model_setup import set_checkpointing
from serifu.training.offload import (
    HostOffload,
    OffloadDecision,
    offload_checkpoints,
    use_checkpoint_offload,
)
from tests.training.test_lora_backward import _lora_model
from tests.training.test_lora_backward import _loss_and_grads as _step

torch.set_num_threads(1)
LAYERS = 4


def _model(dropout: float = 0.0, every: int = 1) -> Any:
    model = _lora_model(torch.float32, dropout, targets=("q_proj", "v_proj"), layers=LAYERS)
    set_checkpointing(model, True, every)
    return model


def _layers(model: Any) -> list[Any]:
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def _loss_and_grads(model: Any, ids: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    return _step(model, ids, seed=7)  # the same dropout masks in every run


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_the_gradients_are_those_of_checkpointing(dropout: float) -> None:
    model = _model(dropout)
    ids = torch.randint(3, 200, (2, 24))
    plain = _loss_and_grads(model, ids)
    offload = HostOffload(torch.device("cpu"), min_bytes=0)
    assert offload_checkpoints(model, offload.hooks) == LAYERS
    moved = _loss_and_grads(model, ids)
    assert moved[0] == plain[0]
    assert moved[1].keys() == plain[1].keys() and len(plain[1]) == 4 * LAYERS
    for k, g in plain[1].items():
        assert torch.equal(moved[1][k], g), k  # the same recompute from the same bytes
    assert offload.moved == LAYERS  # one input per checkpointed layer, nothing else
    assert offload.moved_bytes == LAYERS * ids.numel() * model.config.hidden_size * 4
    assert offload.fetched_ahead == LAYERS - 1  # the last layer's is fetched on demand


def _inputs_alive_after_forward(model: Any, ids: torch.Tensor) -> list[bool]:
    """Whether each decoder layer's input tensor is still alive once the forward returns."""
    refs: list[weakref.ref[torch.Tensor]] = []

    def keep(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        refs.append(weakref.ref(hidden))

    handles = [m.register_forward_pre_hook(keep, with_kwargs=True) for m in _layers(model)]
    try:
        loss = model(input_ids=ids, labels=ids).loss
        gc.collect()
        alive = [r() is not None for r in refs]
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    return alive


def test_the_layers_inputs_leave_the_device() -> None:
    """With checkpointing alone, autograd holds every layer's input until backward; with
    the hooks it holds the host copies, and the tensors themselves are freed (on a GPU:
    layers x tokens x hidden x 2 bytes of its memory)."""
    model = _model()
    ids = torch.randint(3, 200, (1, 32))
    assert _inputs_alive_after_forward(model, ids)[1:] == [True] * (LAYERS - 1)
    offload_checkpoints(model, HostOffload(torch.device("cpu"), min_bytes=0).hooks)
    # layer 0's input is the embedding's output, which PEFT's input-gradient hook keeps
    assert _inputs_alive_after_forward(model, ids)[1:] == [False] * (LAYERS - 1)


def test_every_second_layer_and_small_inputs() -> None:
    model = _model(every=2)
    offload = HostOffload(torch.device("cpu"), min_bytes=0)
    assert offload_checkpoints(model, offload.hooks) == LAYERS // 2  # only the checkpointed ones
    ids = torch.randint(3, 200, (1, 16))
    _loss_and_grads(model, ids)
    assert offload.moved == LAYERS // 2
    small = HostOffload(torch.device("cpu"))  # 1 MiB floor: a 16-token input stays
    tensor = torch.ones(16, 64)
    assert small.pack(tensor) is tensor and small.moved == 0


def test_restore_point_takes_the_wrapping_back() -> None:
    model = _model()
    before = [m.__dict__["_gradient_checkpointing_func"] for m in _layers(model)]
    undo = restore_point(model)
    offload_checkpoints(model, HostOffload(torch.device("cpu"), min_bytes=0).hooks)
    assert all(
        m.__dict__["_gradient_checkpointing_func"] is not f
        for m, f in zip(_layers(model), before, strict=True)
    )
    undo()
    assert all(
        m.__dict__["_gradient_checkpointing_func"] is f
        for m, f in zip(_layers(model), before, strict=True)
    )


def test_what_the_setting_resolves_to() -> None:
    model = _model()
    on = TrainConfig(checkpoint_offload="on")
    off = use_checkpoint_offload(model, TrainConfig(), checkpointing=True, device="cuda")
    assert not off.on and off.reason == "off (set in the config)"
    no_ckpt = use_checkpoint_offload(model, on, checkpointing=False, device="cuda")
    assert not no_ckpt.on and "checkpointing is off" in no_ckpt.reason
    cpu = use_checkpoint_offload(model, on, checkpointing=True, device="cpu")
    assert not cpu.on and "CUDA only" in cpu.reason
    assert cpu.as_dict() == {"setting": "on", "on": False, "reason": cpu.reason, "layers": 0}
    offload = HostOffload(torch.device("cpu"), min_bytes=0)
    offload_checkpoints(model, offload.hooks)
    _loss_and_grads(model, torch.randint(3, 200, (1, 16)))
    record = OffloadDecision("on", True, "on", LAYERS, offload).as_dict()
    assert record["moved"] == LAYERS and record["fetched_ahead"] == LAYERS - 1
    assert record["moved_gib"] == round(offload.moved_bytes / 2**30, 3)


def test_a_run_records_it_and_keeps_its_fingerprint(lines_dir: Path, tmp_path: Path) -> None:
    """The trainer records the decision; the setting does not change the trained adapter,
    so a run may be resumed with it changed."""
    from serifu.training import Trainer
    from serifu.training.model_setup import fingerprint

    cfg = TrainConfig(
        max_steps=2, max_tokens=128, save_steps=0, eval=False, report_to="none",
        gradient_checkpointing=True, checkpoint_offload="on",
    )  # fmt: skip
    Trainer("tiny-llama", lines_dir, tmp_path / "run", cfg, progress=False).fit()
    record = json.loads((tmp_path / "run" / "serifu.json").read_text(encoding="utf-8"))
    assert record["checkpoint_offload"]["setting"] == "on"
    assert record["checkpoint_offload"]["on"] is False  # the CPU: nothing to gain
    assert "CUDA only" in record["checkpoint_offload"]["reason"]
    same = fingerprint("m", "d", cfg) == fingerprint(
        "m", "d", cfg.model_copy(update={"checkpoint_offload": "off"})
    )
    assert same


def test_compiled_layers_offload_the_same() -> None:
    """``train.compile`` checkpoints its compiled layers from outside the compiled region,
    through the same wrapped function: offloading changes nothing in their gradients."""
    from serifu.training.compile import compile_stats, compiler_unavailable, uncompile, use_compile

    missing = compiler_unavailable("cpu")
    if missing is not None:
        pytest.skip(f"inductor cannot compile here: {missing}")
    torch._dynamo.reset()  # as in test_compile: no earlier compile of the layer class counts
    model = _model()
    ids = torch.randint(3, 200, (1, 24))
    assert use_compile(model, "on").layers == LAYERS
    compiled = _loss_and_grads(model, ids)
    offload = HostOffload(torch.device("cpu"), min_bytes=0)
    offload_checkpoints(model, offload.hooks)
    both = _loss_and_grads(model, ids)
    assert both[0] == compiled[0] and offload.moved == LAYERS
    for k, g in compiled[1].items():
        assert torch.equal(both[1][k], g), k
    assert compile_stats()["graph_breaks"] == 0
    uncompile(model)
