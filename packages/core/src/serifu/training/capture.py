"""Whole-step CUDA-graph capture of the training step (``train.capture = "on"``).

A small model's step is launch-bound: gemma-3-270m's 16k-token step is ~4,000 kernels
launched from Python (HF, PEFT, bitsandbytes dispatch), 135 ms of device work in 195-270 ms.
Capturing forward and backward once as a CUDA graph and replaying it removes that host time
(measured 2.36x on an H200 with the pieces below, ``bench/gpu/train_capture.py``). A graph
needs fixed shapes and no host synchronisation, so the step is made static:

- one packed row (varlen attention: the row has no batch cost), the smallest that holds
  every step of the run (:func:`plan_shapes`); a step's unused end is split into label-less
  padding examples, so every step has the same number of examples (``cu_seq_lens`` of a
  fixed length), none is empty and none is longer than the run's longest example (flash
  attention's ``max_length``: its grid grows with it, so the row's width there made the
  step 1.8x slower);
- the loss over a fixed number of gathered positions, the step's labelled ones then weight-0
  padding, through the frozen head's closed-form gradient in fixed chunks (no ``nonzero``),
  its softmax and gradient compiled into one function on CUDA (~45 % of the device time
  was their eager passes over float32 logits);
- the label count enters as a device scalar (the gradient is the sum over labelled tokens
  divided by their number, as in :func:`serifu.training.step.accumulate_gradients`).

Clipping, AdamW and the scheduler run eagerly after each replay, on the gradients the graph
wrote (so they must not be set to None between steps); the next step's batch is built on
the host while the graph runs. Without CUDA the same static step runs eagerly (tests compare
it with the product's step).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from serifu.errors import SerifuError

if TYPE_CHECKING:
    import torch

    from serifu.config.train import TrainConfig
    from serifu.training.examples import Example


@dataclass(frozen=True)
class Shapes:
    """The fixed sizes every step of a run is padded to."""

    budget: int  # most tokens of real examples in a step
    sequences: int  # examples per step, padding ones included: cu_seq_lens has one more
    labels: int  # gathered positions for the loss (a multiple of chunk)
    chunk: int  # positions per loss chunk
    longest: int  # tokens in any one example, padding ones included (flash's max_length)
    width: int  # tokens in the row: every step's examples, then its padding examples


def plan_shapes(step_examples: Sequence[Sequence[Example]], budget: int, chunk: int) -> Shapes:
    """The smallest row that holds every step of the run: a step of ``n`` examples and
    ``u`` tokens leaves ``width - u`` tokens to ``sequences - n`` padding examples of 1 to
    ``longest`` tokens each. ``width = U + sequences`` with ``U`` the most ``u - n`` of any
    step gives each padding example at least one token; ``sequences`` is then the least
    count whose padding examples, at ``longest`` tokens, hold every step's unused end."""
    from serifu.training.examples import IGNORE

    longest = max(2, max(len(ex) for exs in step_examples for ex in exs))
    counts = [len(exs) for exs in step_examples]
    used = [sum(len(ex) for ex in exs) for exs in step_examples]
    if max(used) > budget:
        raise ValueError(f"a step holds {max(used)} tokens, more than the budget {budget}")
    room = max(u - n for u, n in zip(used, counts, strict=True))
    # (sequences - n) * longest >= room + sequences - u, for every step
    sequences = max(
        -(-(longest * n + room - u) // (longest - 1)) for u, n in zip(used, counts, strict=True)
    )
    labelled = max(
        sum(label != IGNORE for ex in exs for label in ex.labels[1:]) for exs in step_examples
    )
    labels = max(chunk, -(-labelled // chunk) * chunk)
    return Shapes(budget, sequences, labels, chunk, longest, room + sequences)


def static_batch(examples: Sequence[Example], shapes: Shapes) -> dict[str, torch.Tensor]:
    """One step's tensors at the fixed shapes (CPU), built with whole-row tensor operations
    (a per-token Python loop took ~0.1 s a step on gemma's 16k tokens: host time no graph
    removes)."""
    import torch

    from serifu.training.batches import lay_out_row
    from serifu.training.examples import IGNORE

    used = sum(len(ex) for ex in examples)
    slots, rest = shapes.sequences - len(examples), shapes.width - used
    if not slots <= rest <= slots * shapes.longest:
        raise ValueError(
            f"{rest} padding tokens do not fit {slots} examples of <= {shapes.longest}"
        )
    # padding examples share the unused tokens evenly (none empty, none past ``longest``)
    pads = [rest // slots + (k < rest % slots) for k in range(slots)] if slots else []
    ids, labels, positions, starts = lay_out_row(examples, pads)
    cu = torch.zeros((shapes.sequences + 1,), dtype=torch.int32)
    cu[:-1], cu[-1] = starts, shapes.width
    where = (labels != IGNORE).nonzero().flatten()  # token t's label is predicted at t - 1
    n = len(where)
    index = torch.zeros(shapes.labels, dtype=torch.long)
    targets = torch.zeros(shapes.labels, dtype=torch.long)
    weight = torch.zeros(shapes.labels, dtype=torch.float32)
    index[:n], targets[:n], weight[:n] = where - 1, labels[where], 1.0
    return {
        "input_ids": ids.view(1, -1),
        "position_ids": positions.view(1, -1),
        "cu": cu,
        "index": index,
        "targets": targets,
        "weight": weight,
        "inv_labels": torch.tensor(1.0 / max(n, 1), dtype=torch.float32),
    }


def forward_backward(
    model: Any,
    batch: dict[str, torch.Tensor],
    shapes: Shapes,
    *,
    fused: bool = False,
    amp: torch.dtype | None = None,
) -> torch.Tensor:
    """The static step's forward and backward (gradients land in ``.grad``); returns the
    summed loss as a device tensor (no host synchronisation anywhere). ``fused``: the
    loss's softmax and gradient as one compiled function (:attr:`LinearHead.fused`);
    ``amp``: the forward under autocast to that dtype (``train.autocast``)."""
    from serifu.accel.loss import decoder_and_head, frozen_linear_head, linear_head_loss
    from serifu.accel.mask_hash import advance
    from serifu.training.loss import causal_lm
    from serifu.training.precision import forward_precision

    advance(model)  # the step's key for hashed dropout masks (serifu.accel.mask_hash)
    lm = causal_lm(model)
    decoder, _, _ = decoder_and_head(lm)
    head = frozen_linear_head(lm)
    if head is None:
        raise ValueError("the static step needs a frozen, plain linear output head")
    head = replace(head, fused=fused)
    with forward_precision(amp):
        hidden = decoder(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            cu_seq_lens_q=batch["cu"],
            cu_seq_lens_k=batch["cu"],
            max_length_q=shapes.longest,
            max_length_k=shapes.longest,
            use_cache=False,
        ).last_hidden_state
        h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch["index"])
        total = linear_head_loss(h, batch["targets"], head, shapes.chunk, batch["weight"])
    (total * batch["inv_labels"]).backward()
    return total.detach()


class StaticStep:
    """Runs :func:`forward_backward` on fixed device buffers, eagerly or as a CUDA graph
    (recorded on the first step, replayed after). ``fused``: the loss's softmax compiled
    (taken back, with a warning, if compiling fails)."""

    def __init__(
        self,
        model: Any,
        shapes: Shapes,
        device: str,
        *,
        graph: bool,
        fused: bool = False,
        amp: torch.dtype | None = None,
    ) -> None:
        self.model, self.shapes, self.device, self.graph = model, shapes, device, graph
        self.fused, self.amp = fused, amp
        self.buffers: dict[str, torch.Tensor] | None = None
        self.cuda_graph: Any = None
        self.loss: torch.Tensor | None = None
        self.ready: tuple[list[int], dict[str, torch.Tensor]] | None = None
        """The next step's batch, built while this step's graph ran (:meth:`run`'s ``then``)."""

    def load(self, batch: dict[str, torch.Tensor]) -> None:
        if self.buffers is None:
            self.buffers = {k: v.to(self.device) for k, v in batch.items()}
        else:
            for k, v in batch.items():
                self.buffers[k].copy_(v, non_blocking=True)

    def capture(self, warmup: int = 3) -> None:
        """Warm up on a side stream (as torch's whole-network capture recipe asks), then
        record one forward and backward; the gradients then live in the graph's pool."""
        import torch

        assert self.buffers is not None
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                for p in trainable:
                    p.grad = None
                self._forward_backward()
        torch.cuda.current_stream().wait_stream(side)
        for p in trainable:
            p.grad = None
        self.cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.cuda_graph):
            self.loss = forward_backward(
                self.model, self.buffers, self.shapes, fused=self.fused, amp=self.amp
            )

    def _forward_backward(self) -> torch.Tensor:
        """One eager pass; a compiled softmax that fails to compile is replaced by the eager
        one (the gradients of the failed pass are dropped)."""
        assert self.buffers is not None
        try:
            return forward_backward(
                self.model, self.buffers, self.shapes, fused=self.fused, amp=self.amp
            )
        except Exception as err:  # inductor/triton missing or broken: an optional speed-up
            if not self.fused:
                raise
            self.fused = False
            print(
                f"capture: the loss's compiled softmax failed ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); using the eager one",
                file=sys.stderr,
            )
            for p in self.model.parameters():
                p.grad = None
            return forward_backward(self.model, self.buffers, self.shapes, amp=self.amp)

    def _batch(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        ready, self.ready = self.ready, None
        if ready is not None and ready[0] == [id(ex) for ex in examples]:
            return ready[1]
        return static_batch(examples, self.shapes)

    def run(self, examples: Sequence[Example], then: Sequence[Example] | None = None) -> float:
        """Forward and backward over one step's ``examples``; their mean token loss.
        ``then``: the next step's examples, whose batch is built on the host while this
        step's graph runs (the wait for its loss would otherwise idle the device)."""
        batch = self._batch(examples)
        self.load(batch)
        assert self.buffers is not None
        if self.graph:
            if self.cuda_graph is None:
                self.capture()
            self.cuda_graph.replay()
            loss = self.loss
        else:
            for p in self.model.parameters():
                if p.requires_grad:
                    p.grad = None
            loss = self._forward_backward()
        if then is not None:
            self.ready = ([id(ex) for ex in then], static_batch(then, self.shapes))
        assert loss is not None
        return float(loss) * float(batch["inv_labels"])


@dataclass(frozen=True)
class CaptureDecision:
    """Whether a run uses the static (captured) step and why (training log, ``serifu.json``)."""

    capture: Literal["on", "off"]
    reason: str
    graph: bool = False
    shapes: dict[str, int] | None = None
    fused_softmax: bool = False
    setting: str = "on"
    """``train.capture`` as configured ("auto" falls back to the usual step on failure)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DROPOUT_KEYS = (
    "attention_dropout",
    "attn_pdrop",
    "hidden_dropout",
    "resid_pdrop",
    "embd_pdrop",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
)
"""Config fields through which transformers' models drop out inside their layers."""


def recompute_draws(model: Any, config: TrainConfig) -> str | None:
    """Why a checkpointed layer's recompute would draw random numbers (None: it draws none).

    A CUDA graph cannot capture checkpointing's RNG replay, so a captured step may
    checkpoint only where nothing needs replaying: LoRA without dropout, or the lean LoRA
    function, whose masks then come from a hash the recompute computes again
    (:mod:`serifu.accel.mask_hash`), and a base without dropout of its own."""
    import torch

    from serifu.training.loss import causal_lm

    p = config.lora.dropout
    if p > 0 and config.lora_backward != "lean":
        return f"LoRA dropout {p:g} draws new masks there (train.lora_backward = 'lean' hashes the forward's again)"
    text = causal_lm(model).config.get_text_config()
    for key in DROPOUT_KEYS:
        value = getattr(text, key, None)
        if isinstance(value, int | float) and value > 0:
            return f"the base's own dropout ({key} = {value:g})"
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout) and module.p > 0 and "lora_dropout" not in name:
            return f"the base's own dropout ({name})"
    return None


def capture_blockers(
    model: Any, config: TrainConfig, *, distributed: bool, checkpointing: bool
) -> list[str]:
    """What keeps this run from the static step (empty: it can run)."""
    from serifu.accel.loss import frozen_linear_head
    from serifu.training.loss import causal_lm

    found = []
    if distributed:
        found.append("it runs in one process (not under torchrun)")
    if config.gradient_accumulation_steps != 1:
        found.append("it needs train.gradient_accumulation_steps = 1")
    if not config.packing:
        found.append("it needs train.packing = true")
    if checkpointing:
        why = recompute_draws(model, config)
        if why is not None:
            found.append(
                "it needs gradient checkpointing off (train.gradient_checkpointing), or a "
                f"recompute that draws no random numbers: {why}"
            )
        if config.checkpoint_offload != "off":
            found.append("with checkpointing it needs train.checkpoint_offload = 'off'")
    if config.compile != "off":
        found.append("it replaces train.compile (set it to 'off')")
    if config.loss_kernel != "serifu":
        found.append("it needs train.loss_kernel = 'serifu'")
    if frozen_linear_head(causal_lm(model)) is None:
        found.append("it needs a frozen, plain linear output head")
    return found


def leave_capture(model: Any, *, checkpointing: bool, checkpoint_every: int = 1) -> None:
    """Undo what :func:`use_capture` set for the static step when a run goes back to the usual
    step: the lean layers draw their masks by ``bernoulli_`` again (only the static step draws
    a new key for the hash each step) and the checkpointed layers replay the RNG again."""
    from serifu.accel.lora_train import drop_hashed_masks
    from serifu.training.model_setup import set_checkpointing

    drop_hashed_masks(model)
    if checkpointing:
        set_checkpointing(model, True, checkpoint_every)


AUTO_MAX_PARAMS = 1_000_000_000
"""``"auto"`` captures models up to this size: gemma-3-270m's step is launch-bound (2.0-2.4x
captured); a 3.6-7B model's step is bound by its math, where the static shapes' padding
would cost more than the launches saved."""


def auto_blocker(model: Any, device: str) -> str | None:
    """Why ``"auto"`` leaves capture off for this model and device (None: it may run)."""
    if not device.startswith("cuda"):
        return f"the model is on {device} (a CUDA graph needs a CUDA device)"
    from serifu.training.compile import counted_params

    n_params = counted_params(model)
    if n_params > AUTO_MAX_PARAMS:
        return (
            f"{n_params / 1e9:.1f}B parameters: the step is bound by its math (capture pays "
            f"on launch-bound models up to {AUTO_MAX_PARAMS / 1e9:.0f}B)"
        )
    return None


def use_capture(
    model: Any,
    config: TrainConfig,
    examples: Sequence[Example],
    plan: Sequence[Sequence[Sequence[int]]],
    *,
    device: str,
    distributed: bool = False,
    checkpointing: bool = False,
    checkpoint_every: int = 1,
) -> tuple[CaptureDecision, StaticStep | None]:
    """Resolve ``train.capture`` for a run whose optimizer steps are ``plan`` (micro-batches
    of indices into ``examples``): the decision, and the static step when it is on. ``"on"``
    where the run cannot use it is an error that says why. With ``checkpointing`` (every
    ``checkpoint_every``-th layer) the layers are set to recompute without the RNG replay,
    which :func:`recompute_draws` has found needless; lean LoRA layers take their dropout
    masks from a hash (:func:`serifu.accel.lora_train.use_hashed_masks`)."""
    from serifu.accel.lora_train import use_hashed_masks
    from serifu.training.compile import compiler_unavailable
    from serifu.training.loss import causal_lm, loss_chunk_tokens
    from serifu.training.precision import autocast_dtype

    setting = config.capture
    if setting == "off":
        return CaptureDecision("off", "off (set in the config)", setting=setting), None
    if setting == "auto":
        why = auto_blocker(model, str(device))
        if why is None:
            found = capture_blockers(
                model, config, distributed=distributed, checkpointing=checkpointing
            )
            why = "; ".join(found) if found else None
        if why is not None:
            return CaptureDecision("off", f"auto: off: {why}", setting=setting), None
    else:
        blockers = capture_blockers(
            model, config, distributed=distributed, checkpointing=checkpointing
        )
        if blockers:
            raise SerifuError(
                "train.capture = 'on' cannot run for this training: " + "; ".join(blockers) + ". "
                "Change those settings, or set train.capture = 'off'."
            )
    steps = [[examples[i] for i in micro] for (micro,) in plan]  # one micro-batch a step
    budget = max(sum(len(ex) for ex in exs) for exs in steps)
    chunk = min(
        loss_chunk_tokens(int(causal_lm(model).config.get_text_config().vocab_size)), budget
    )
    shapes = plan_shapes(steps, budget, chunk)
    graph = str(device).startswith("cuda")
    where = "one CUDA graph, replayed" if graph else "eagerly (no CUDA device: no graph)"
    no_compiler = compiler_unavailable(str(device)) if graph else "no CUDA device"
    fused = no_compiler is None
    reason = (
        f"on: the static step ({shapes.width} tokens, {shapes.sequences} example slots, "
        f"{shapes.labels} loss positions) runs as {where}; the loss's softmax "
        + ("compiled (torch.compile)" if fused else f"eager ({no_compiler})")
    )
    if use_hashed_masks(model, compiled=graph and fused) is not None:  # lean LoRA layers
        reason += "; LoRA dropout masks from a hash (the same with checkpointing or without)"
    if checkpointing:
        from serifu.training.model_setup import set_checkpointing

        set_checkpointing(model, True, checkpoint_every, replay_rng=False)
        reason += "; the checkpointed layers recompute without RNG replay"
    prefix = "auto: " if setting == "auto" else ""
    decision = CaptureDecision("on", prefix + reason, graph, asdict(shapes), fused, setting)
    amp = autocast_dtype(model, config, str(device))
    return decision, StaticStep(model, shapes, device, graph=graph, fused=fused, amp=amp)
