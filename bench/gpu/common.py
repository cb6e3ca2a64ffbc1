"""Shared pieces of the GPU benchmarks: architecture-exact random models, workloads, timing,
result records. Speed does not depend on weight values, so random weights are honest here.

Every script also runs on the CPU with ``--tiny`` (tiny-* plugins, few examples), which is
how the harness itself is tested before a GPU lease.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.gpu import memory_trace

ROOT = Path(__file__).resolve().parents[2]
LENGTHS = ROOT / "bench" / "data" / "cast_token_lengths.json"
REPORT_MODELS = ["line-3.6b", "novel-gptj-6b", "stablelm-beta-7b", "gemma-3-270m"]
TINY = {
    "line-3.6b": "tiny-neox",
    "novel-gptj-6b": "tiny-gptj",
    "stablelm-beta-7b": "tiny-llama",
    "gemma-3-270m": "tiny-gemma",
}


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def gpu_name() -> str:
    return (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu-{platform.machine()}"
    )


def versions() -> dict[str, str]:
    from serifu.versions import versions as library_versions

    out = library_versions(("torch", "transformers", "peft", "bitsandbytes", "accelerate"))
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
        out["gpu"] = gpu_name()
    return out


def default_dtype() -> torch.dtype:
    """The benchmarks' compute dtype: bf16 on the GPU, float32 on the CPU (``--tiny``)."""
    return torch.bfloat16 if device() == "cuda" else torch.float32


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def capture(body: Callable[[], None]) -> torch.cuda.CUDAGraph:
    """``body`` run once on a side stream (compilation, lazy inits), then recorded as a CUDA
    graph (recording runs nothing)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        body()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        body()
    torch.cuda.synchronize()
    return graph


def peak_gib_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        if memory_trace.enabled():  # BENCH_MEMTRACE=1: what is alive at the peak
            memory_trace.start()


def peak_gib() -> float:
    if memory_trace.enabled():
        memory_trace.report()
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def median_time(
    fn: Callable[[], Any], *, repeats: int, warmup: int = 1
) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


# -- models ----------------------------------------------------------------------------
def quantize_nf4_(model: Any, compute_dtype: torch.dtype) -> Any:
    """Swap every ``nn.Linear`` but the output head for a bitsandbytes NF4 (double-quant) layer,
    as ``from_pretrained(quantization_config=...)`` would, without a trip through the disk
    (the product's :func:`serifu.inference.quantize.quantize_nf4_`), marked as loaded in 4-bit
    so that PEFT prepares it for QLoRA training."""
    from transformers import BitsAndBytesConfig

    from serifu.inference.quantize import quantize_nf4_ as swap_nf4_

    swap_nf4_(model)  # compute dtype = the model's dtype
    model.is_loaded_in_4bit = True
    model.config.quantization_config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
    return model


def random_model(model_id: str, *, quantize: bool, dtype: torch.dtype | None = None) -> Any:
    """The plugin's exact architecture with random weights, on the benchmark device."""
    from transformers import AutoModelForCausalLM

    from serifu import plugins

    dev = device()
    dtype = dtype or default_dtype()
    config = plugins.get_base_model(model_id).build_config()
    config.use_cache = False
    torch.manual_seed(0)
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    if quantize:
        quantize_nf4_(model, dtype)
    return model


def reset_base(model: Any) -> Any:
    """Undo what a previous run on the same model changed: the recipe's float32 upcast of
    every weight that is not 4-bit, Serifu's attention switch, gradient checkpointing.
    As if freshly loaded."""
    dtype = default_dtype()
    for p in model.parameters():
        if p.is_floating_point() and type(p).__name__ != "Params4bit":
            p.data = p.data.to(dtype)
    model.config._attn_implementation = "sdpa"
    from serifu.training.trainer import set_checkpointing

    set_checkpointing(model, False)
    return model


def count_params(model: Any) -> int:
    """Parameters of the architecture (4-bit weights counted as their full matrices)."""
    n = 0
    for p in model.parameters():
        shape = getattr(p, "quant_state", None)
        n += int(torch.Size(shape.shape).numel()) if shape is not None else p.numel()
    return n


# -- workloads -------------------------------------------------------------------------
def _lengths() -> dict[str, Any]:
    return json.loads(LENGTHS.read_text(encoding="utf-8"))


def lines_workload(n: int, vocab: int, seed: int = 0) -> list[list[int]]:
    """``n`` monologue lines with the token lengths of the sample cast's real lines."""
    import random

    rng = random.Random(seed)
    lengths = _lengths()["lines"]
    return [[rng.randrange(3, vocab) for _ in range(rng.choice(lengths))] for _ in range(n)]


SHARED = ROOT / "bench" / "data" / "cast_dialogue_shared.json"
HEROINE = "akane"
"""The heroine whose dialogue examples ``dialogue`` lays out (the GPU product runs' data)."""


def dialogue_workload(
    n: int, vocab: int, seed: int = 0, *, shared: bool = True
) -> list[tuple[list[int], int]]:
    """``n`` (token ids, prompt length) examples: profile system prompt + turn, then a reply.

    ``shared`` (the ``dialogue`` workload, session 32 on): one heroine's examples as the
    trainer encodes them (``bench/data/cast_dialogue_shared.json``): every example starts
    with the same tokens, her template opening and card (302 of akane's ~334), as real
    dialogue data does. Off (``dialogue-unshared``, the workload before session 32): the
    whole cast's (prompt, reply) lengths with every token random, so nothing is shared."""
    import random

    rng = random.Random(seed)
    pairs, head = _lengths()["dialogue"], []
    if shared:
        heroine = json.loads(SHARED.read_text(encoding="utf-8"))["heroines"][HEROINE]
        pairs = heroine["pairs"]
        head = [rng.randrange(3, vocab) for _ in range(heroine["shared"])]
    out = []
    for _ in range(n):
        prompt, reply = rng.choice(pairs)
        own = prompt + reply - len(head)
        out.append((head + [rng.randrange(3, vocab) for _ in range(own)], prompt))
    return out


# -- results ---------------------------------------------------------------------------
@dataclass
class Record:
    model: str
    workload: str
    metric: str
    serifu: float
    baseline: float
    unit: str
    peak_gib: dict[str, float] = field(default_factory=dict)
    mfu: dict[str, float] = field(default_factory=dict)
    repeats: int = 3
    notes: str = ""
    versions: dict[str, str] = field(default_factory=versions)
    baseline_kind: str = "recipe"
    """What ``baseline`` is: "recipe" (the report's), "trl" (TRL's SFTTrainer), "hf-static"
    (HF generate, static cache + compile), "switching", ..."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Machine-readable details of Serifu's side (e.g. ``compile_s``, ``graph_breaks``,
    ``first_loss_rel_diff`` of the compiled training rows)."""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = round(self.serifu / self.baseline, 3) if self.baseline else None
        return d


def results_path(tag: str = "") -> Path:
    name = f"{dt.date.today().isoformat()}-{gpu_name().replace(' ', '-').lower()}{tag}.json"
    return ROOT / "bench" / "results" / name


def record_key(r: dict[str, Any]) -> tuple[str, str, str, str]:
    """A record's identity: model, workload, metric and baseline kind (older files: recipe)."""
    return (r["model"], r["workload"], r["metric"], r.get("baseline_kind", "recipe"))


def append_results(records: list[Record], path: Path) -> None:
    """Merge records into ``path`` (replacing same model/workload/metric/baseline kind), atomically."""
    from serifu.fsutil import atomic_write_text

    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    keys = {record_key(r.as_dict()) for r in records}
    kept = [r for r in old if record_key(r) not in keys]
    atomic_write_text(
        path, json.dumps(kept + [r.as_dict() for r in records], ensure_ascii=False, indent=1)
    )
