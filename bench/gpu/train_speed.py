"""QLoRA training speed: the report's recipe vs Serifu's trainer, same model, same data, one process.

Models: architecture-exact, randomly initialised 4-bit (NF4, double quant) versions of the
plugins (speed does not depend on weight values). Workloads:
  lines     4,858 monologue lines with the sample cast's token lengths, 3 epochs (the report's job)
  dialogue  profile system prompt + turn -> reply (~320 tokens), loss on the reply for Serifu
Recipe: HF Trainer + DataCollatorForLanguageModeling (padding), batch 8, gradient
checkpointing, float32 upcast of the non-4-bit weights (serifu.training.recipe). Serifu:
serifu.training.trainer (bf16 base, packed rows under variable-length flash attention, a
token budget per step, loss only at labelled positions), settings below.
``--peers trl`` instead puts Serifu next to TRL's SFTTrainer (bench/gpu/peer_trl.py), records
with ``baseline_kind="trl"``; Serifu's rows there (``--rows``) include Liger's fused layers
inside Serifu's trainer (``train.kernels``) and Liger's fused linear cross-entropy
(``train.loss_kernel``) where Liger supports the architecture. ``--ablate`` instead times each lever on and off (a few steps each) and writes
``<date>-<gpu>-ablation.json``, with a check that varlen and SDPA attention agree.
Real tokens = non-padding tokens. MFU = real tokens/s x 6 x N / 790 TFLOP/s (the H200's
measured dense bf16 rate; N = all parameters; attention FLOPs not counted).

    python bench/gpu/train_speed.py [--models ...] [--workloads lines,dialogue] [--tiny]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.common import (
    REPORT_MODELS,
    TINY,
    Record,
    append_results,
    count_params,
    dialogue_workload,
    lines_workload,
    peak_gib,
    peak_gib_reset,
    random_model,
    reset_base,
    results_path,
    sync,
)

PEAK_FLOPS = 790e12
ROWS = ("ckpt", "auto", "liger", "liger-auto", "liger-flce")
"""Serifu's rows next to TRL (:func:`bench_peers`), run by default (layers not compiled)."""
COMPILE_ROWS = ("compile", "compile-liger", "compile-auto", "compile-liger-auto")
"""Rows with the decoder layers compiled (``train.compile``), chosen with ``--rows``; each is
checked against its eager row (:data:`EAGER_OF`)."""
HEAD_ROWS = ("liger-autograd-head", "liger-chunk64m")
"""Rows with the frozen head's gradient through autograd (the path before session 18;
``train.loss.CLOSED_FORM_HEAD`` off), or with a quarter of the loss's chunk (64 MiB of
float32 logits, ``train.loss.CHUNK_BYTES``), chosen with ``--rows``: memory and speed of
the loss against ``liger`` in the same run (is the step's peak in the loss?)."""
PRECISION_ROWS = (
    "liger-autocast",
    "liger-lean",
    "liger-lean-autocast",
    "liger-capture",
    "liger-capture-amp",
    "liger-capture-amp-lean-ckpt",
)
"""``liger`` with the forward under bf16 autocast (``train.autocast = "on"``, as TRL runs):
LoRA computes in bf16, its input not copied to float32 (the peak's excess over TRL); with
Serifu's lean LoRA function (``train.lora_backward = "lean"``: the input kept once and a
1-bit dropout mask instead of each layer's dropped-out copy), with and without autocast; and
the step captured as one CUDA graph (``train.capture = "on"``: checkpointing off, which it
needs), with and without autocast — against TRL in the same run (for launch-bound gemma)."""
OFFLOAD_ROWS = (
    "liger-offload",
    "liger-offload-torch",
    "liger-autocast-offload",
    "liger-lean-autocast-offload",
)
"""``liger`` with each checkpointed layer's input held in pinned host memory
(``train.checkpoint_offload = "on"``: side-stream copies, fetched one layer ahead), the same
through torch's ``save_on_cpu`` on the compute stream (what transformers'
``activation_checkpointing_enable(offload=True)`` does; bench only), and with lean LoRA and
autocast too: peak memory and speed against TRL in the same run."""
ALL_ROWS = ROWS + COMPILE_ROWS + HEAD_ROWS + PRECISION_ROWS + OFFLOAD_ROWS
"""Every row ``--rows`` knows."""
EAGER_OF = {
    "liger-autograd-head": "liger",
    "liger-autocast": "liger",
    "liger-lean": "liger",
    "liger-lean-autocast": "liger",
    "liger-capture": "liger",
    "liger-capture-amp": "liger",
    "liger-capture-amp-lean-ckpt": "liger",
    "liger-offload": "liger",
    "liger-offload-torch": "liger",
    "liger-autocast-offload": "liger",
    "liger-lean-autocast-offload": "liger",
    "liger-chunk64m": "liger",
    "compile": "ckpt",
    "compile-liger": "liger",
    "compile-auto": "auto",
    "compile-liger-auto": "liger-auto",
}
PROFILE_ROWS: dict[str, dict[str, Any]] = {  # --profile: layers x compile
    "eager": {"kernels": "off", "compile": "off"},
    "liger": {"kernels": "auto", "compile": "off"},
    "compile": {"kernels": "off", "compile": "on"},
    "compile-liger": {"kernels": "auto", "compile": "on"},
}
LINES = 4858
SERIFU: dict[str, dict[str, Any]] = {  # Serifu's GPU settings per workload
    # layers uncompiled, as in earlier runs: compiling is its own rows / lever (COMPILE_ROWS)
    "lines": {
        "max_tokens": 16384,
        "gradient_checkpointing": True,
        "learning_rate": 1e-3,
        "compile": "off",
    },
    "dialogue": {"max_tokens": 16384, "gradient_checkpointing": True, "compile": "off"},
}
SERIFU["dialogue-unshared"] = SERIFU["dialogue"]  # the dialogue workload before session 32
# each lever against the settings above (the last two: the previous session's path)
ABLATION: dict[str, dict[str, Any]] = {
    "serifu": {},
    "no-ckpt": {"gradient_checkpointing": False},
    "ckpt-auto": {"gradient_checkpointing": "auto"},  # the policy's choice (the new default)
    "ckpt-every-2": {"checkpoint_every": 2},
    "2x-tokens": {"max_tokens": "2x"},
    "half-tokens": {"max_tokens": "0.5x"},
    "tokens-4096": {"max_tokens": 4096},
    "tokens-2048": {"max_tokens": 2048},
    "sdpa-rows-2048": {"attention": "sdpa", "pack_row_tokens": 2048},
    "no-fused-head": {"fused_head": False},
    "no-liger": {"kernels": "off"},  # Liger's fused layers off (only differs where they run)
    "compile-on": {"compile": "on"},  # decoder layers compiled (train.compile)
    "compile-auto": {"compile": "auto"},  # the default: compiled on CUDA up to 1B parameters
    "liger-flce": {"loss_kernel": "liger"},  # Liger's fused linear cross-entropy as the loss
    "fp32-upcast+sdpa": {"upcast_fp32": True, "attention": "sdpa", "pack_row_tokens": 2048},
}


def runnable_rows(rows: tuple[str, ...], *, auto_row: bool, liger: bool) -> list[str]:
    """``rows`` less the auto-checkpointing ones (unless ``auto_row``) and the Liger ones
    (unless Liger runs): "auto" is a word of the row's name, so ``liger-autograd-head`` stays."""
    return [
        r
        for r in rows
        if (auto_row or "auto" not in r.split("-")) and (liger or "liger" not in r.split("-"))
    ]


def _examples(workload: str, vocab: int, n: int) -> tuple[list[Any], list[list[int]]]:
    from serifu.training.examples import IGNORE, Example

    if workload == "lines":
        seqs = lines_workload(n, vocab)
        return [Example(s, list(s)) for s in seqs], seqs
    pairs = dialogue_workload(n, vocab, shared=workload != "dialogue-unshared")
    return [Example(ids, [IGNORE] * p + ids[p:]) for ids, p in pairs], [ids for ids, _ in pairs]


def timed_steps(
    peft_model: Any,
    examples: list[Any],
    steps: list[list[int]],
    config: Any,
    *,
    dev: str,
    dist: Any = None,
    static: Any = None,
) -> tuple[list[float], list[int], list[float]]:
    """Run Serifu's optimizer steps (this rank's share of each), timing every one;
    ``static``: the captured step (:class:`serifu.training.capture.StaticStep`) instead of
    the usual one, the next step's batch built while the graph runs, as the trainer does."""
    from serifu.training.distributed import shard
    from serifu.training.step import apply_update
    from serifu.training.trainer import make_optimizer, train_step

    optimizer, scheduler, trainable = make_optimizer(peft_model, config, len(steps))
    times, tokens, losses = [], [], []
    for k, indices in enumerate(steps):
        sync()
        t0 = time.perf_counter()
        if static is not None:
            exs = [examples[i] for i in indices]
            then = [examples[i] for i in steps[k + 1]] if k + 1 < len(steps) else None
            loss = static.run(exs, then)
            apply_update(optimizer, scheduler, trainable, config, keep_grads=static.graph)
            n = sum(len(ex) for ex in exs)
        else:
            loss, n = train_step(
                peft_model,
                [examples[i] for i in shard(indices, dist)],
                config=config,
                optimizer=optimizer,
                scheduler=scheduler,
                trainable=trainable,
                pad_id=0,
                device=dev,
                dist=dist,
            )
        sync()
        times.append(time.perf_counter() - t0)
        tokens.append(n)
        losses.append(loss)
    return times, tokens, losses


def serifu_run(
    model: Any,
    examples: list[Any],
    targets: tuple[str, ...],
    settings: dict[str, Any],
    *,
    epochs: float,
    max_steps: int | None,
    dev: str,
) -> dict[str, Any]:
    import serifu.training.loss as loss_mod
    from serifu.accel.lora_train import use_lora_backward
    from serifu.config.train import TrainConfig
    from serifu.training.capture import use_capture
    from serifu.training.compile import compile_stats
    from serifu.training.kernels import restore_point
    from serifu.training.memory_policy import choose_checkpointing
    from serifu.training.offload import use_checkpoint_offload
    from serifu.training.shared_prefix import counted_shared, most_run_tokens
    from serifu.training.trainer import (
        add_lora,
        step_plan,
        use_compile,
        use_fast_attention,
        use_kernels,
    )

    settings = dict(settings)
    fused_head = settings.pop("fused_head", True)
    closed_form_head = settings.pop("closed_form_head", True)
    chunk_bytes = settings.pop("loss_chunk_bytes", None)
    torch_offload = settings.pop("torch_offload", False)  # save_on_cpu, as transformers does
    config = TrainConfig(epochs=epochs, max_steps=max_steps, save_steps=0, eval=False, **settings)
    reset_base(model)
    steps, _ = step_plan([len(e) for e in examples], config)
    # "auto": from free memory, for the plan's fullest micro-batch as it runs (as the trainer)
    share = counted_shared(config, model, dev)
    most = most_run_tokens(([examples[i] for i in step] for step in steps), share)
    decision = choose_checkpointing(model, config, most)
    config = decision.resolve(config)
    peft_model = add_lora(model, config, targets, quantized=True)
    use_fast_attention(peft_model, config, dev)
    undo = restore_point(peft_model)  # Liger's patches are taken back after the run
    lean_layers = use_lora_backward(peft_model, config)  # train.lora_backward, undone with them
    offload = use_checkpoint_offload(peft_model, config, checkpointing=decision.on, device=dev)
    if torch_offload:
        offload = torch_save_on_cpu(peft_model, dev)
    peft_model.train()
    loss_mod.FUSED_HEAD = fused_head  # off: the head's gradient through checkpointed chunks
    loss_mod.CLOSED_FORM_HEAD = closed_form_head  # off: through autograd, chunk by chunk
    chunk_default = loss_mod.CHUNK_BYTES, loss_mod.MIN_CHUNK_TOKENS
    if chunk_bytes:  # a smaller chunk, and a floor low enough to reach it on a 262k vocabulary
        loss_mod.CHUNK_BYTES, loss_mod.MIN_CHUNK_TOKENS = chunk_bytes, 64
    try:
        kernels = use_kernels(peft_model, config)
        # after Liger (its kernels compile inside); no step count: these few steps stand
        # for a long run, so "auto" decides as for one (AUTO_MIN_STEPS left out)
        compiled = use_compile(peft_model, config)
        captured, static = use_capture(
            peft_model, config, examples, [[m] for m in steps], device=dev,
            checkpointing=decision.on, checkpoint_every=decision.every,
        )  # fmt: skip
        peak_gib_reset()
        started = time.perf_counter()
        times, tokens, losses = timed_steps(
            peft_model, examples, steps, config, dev=dev, static=static
        )
        wall = time.perf_counter() - started
        peak = peak_gib()
        stats = compile_stats() if compiled.compile == "on" else {}
    finally:
        undo()
        peft_model.unload()
        loss_mod.FUSED_HEAD = True
        loss_mod.CLOSED_FORM_HEAD = True
        loss_mod.CHUNK_BYTES, loss_mod.MIN_CHUNK_TOKENS = chunk_default
    return {
        "times": times,
        "tokens": tokens,
        "losses": losses,
        "wall": wall,
        "peak": peak,
        "steps": len(steps),
        "checkpointing": decision.as_dict(),
        "kernels": kernels.as_dict(),
        "lean_lora_layers": lean_layers,
        "checkpoint_offload": offload.as_dict(),
        "compile": compiled.as_dict() | {"stats": stats},
        "capture": captured.as_dict(),
    }


def torch_save_on_cpu(model: Any, dev: str) -> Any:
    """Each checkpointed layer under torch's ``save_on_cpu(pin_memory=True)``, as
    transformers' ``activation_checkpointing_enable(offload=True)`` runs it (its copies on the
    compute stream); undone by ``restore_point`` as the product's offload is."""
    from functools import partial

    import torch

    from serifu.training.offload import OffloadDecision, offload_checkpoints

    if not dev.startswith("cuda"):
        return OffloadDecision("torch", False, f"off: CUDA only (this run is on {dev})")
    hooks = partial(torch.autograd.graph.save_on_cpu, pin_memory=True, device_type="cuda")
    layers = offload_checkpoints(model, hooks)
    return OffloadDecision("torch", layers > 0, "torch save_on_cpu on the compute stream", layers)


def compile_numbers(run: dict[str, Any], warmup: int) -> dict[str, Any]:
    """A run's compile cost: ``compile_s`` = the warm-up steps' time over that of as many
    steady steps (what compiling added to the wall clock), dynamo's own compile seconds,
    graphs compiled, graph breaks (and why), recompiles; empty when nothing compiled."""
    stats = run["compile"]["stats"]
    if run["compile"]["compile"] != "on":
        return {}
    times = run["times"]
    later = times[warmup:] or times[-1:]
    extra = sum(times[:warmup]) - warmup * statistics.median(later)
    return {
        "compile_s": round(extra, 2),
        "first_step_s": round(times[0], 2),
        "dynamo_compile_s": stats.get("compile_s"),
        "graphs": stats.get("graphs"),
        "graph_breaks": stats.get("graph_breaks"),
        "recompiles": stats.get("recompiles"),
        "graph_break_reasons": stats.get("graph_break_reasons", []),
        "recompile_reasons": stats.get("recompile_reasons", []),
        "layers": run["compile"]["layers"],
    }


def compile_note(run: dict[str, Any], warmup: int) -> str:
    """What a run's compilation was, for a record's notes."""
    decision = run["compile"]
    if decision["compile"] != "on":
        return f"compile off ({decision['reason']})"
    c = compile_numbers(run, warmup)
    breaks = f" ({'; '.join(c['graph_break_reasons'])})" if c["graph_breaks"] else ""
    return (
        f"compile on ({decision['reason']}): {c['layers']} {decision['layer_class']} layers,"
        f" +{c['compile_s']} s in the warm-up steps (dynamo {c['dynamo_compile_s']} s),"
        f" {c['graphs']} graphs, {c['graph_breaks']} graph breaks{breaks},"
        f" {c['recompiles']} recompiles"
    )


def kernel_note(kernels: dict[str, Any]) -> str:
    """What a run's kernels were, for a record's notes."""
    if kernels["kernels"] == "off":
        layers = f"kernels off ({kernels['reason']})"
    else:
        layers = "liger " + ", ".join(f"{k} x{n}" for k, n in kernels["patched"].items())
    return f"{layers}; loss {kernels['loss']}"


def first_loss_diff(run: dict[str, Any], reference: dict[str, Any] | None) -> float | None:
    """Relative difference of the first step's loss from the reference run's (None: none)."""
    if reference is None or reference is run:
        return None
    ref = reference["losses"][0]
    return abs(run["losses"][0] - ref) / abs(ref)


def first_loss_check(run: dict[str, Any], reference: dict[str, Any] | None) -> str:
    """The first step's loss (LoRA B starts at zero, so it is the base model's loss on the
    same batch in every run) against the reference run's: the kernels' numerics check."""
    loss = run["losses"][0]
    diff = first_loss_diff(run, reference)
    if diff is None or reference is None:
        return f"first-step loss {loss:.4f}"
    ref = reference["losses"][0]
    return f"first-step loss {loss:.4f} vs {ref:.4f} (rel. diff {diff:.1e})"


def steady(times: list[float], tokens: list[int], skip: int) -> tuple[float, int]:
    """Median tokens/s over the steps after ``skip`` warm-up steps; and how many were timed."""
    rates = [n / t for n, t in zip(tokens[skip:], times[skip:], strict=True)]
    return statistics.median(rates), len(rates)


def bench_model(model_id: str, label: str, workloads: list[str], tiny: bool) -> list[Record]:
    from serifu import plugins
    from serifu.training.recipe import recipe_on_sequences

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    targets = tuple(plugins.get_base_model(model_id).lora_targets)
    model = random_model(model_id, quantize=True)
    n_params = count_params(model)
    vocab = model.config.get_text_config().vocab_size
    records: list[Record] = []
    for workload in workloads:
        n = (64 if tiny else LINES) if workload == "lines" else (48 if tiny else 1024)
        examples, seqs = _examples(workload, vocab, n)
        recipe_steps = 6 if tiny else (28 if workload == "lines" else 13)
        reset_base(model)
        peak_gib_reset()
        r = recipe_on_sequences(
            model,
            seqs,
            Path("/tmp/serifu-recipe"),
            targets=targets,
            max_steps=recipe_steps,
            unload=True,
        )
        r_peak = peak_gib()
        r_rate, r_n = steady(r.step_times, r.step_tokens, skip=3)
        settings = dict(SERIFU[workload])
        if tiny:
            settings.update(max_tokens=512, pack_row_tokens=256)
        if workload == "lines":  # the whole 3-epoch job
            s = serifu_run(model, examples, targets, settings, epochs=3, max_steps=None, dev=dev)
        else:
            s = serifu_run(
                model, examples, targets, settings, epochs=1, max_steps=4 if tiny else 10, dev=dev
            )
        s_rate, s_n = steady(s["times"], s["tokens"], skip=2)
        mfu = {
            k: round(v * 6 * n_params / PEAK_FLOPS, 4)
            for k, v in (("serifu", s_rate), ("baseline", r_rate))
        }
        peaks = {"serifu": round(s["peak"], 2), "baseline": round(r_peak, 2)}
        note = (
            f"serifu {settings}, {kernel_note(s['kernels'])}; recipe batch 8 padded;"
            f" {r_n} recipe and {s_n} serifu steps timed after warm-up;"
            f" N={n_params / 1e9:.2f}B"
        )
        records.append(
            Record(
                label,
                workload,
                "real_tokens_per_s",
                round(s_rate, 1),
                round(r_rate, 1),
                "tok/s",
                peaks,
                mfu,
                repeats=min(r_n, s_n),
                notes=note,
            )
        )
        if workload == "lines":
            recipe_steps_3ep = 3 * -(-len(seqs) // 8)
            recipe_wall = recipe_steps_3ep * statistics.median(r.step_times[3:])
            records.append(
                Record(
                    label,
                    workload,
                    "job_wall_s",
                    round(s["wall"], 1),
                    round(recipe_wall, 1),
                    "s",
                    peaks,
                    repeats=1,
                    notes=f"3 epochs: serifu measured ({s['steps']} steps); recipe = {recipe_steps_3ep}"
                    " steps x its median step time (lower is better)",
                )
            )
        print(
            f"{label} {workload}: serifu {s_rate:.0f} tok/s (MFU {mfu['serifu']:.1%}, peak {peaks['serifu']} GiB),"
            f" recipe {r_rate:.0f} tok/s (MFU {mfu['baseline']:.1%}, peak {peaks['baseline']} GiB)"
            + (f"; 3-epoch job {s['wall']:.1f} s" if workload == "lines" else ""),
            flush=True,
        )
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return records


def bench_peers(
    model_id: str,
    label: str,
    workloads: list[str],
    tiny: bool,
    *,
    warmup: int = 2,
    timed: int = 4,
    auto_row: bool = True,
    rows: tuple[str, ...] = ROWS,
    trl: bool = True,
) -> list[Record]:
    """Serifu's trainer next to TRL's SFTTrainer (``bench/gpu/peer_trl.py``: its best settings)
    on the same base, data and token budget per step: ``warmup`` + ``timed`` steps each, the
    median real tokens/s of the timed ones. Serifu's ``rows`` (:data:`ROWS`): checkpointing
    on as TRL (``ckpt``), the ``"auto"`` checkpointing policy (``auto``; both with Liger
    off), Liger's layers with checkpointing on (``liger``), the new defaults: auto
    checkpointing and ``kernels="auto"`` (``liger-auto``), and Liger's layers and fused
    linear cross-entropy (``liger-flce``); and those rows with the decoder layers compiled
    (``train.compile = "on"``, :data:`COMPILE_ROWS`: ``compile`` = ``ckpt`` compiled,
    ``compile-liger``, ``compile-auto``, ``compile-liger-auto``; the other rows run
    uncompiled); records ``<workload>-<row>`` (``ckpt``: plain ``<workload>``), the
    compiled ones with compile seconds, graphs, graph breaks, the first-step loss against
    their eager row and the steps a run needs to earn the compile time back in ``extra``. ``trl=False`` skips TRL (baseline 0). The Liger rows are left out where Liger cannot run (architecture,
    no CUDA), except with ``tiny`` on the CPU, where they run with ``kernels="auto"``
    (resolved off) to exercise the harness. ``auto_row=False`` drops the auto rows. TRL
    runs after Serifu on each base (its and Liger's patches are undone after each run)."""
    from bench.gpu.peer_trl import BEST, trl_run
    from serifu import plugins
    from serifu.training.kernels import choose_kernels

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    targets = tuple(plugins.get_base_model(model_id).lora_targets)
    model = random_model(model_id, quantize=True)
    n_params = count_params(model)
    vocab = model.config.get_text_config().vocab_size
    steps = warmup + timed
    budget = 512 if tiny else SERIFU["lines"]["max_tokens"]
    liger = choose_kernels(model, "auto")
    liger_ok = liger.kernels == "liger"
    kern = "liger" if liger_ok else "auto"
    if not liger_ok:
        print(f"{label}: Serifu's Liger rows {'run resolved off' if tiny else 'skipped'}:"
              f" {liger.reason}", flush=True)  # fmt: skip
    chosen_rows = runnable_rows(rows, auto_row=auto_row, liger=liger_ok or tiny)
    data, serifu_runs = {}, {}
    for workload in workloads:  # enough data for every step to be full on both sides
        n = (64 if tiny else 2 * LINES) if workload == "lines" else (48 if tiny else 1024)
        data[workload] = _examples(workload, vocab, n)[0]
        settings = dict(SERIFU[workload]) | (
            {"max_tokens": budget, "pack_row_tokens": 256} if tiny else {}
        )
        eager = settings | {"compile": "off"}
        all_variants = {
            "ckpt": eager | {"kernels": "off"},
            "auto": eager | {"gradient_checkpointing": "auto", "kernels": "off"},
            "liger": eager | {"kernels": kern},
            "liger-auto": eager | {"gradient_checkpointing": "auto", "kernels": "auto"},
            "liger-autograd-head": eager | {"kernels": kern, "closed_form_head": False},
            "liger-chunk64m": eager | {"kernels": kern, "loss_chunk_bytes": 2**26},
            "liger-autocast": eager | {"kernels": kern, "autocast": "on"},
            "liger-lean": eager | {"kernels": kern, "lora_backward": "lean"},
            "liger-lean-autocast": eager
            | {"kernels": kern, "lora_backward": "lean", "autocast": "on"},
            "liger-offload": eager | {"kernels": kern, "checkpoint_offload": "on"},
            "liger-offload-torch": eager | {"kernels": kern, "torch_offload": True},
            "liger-autocast-offload": eager
            | {"kernels": kern, "autocast": "on", "checkpoint_offload": "on"},
            "liger-lean-autocast-offload": eager
            | {
                "kernels": kern,
                "lora_backward": "lean",
                "autocast": "on",
                "checkpoint_offload": "on",
            },
            "liger-capture": eager
            | {"kernels": kern, "gradient_checkpointing": False, "capture": "on"},
            "liger-capture-amp": eager
            | {"kernels": kern, "gradient_checkpointing": False, "capture": "on", "autocast": "on"},
            "liger-capture-amp-lean-ckpt": eager
            | {"kernels": kern, "capture": "on", "autocast": "on", "lora_backward": "lean"},
            "liger-flce": eager
            | {"kernels": kern, "loss_kernel": "liger" if liger_ok else "serifu"},
            "compile": settings | {"kernels": "off", "compile": "on"},
            "compile-liger": settings | {"kernels": kern, "compile": "on"},
            "compile-auto": settings
            | {"gradient_checkpointing": "auto", "kernels": "off", "compile": "on"},
            "compile-liger-auto": settings
            | {"gradient_checkpointing": "auto", "kernels": "auto", "compile": "on"},
        }
        variants = {name: all_variants[name] for name in chosen_rows}
        for name, chosen in variants.items():
            try:
                run = serifu_run(
                    model, data[workload], targets, chosen, epochs=1, max_steps=steps, dev=dev
                ) | {"settings": chosen}
                serifu_runs[workload, name] = run
                rate, _ = steady(run["times"], run["tokens"], skip=warmup)
                print(  # at once: a run cut short by a time limit still shows its rows
                    f"{label} {workload} serifu[{name}] done: {rate:.0f} tok/s, peak"
                    f" {run['peak']:.2f} GiB, first-step loss {run['losses'][0]:.5f};"
                    f" {compile_note(run, warmup)}",
                    flush=True,
                )
            except Exception as err:  # a Liger/compile row that fails here: say so, keep going
                if not name.startswith(("liger", "compile")):
                    raise
                print(f"{label} {workload} serifu[{name}] failed: {type(err).__name__}: {err}")
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
    records: list[Record] = []
    for workload in workloads:
        lr = SERIFU[workload].get("learning_rate", 2e-4)
        try:
            if not trl:
                raise RuntimeError("not run (--no-trl)")
            t = trl_run(
                model, data[workload], targets, token_budget=budget, steps=steps, learning_rate=lr
            )
            t_rate, t_n = steady(t["times"], t["tokens"], skip=warmup)
            t_peak, t_note = t["peak"], t["notes"]
        except Exception as err:  # TRL cannot run this architecture: say why, keep going
            t_rate, t_n, t_peak = 0.0, 0, 0.0
            t_note = f"TRL failed: {type(err).__name__}: {str(err)[:300]}"
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        trl_settings = {k: v for k, v in BEST.items() if k != "gradient_checkpointing_kwargs"}
        for name, s in ((n, r) for (w, n), r in serifu_runs.items() if w == workload):
            s_rate, s_n = steady(s["times"], s["tokens"], skip=warmup)
            mfu = {
                k: round(v * 6 * n_params / PEAK_FLOPS, 4)
                for k, v in (("serifu", s_rate), ("baseline", t_rate))
            }
            peaks = {"serifu": round(s["peak"], 2), "baseline": round(t_peak, 2)}
            eager_row = EAGER_OF.get(name, "ckpt")
            reference = serifu_runs.get((workload, eager_row)) or serifu_runs.get(
                (workload, "ckpt")
            )
            check = first_loss_check(s, reference)
            extra = compile_numbers(s, warmup)
            diff = first_loss_diff(s, reference)
            if extra and diff is not None and reference is not None:
                extra["first_loss_rel_diff"] = float(f"{diff:.3g}")
                extra["eager_row"] = eager_row if (workload, eager_row) in serifu_runs else "ckpt"
                saved = statistics.median(reference["times"][warmup:] or reference["times"])
                saved -= statistics.median(s["times"][warmup:] or s["times"])
                extra["step_s_saved"] = round(saved, 4)
                extra["break_even_steps"] = round(extra["compile_s"] / saved) if saved > 0 else None
            if s.get("lean_lora_layers"):  # train.lora_backward = "lean"
                extra["lean_lora_layers"] = s["lean_lora_layers"]
            if s["checkpoint_offload"]["setting"] != "off":  # what went to the host, or why not
                extra["checkpoint_offload"] = s["checkpoint_offload"]
            if s.get("capture", {}).get("capture") == "on":  # the static shapes and softmax
                extra["capture"] = s["capture"]["reason"]
            note = (
                f"serifu {s['settings']}, checkpointing: {s['checkpointing']['reason']},"
                f" {kernel_note(s['kernels'])}; {compile_note(s, warmup)}; {check};"
                f" TRL SFTTrainer {trl_settings}, max_length {budget}, lr {lr}: {t_note};"
                f" {warmup} warm-up + {min(s_n, t_n)} timed steps each; N={n_params / 1e9:.2f}B"
            )
            records.append(
                Record(
                    label,
                    workload if name == "ckpt" else f"{workload}-{name}",
                    "real_tokens_per_s",
                    round(s_rate, 1),
                    round(t_rate, 1),
                    "tok/s",
                    peaks,
                    mfu,
                    repeats=min(s_n, t_n) if trl else s_n,
                    notes=note,
                    baseline_kind="trl",
                    extra=extra,
                )
            )
            print(
                f"{label} {workload} serifu[{name}] {s_rate:.0f} tok/s (MFU {mfu['serifu']:.1%},"
                f" peak {peaks['serifu']} GiB) vs TRL {t_rate:.0f} tok/s (MFU {mfu['baseline']:.1%},"
                f" peak {peaks['baseline']} GiB); {kernel_note(s['kernels'])};"
                f" {compile_note(s, warmup)}; {check}; {t_note}",
                flush=True,
            )
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return records


def varlen_matches_sdpa(model: Any, examples: list[Any], dev: str) -> float:
    """Relative difference of one packed batch's loss under varlen and SDPA attention."""
    from serifu.accel.varlen import use_varlen_attention
    from serifu.training.loss import loss_sum
    from serifu.training.trainer import collate

    reset_base(model)
    losses = []
    for varlen in (False, True):
        if varlen:
            use_varlen_attention(model)
        batch = collate(
            examples, packing=True, pad_id=0, device=dev, row_tokens=None if varlen else 2048
        )
        with torch.no_grad():
            total, n = loss_sum(model, batch)
        losses.append(float(total) / n)
    reset_base(model)
    return abs(losses[1] - losses[0]) / abs(losses[0])


def ablate(
    model_id: str, workloads: list[str], tiny: bool, steps: int, variants: list[str] | None = None
) -> list[dict[str, Any]]:
    """Each lever of ``ABLATION`` on and off: median tokens/s after 2 warm-up steps, peak."""
    from serifu import plugins
    from serifu.errors import SerifuError

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    targets = tuple(plugins.get_base_model(model_id).lora_targets)
    model = random_model(model_id, quantize=True)
    vocab = model.config.get_text_config().vocab_size
    rows = []
    for workload in workloads:
        examples, _ = _examples(workload, vocab, 64 if tiny else 4096)
        base = dict(SERIFU[workload]) | ({"max_tokens": 512} if tiny else {})
        check = varlen_matches_sdpa(model, examples[:64], dev) if not variants else float("nan")
        print(f"{model_id} {workload}: varlen vs sdpa loss, relative difference {check:.2e}")
        for name, change in ABLATION.items():
            if variants and name not in variants:
                continue
            settings = base | change
            if isinstance(settings["max_tokens"], str):
                settings["max_tokens"] = int(
                    base["max_tokens"] * float(settings["max_tokens"][:-1])
                )
            row: dict[str, Any] = {"model": model_id, "workload": workload, "variant": name}
            row |= {"settings": settings, "varlen_vs_sdpa_rel_diff": check}
            try:
                r = serifu_run(
                    model, examples, targets, settings, epochs=1, max_steps=steps, dev=dev
                )
                rate, n = steady(r["times"], r["tokens"], skip=2)
                row |= {"tokens_per_s": round(rate, 1), "peak_gib": round(r["peak"], 2)}
                row |= {"step_s": round(statistics.median(r["times"][2:]), 4), "timed": n}
                row["checkpointing"] = r["checkpointing"]
                row["kernels"] = r["kernels"]
            except torch.OutOfMemoryError:
                row["error"] = "out of memory"
                gc.collect()
                torch.cuda.empty_cache()
            except SerifuError as err:  # e.g. a Liger lever where Liger cannot run (CPU)
                row["error"] = str(err)
            print(json.dumps(row), flush=True)
            rows.append(row)
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return rows


def profile(
    model_id: str,
    workload: str,
    tables: bool = True,
    tiny: bool = False,
    rows: tuple[str, ...] = ("eager", "liger"),
) -> list[dict[str, Any]]:
    """Where a Serifu step's time goes, per :data:`PROFILE_ROWS` row: Liger's layers off
    and on (``kernels="auto"``: off where Liger cannot run), layers compiled or not
    (``compile="on"``; the warm-up run compiles): kernel launches per step (GPU; aten
    operators on the CPU, where compiled code launches none), step times, and the top
    operators by CPU and GPU time over 3 steps."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from serifu import plugins

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = random_model(model_id, quantize=True)
    examples, _ = _examples(workload, model.config.get_text_config().vocab_size, 2048)
    targets = tuple(plugins.get_base_model(model_id).lora_targets)
    small = {"max_tokens": 512, "pack_row_tokens": 256} if tiny else {}
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
    found = []
    for name in rows:
        settings = SERIFU[workload] | small | PROFILE_ROWS[name]
        warm = serifu_run(model, examples, targets, settings, epochs=1, max_steps=2, dev=dev)
        with torch_profile(activities=activities) as prof:
            r = serifu_run(model, examples, targets, settings, epochs=1, max_steps=3, dev=dev)
        events = prof.events()
        if dev == "cuda":
            launches = sum(1 for e in events if e.device_type == DeviceType.CUDA)
        else:
            launches = sum(1 for e in events if e.name.startswith("aten::"))
        row = {
            "model": model_id,
            "workload": workload,
            "row": name,
            "kernels": kernel_note(r["kernels"]),
            "compile": compile_note(warm, 1),  # the warm-up run compiled; this one reused it
            "launches_per_step": round(launches / len(r["times"])),
            "counted": "CUDA kernels" if dev == "cuda" else "aten operators (CPU, nested ones too)",
            "step_s": [round(t, 4) for t in r["times"]],
        }
        print(json.dumps(row), flush=True)
        found.append(row)
        keys = ["self_cpu_time_total"] + (["self_cuda_time_total"] if dev == "cuda" else [])
        for key in keys if tables else []:
            print(prof.key_averages().table(sort_by=key, row_limit=14, max_name_column_width=60))
    return found


def cap_memory(gib: float) -> None:
    """The allocator stops this process at ``gib`` GiB of GPU 0, and
    ``memory_policy.free_gpu_bytes`` plans within that share."""
    import torch

    if not torch.cuda.is_available():
        print("--memory-gib: no CUDA device, nothing to cap", flush=True)
        return
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, gib * 2**30 / total), 0)
    print(f"GPU memory capped at {gib:g} GiB of {total / 2**30:.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default=",".join(REPORT_MODELS))
    ap.add_argument("--workloads", default="lines,dialogue")
    ap.add_argument(
        "--tiny", action="store_true", help="tiny-* stand-ins on the CPU (tests the harness)"
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--ablate", action="store_true", help="time each lever on/off instead")
    ap.add_argument("--steps", type=int, default=7, help="--ablate: steps per variant")
    ap.add_argument("--variants", default="", help="--ablate: only these (comma-separated)")
    ap.add_argument("--profile", action="store_true", help="profile a few Serifu steps instead")
    ap.add_argument("--no-tables", action="store_true", help="--profile: launch counts only")
    ap.add_argument(
        "--profile-rows",
        default="eager,liger",
        help=f"--profile: rows (of {', '.join(PROFILE_ROWS)})",
    )
    ap.add_argument(
        "--peers", default="", help="'trl': Serifu next to TRL's SFTTrainer instead of the recipe"
    )
    ap.add_argument("--warmup", type=int, default=2, help="--peers: warm-up steps per run")
    ap.add_argument("--timed", type=int, default=4, help="--peers: timed steps per run")
    ap.add_argument(
        "--no-auto-row", action="store_true", help="--peers: skip Serifu's auto-checkpointing run"
    )
    ap.add_argument(
        "--rows",
        default=",".join(ROWS),
        help=f"--peers: Serifu's rows (of {', '.join(ALL_ROWS)})",
    )
    ap.add_argument("--no-trl", action="store_true", help="--peers: Serifu's rows only")
    ap.add_argument(
        "--memory-gib",
        type=float,
        default=None,
        help="cap this process's GPU memory (as on a smaller card): auto checkpointing plans within it",
    )
    args = ap.parse_args()
    t0 = time.time()
    if args.memory_gib:
        cap_memory(args.memory_gib)
    if args.peers:
        if args.peers != "trl":
            ap.error(f"unknown peer {args.peers!r} (known: trl)")
        known = ALL_ROWS
        unknown = set(args.rows.split(",")) - set(known)
        if unknown:
            ap.error(f"unknown --rows {', '.join(sorted(unknown))} (known: {', '.join(known)})")
        out = args.out or results_path("-peers")
        for model_id in args.models.split(","):
            real = TINY[model_id] if args.tiny else model_id
            recs = bench_peers(
                real,
                real if args.tiny else model_id,
                args.workloads.split(","),
                args.tiny,
                warmup=args.warmup,
                timed=args.timed,
                auto_row=not args.no_auto_row,
                rows=tuple(args.rows.split(",")),
                trl=not args.no_trl,
            )
            append_results(recs, out)
        print(f"wrote {out} in {time.time() - t0:.0f} s")
        return
    if args.profile:
        profile_rows = tuple(args.profile_rows.split(","))
        unknown = set(profile_rows) - set(PROFILE_ROWS)
        if unknown:
            ap.error(f"unknown --profile-rows {', '.join(sorted(unknown))}")
        found = []
        for model_id in args.models.split(","):
            real = TINY[model_id] if args.tiny else model_id
            workload = args.workloads.split(",")[0]
            found += profile(
                real, workload, tables=not args.no_tables, tiny=args.tiny, rows=profile_rows
            )
        if args.out:
            from serifu.fsutil import atomic_write_text

            atomic_write_text(args.out, json.dumps(found, ensure_ascii=False, indent=1))
        return
    if args.ablate:
        from serifu.fsutil import atomic_write_text

        out = args.out or results_path("-ablation")
        rows = json.loads(out.read_text(encoding="utf-8")) if out.exists() else []
        for model_id in args.models.split(","):
            real = TINY[model_id] if args.tiny else model_id
            chosen = args.variants.split(",") if args.variants else None
            new = ablate(real, args.workloads.split(","), args.tiny, args.steps, chosen)
            keys = {(r["model"], r["workload"], r["variant"]) for r in new}
            rows = [r for r in rows if (r["model"], r["workload"], r["variant"]) not in keys] + new
            atomic_write_text(out, json.dumps(rows, ensure_ascii=False, indent=1))
        print(f"wrote {out} in {time.time() - t0:.0f} s")
        return
    out = args.out or results_path()
    for model_id in args.models.split(","):
        real = TINY[model_id] if args.tiny else model_id
        recs = bench_model(
            real, real if args.tiny else model_id, args.workloads.split(","), args.tiny
        )
        append_results(recs, out)
    print(f"wrote {out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
