"""Each GEMV shape's one launch configuration (serifu.accel.gemv_tiles): one of the kernels'
tuned configurations, for every linear layer of every shipped model, the same in any process,
and autotuning only when asked. That fresh processes then give the same reply is measured on
CUDA (bench/gpu/same_reply.py)."""

from __future__ import annotations

import pytest
import torch

from serifu.accel.gemv_tiles import GEMV_TILES, UINT4_TILES, gemv_tile, tuning, uint4_tile

REPORT_MODELS = ("line-3.6b", "novel-gptj-6b", "stablelm-beta-7b", "gemma-3-270m")


def _linear_shapes(model_id: str) -> set[tuple[int, int]]:
    """(out, in) of every linear layer of the plugin's architecture, built without weights,
    and of its q/k/v and gate/up fused as the decoder fuses them."""
    from transformers import AutoModelForCausalLM

    from serifu import plugins

    config = plugins.get_base_model(model_id).build_config()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    shapes = {tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    names = dict(model.named_modules())
    for group in (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj")):
        for name, m in names.items():
            if name.endswith(group[0]):
                parts = [names[name[: -len(group[0])] + g] for g in group]
                shapes.add((sum(p.weight.shape[0] for p in parts), m.weight.shape[1]))
    return {(int(n), int(k)) for n, k in shapes}


@pytest.mark.parametrize("model_id", REPORT_MODELS)
def test_every_layer_of_a_shipped_model_gets_a_tuned_configuration(model_id: str) -> None:
    shapes = _linear_shapes(model_id)
    assert len(shapes) >= 4  # attention, MLP in and out, the head
    for n, k in shapes:
        assert gemv_tile(n, k) in GEMV_TILES, (n, k)
        bw, u, w, prefetch = uint4_tile(n, k)
        assert (bw, u, w) in UINT4_TILES, (n, k)
        assert not prefetch or (bw == 1 and w >= 2)  # the kernel prefetches one word-row only


@pytest.mark.parametrize(
    "n, k, want",
    [
        (4096, 4096, (2, 1024, 4)),  # an attention output: rows do not outnumber inputs
        (4096, 11008, (2, 1024, 4)),  # a down projection
        (12288, 4096, (4, 512, 4)),  # q/k/v fused, 4,096 wide
        (9216, 3072, (16, 256, 4)),  # line-3.6b's q/k/v
        (4096, 640, (8, 256, 4)),  # gemma-3-270m's gate/up
        (37, 300, (2, 1024, 4)),  # the kernel check's small product
    ],
)
def test_the_configuration_depends_on_the_shape_alone(
    n: int, k: int, want: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same shape, the same configuration, in any process: nothing timed, nothing read
    from the card (the switch to autotune is the kernels', not the rule's)."""
    monkeypatch.setenv("SERIFU_GEMV_TUNE", "1")
    assert gemv_tile(n, k) == want
    assert uint4_tile(n, k) == ((1, 4, 4, True) if n <= k else (2, 4, 2, False))


def test_autotuning_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERIFU_GEMV_TUNE", raising=False)
    assert not tuning()
    monkeypatch.setenv("SERIFU_GEMV_TUNE", "1")
    assert tuning()


def test_the_kernels_are_handed_the_one_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Triton (a CUDA machine's torch brings it): the autotuners get the shape's one
    configuration, so they time nothing; all of them with ``SERIFU_GEMV_TUNE=1``."""
    pytest.importorskip("triton", reason="Triton comes with CUDA builds of torch only")
    from serifu.accel import gemv_kernels, uint4_gemv_kernels

    monkeypatch.delenv("SERIFU_GEMV_TUNE", raising=False)
    (one,) = gemv_kernels._pinned(gemv_kernels.CONFIGS, {"N": 2 * 11008, "K": 4096}, GLU=3)
    n, k, w = gemv_tile(11008, 4096)  # a gated pair's rows counted once
    assert (one.kwargs, one.num_warps) == ({"BLOCK_N": n, "BLOCK_K": k}, w)
    (one,) = uint4_gemv_kernels._pinned(uint4_gemv_kernels.CONFIGS, {"N": 4096, "K": 11008})
    bw, u, w, p = uint4_tile(4096, 11008)
    assert one.kwargs == {"BW": bw, "U": u, "NUM_WARPS": w, "PREFETCH": p}
    monkeypatch.setenv("SERIFU_GEMV_TUNE", "1")
    assert gemv_kernels._pinned(gemv_kernels.CONFIGS, {"N": 64, "K": 64}) == gemv_kernels.CONFIGS
