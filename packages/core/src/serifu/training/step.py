"""One optimizer step: the step plan, collation, gradient accumulation, the update, and
the validation loss.

A step is split in two so Ctrl-C cannot cut it in half: :func:`accumulate_gradients`
(forward and backward over the step's micro-batches; interruptible, nothing applied yet)
and :func:`apply_update` (optimizer and scheduler; the trainer runs it shielded).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from serifu.config.train import TrainConfig
from serifu.errors import SerifuError
from serifu.training.batches import pack_batch, pad_batch, plan_epoch
from serifu.training.distributed import Dist, all_sum, sum_gradients
from serifu.training.examples import Example
from serifu.training.loss import loss_sum
from serifu.training.shared_prefix import pack_shared, prefix_to_share


def step_plan(
    lengths: Sequence[int], config: TrainConfig, augmented: Sequence[bool] | None = None
) -> tuple[list[list[int]], int]:
    """Example indices of every micro-batch, and the micro-batches of one epoch.

    The run has ``max_steps x gradient_accumulation_steps`` micro-batches, else
    ``ceil(epochs x per-epoch)``; :func:`group_steps` makes optimizer steps of them.
    With ``real_only_epochs = R`` the last R epochs leave out the examples flagged in
    ``augmented`` (the finishing phase after knowledge augmentation: the low-learning-rate
    end of the run fits her real lines only).
    """
    real = [i for i, flag in enumerate(augmented or ()) if not flag]
    finishing = config.real_only_epochs > 0 and augmented is not None and len(real) < len(lengths)

    def epoch(e: int, only_real: bool = False) -> list[list[int]]:
        pool = real if only_real else range(len(lengths))
        steps = plan_epoch(
            [lengths[i] for i in pool],
            batch_size=config.batch_size,
            max_tokens=config.max_tokens,
            seed=config.seed,
            epoch=e,
        )
        return [[pool[j] for j in micro] for micro in steps]

    per_epoch = len(epoch(0))
    if per_epoch == 0:
        raise SerifuError(
            "no training example is left after encoding (every row was empty or had no "
            "learnable token), so there is nothing to train on; check the dataset's train split"
        )
    accumulate = config.gradient_accumulation_steps
    if config.max_steps is not None:
        total = config.max_steps * accumulate
    elif finishing:
        mixed = config.epochs - config.real_only_epochs
        head = list(
            itertools.islice(
                itertools.chain.from_iterable(epoch(e) for e in itertools.count()),
                math.ceil(mixed * per_epoch),
            )
        )
        first = math.ceil(mixed)
        tail = [m for e in range(config.real_only_epochs) for m in epoch(first + e, True)]
        return head + tail, per_epoch
    else:
        total = max(1, math.ceil(config.epochs * per_epoch))
    steps = list(
        itertools.islice(itertools.chain.from_iterable(epoch(e) for e in itertools.count()), total)
    )
    return steps, per_epoch


def group_steps(micro: Sequence[list[int]], accumulate: int) -> list[list[list[int]]]:
    """Optimizer steps of ``accumulate`` micro-batches each (the last may have fewer)."""
    return [list(micro[i : i + accumulate]) for i in range(0, len(micro), accumulate)]


def collate(
    examples: Sequence[Example],
    *,
    packing: bool,
    pad_id: int,
    device: str,
    row_tokens: int | None = None,
    share_prefix: bool = False,
) -> dict[str, Any]:
    """The examples as one batch on ``device``: packed rows (``packing``; with
    ``share_prefix``, a common prompt prefix run once per row:
    :mod:`serifu.training.shared_prefix`) or right-padded rows."""
    prefix = prefix_to_share(examples) if packing and share_prefix else 0
    if prefix:
        batch = pack_shared(examples, prefix)
    elif packing:
        batch = pack_batch(examples, row_tokens)
    else:
        batch = pad_batch(examples, pad_id)
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


class NonFiniteLoss(SerifuError):
    """The loss (or gradient norm) became NaN or infinite."""


def accumulate_gradients(
    model: Any,
    micro_batches: Sequence[Sequence[Example]],
    *,
    config: TrainConfig,
    pad_id: int,
    device: str,
    dist: Dist | None = None,
) -> tuple[float, int]:
    """Forward and backward over this rank's examples of one step (several micro-batches);
    the loss is divided by the step's label count over all micro-batches and ranks, so
    the gradient equals one big batch's. Returns (mean loss over all ranks, tokens)."""
    import torch

    from serifu.training.model_setup import row_tokens, shares_prefix
    from serifu.training.precision import autocast_dtype, forward_precision

    rows, share = row_tokens(model, config), shares_prefix(model, config)
    amp = autocast_dtype(model, config, device)
    batches = [
        collate(
            examples,
            packing=config.packing,
            pad_id=pad_id,
            device=device,
            row_tokens=rows,
            share_prefix=share,
        )
        for examples in micro_batches
        if examples  # a short last step can leave a rank without examples: it still joins the sums
    ]
    local_labels = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
    (global_labels,) = all_sum([local_labels], device, dist)
    total = torch.zeros((), dtype=torch.float64)
    for batch in batches:
        with forward_precision(amp):  # backward outside autocast, as torch's AMP recipe asks
            part, _ = loss_sum(model, batch)
        (part / max(global_labels, 1.0)).backward()
        total = total + float(part.detach())
    tokens = sum(len(ex) for examples in micro_batches for ex in examples)
    loss_all, tokens_all = all_sum([float(total), tokens], device, dist)
    return loss_all / max(global_labels, 1.0), int(tokens_all)


def apply_update(
    optimizer: Any,
    scheduler: Any,
    trainable: Sequence[Any],
    config: TrainConfig,
    dist: Dist | None = None,
    *,
    keep_grads: bool = False,
) -> float | None:
    """Sum gradients over ranks, clip, step the optimizer and scheduler; returns the
    gradient norm before clipping (None without clipping). A non-finite norm is an
    error raised before the weights change. ``keep_grads``: the gradients' tensors stay
    (a captured step's CUDA graph writes the next step's gradients into them)."""
    import torch

    sum_gradients(trainable, dist)
    norm = None
    if config.max_grad_norm:
        norm = float(torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm))
        if not math.isfinite(norm):
            optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLoss(
                f"the gradient norm is {norm}: training stopped before the weights changed; "
                "lower train.learning_rate or check the data"
            )
    optimizer.step()
    scheduler.step()
    if not keep_grads:
        optimizer.zero_grad(set_to_none=True)
    return norm


def check_finite(loss: float, step: int) -> None:
    if not math.isfinite(loss):
        raise NonFiniteLoss(
            f"the training loss became {loss} at step {step}: training stopped, no adapter "
            "was written (the weights diverged); lower train.learning_rate (or set "
            "train.max_grad_norm), then start again with --force"
        )


def train_step(
    model: Any,
    examples: Sequence[Example],
    *,
    config: TrainConfig,
    optimizer: Any,
    scheduler: Any,
    trainable: Sequence[Any],
    pad_id: int,
    device: str,
    dist: Dist | None = None,
) -> tuple[float, int]:
    """One optimizer step on this rank's ``examples``; returns (mean loss over all ranks, tokens)."""
    loss, tokens = accumulate_gradients(
        model, [examples], config=config, pad_id=pad_id, device=device, dist=dist
    )
    apply_update(optimizer, scheduler, trainable, config, dist)
    return loss, tokens


def evaluate(
    model: Any, examples: Sequence[Example], config: TrainConfig, pad_id: int, device: str
) -> float | None:
    """Mean token NLL on ``examples`` (None when there are none).

    Only the dropout layers are switched to eval mode: the rest of the model stays as it
    is, because bitsandbytes repacks 4-bit CPU weights the first time they run in eval
    mode, which would change the numerics of the training steps after a mid-run
    validation. No random number is drawn, so validating does not change the training."""
    import torch

    if not examples:
        return None
    from serifu.training.model_setup import shares_prefix

    share = shares_prefix(model, config)
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.training]
    for m in dropouts:
        m.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(examples), config.batch_size):
                batch = collate(
                    examples[start : start + config.batch_size],
                    packing=config.packing,
                    pad_id=pad_id,
                    device=device,
                    share_prefix=share,
                )
                s, n = loss_sum(model, batch)
                total, count = total + float(s), count + n
    finally:
        for m in dropouts:
            m.train()
    return total / max(count, 1)
