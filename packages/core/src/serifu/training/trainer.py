"""Serifu's QLoRA trainer: a compact loop over padded or packed (padding-free) batches.

The base is loaded in NF4 4-bit and a PEFT LoRA adapter is trained with AdamW. On a GPU
the rest of the base stays bf16 and packed rows run variable-length flash attention
(:mod:`serifu.accel.varlen`); the loss head runs only at labelled positions
(:mod:`serifu.accel.loss`). :class:`Trainer` runs the steps and calls a list of
:mod:`callbacks <serifu.training.callbacks>` (progress bar, TensorBoard, periodic
validation and checkpoints). Checkpoints hold the LoRA weights, optimizer, scheduler,
RNG states and progress, and the data order is a pure function of (seed, epoch), so
``resume=True`` continues bit for bit. Every check of the output happens before the
model loads; the adapter is written to a temporary folder and renamed to ``out`` only
when complete.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serifu.config.train import TrainConfig
from serifu.training.callbacks import (
    Callback,
    PeriodicCheckpoint,
    PeriodicValidation,
    ProgressBar,
    StepFunction,
    TensorBoardLogger,
)
from serifu.training.checkpoint import Progress, latest_checkpoint, work_dir
from serifu.training.examples import Example
from serifu.training.model_setup import (
    add_lora,
    checkpointed_layers,
    fingerprint,
    make_optimizer,
    peak_gib,
    prepare_base,
    row_tokens,
    seed_everything,
    set_checkpointing,
    use_compile,
    use_fast_attention,
    use_kernels,
)
from serifu.training.step import collate, evaluate, step_plan, train_step

__all__ = [
    "Trainer",
    "TrainResult",
    "add_lora",
    "collate",
    "evaluate",
    "fingerprint",
    "make_optimizer",
    "peak_gib",
    "prepare_base",
    "row_tokens",
    "seed_everything",
    "set_checkpointing",
    "step_plan",
    "train",
    "train_step",
    "use_compile",
    "use_fast_attention",
    "use_kernels",
]

StepCallback = Callable[[int, float], None]
LOGS = "logs"
"""TensorBoard event files: in the work folder while training, then in the adapter folder."""


@dataclass
class TrainResult:
    out: Path
    steps: int
    loss_first: float
    loss_last: float
    tokens_per_s: float
    eval_loss: float | None
    info: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """What ``serifu train --json`` prints."""
        return {
            "out": str(self.out),
            "steps": self.steps,
            "loss_first": self.loss_first,
            "loss_last": self.loss_last,
            "tokens_per_s": self.tokens_per_s,
            "kernels": self.info.get("kernels", {}).get("kernels", "off"),
            "compile": self.info.get("compile", {}).get("compile", "off"),
            "capture": self.info.get("capture", {}).get("capture", "off"),
        }


class Trainer:
    """One training run: ``Trainer(model, data, out, config).fit()``.

    ``callbacks`` come after the built-in ones (progress bar, TensorBoard when
    ``config.report_to == "tensorboard"``, periodic validation and checkpoints).
    """

    def __init__(
        self,
        model: str,
        data: Path,
        out: Path,
        config: TrainConfig | None = None,
        *,
        resume: bool = False,
        force: bool = False,
        device: str | None = None,
        progress: bool = True,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.model_id = model
        self.data = Path(data)
        self.out = Path(out)
        self.config = config or TrainConfig()
        self.resume = resume
        self.force = force
        self.device_request = device
        self.show_progress = progress
        self.extra_callbacks = list(callbacks)
        self.state = Progress()
        self.total_steps = 0
        self.grad_norm: float | None = None
        self.eval_loss: float | None = None
        self.should_stop = False
        """Set by a callback: end after this step and write the adapter as it is."""
        self.callbacks: list[Callback] = []
        self.dist: Any = None
        self.kernels: Any = None
        """The :class:`~serifu.training.kernels.KernelDecision` (set once the model loads)."""
        self.lora_layers = 0
        """LoRA layers running :mod:`serifu.accel.lora_train` (``train.lora_backward``)."""
        self.autocast: Any = None
        """The :class:`~serifu.training.precision.AutocastDecision` (set once the model loads)."""
        self.offload: Any = None
        """The :class:`~serifu.training.offload.OffloadDecision` (set once the model loads)."""
        self.compiled: Any = None
        """The :class:`~serifu.training.compile.CompileDecision` (set once the model loads)."""
        self.capture: Any = None
        """The :class:`~serifu.training.capture.CaptureDecision` (set once the model loads)."""
        self.static: Any = None
        """With ``train.capture = "on"``: the :class:`~serifu.training.capture.StaticStep`."""
        self._unpatch: Callable[[], None] | None = None

    # -- what callbacks read -------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.main

    @property
    def learning_rate(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    @property
    def log_dir(self) -> Path:
        return work_dir(self.out) / LOGS

    # -- the run -------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Check, load, train, write ``out``; returns what happened."""
        from serifu.training.distributed import barrier, init_distributed, shutdown

        self.started = time.perf_counter()
        self.dist = init_distributed()
        try:
            self._check_outputs()
            self._setup()
            self.callbacks = self._default_callbacks() + self.extra_callbacks
            try:
                for cb in self.callbacks:
                    cb.on_train_begin(self)
                self._loop()
                self._conclude()
            finally:
                for cb in self.callbacks:
                    cb.on_train_end(self)
            result = self._finish()
            barrier(self.dist)
            return result
        finally:
            if self._unpatch is not None:  # Liger's patches off: the process sees stock models
                self._unpatch()
            shutdown(self.dist)

    def _check_outputs(self) -> None:
        from serifu.training.preflight import check_outputs

        check_outputs(
            self.out,
            self.data,
            resume=self.resume,
            force=self.force,
            report_to=self.config.report_to,
            write=self.is_main,
        )

    def _micro_batches(self) -> Iterator[list[Example]]:
        """Every micro-batch of the plan, as its examples."""
        return ([self.train_ex[i] for i in m] for step in self.plan for m in step)

    def most_run_tokens(self, lm: Any) -> int:
        """The most tokens any micro-batch of the plan runs (the memory policy's step):
        a shared prompt prefix counted once per row where ``train.shared_prefix`` runs it so
        (:func:`serifu.training.shared_prefix.counted_shared`)."""
        from serifu.training.shared_prefix import counted_shared, most_run_tokens

        share = counted_shared(self.config, lm, str(self.device))
        return most_run_tokens(self._micro_batches(), share)

    def _shared_record(self) -> dict[str, Any]:
        """``train.shared_prefix`` as it runs: whether the steps share prompt prefixes, and
        the fullest micro-batch's tokens as run and as the examples have them."""
        from serifu.training.model_setup import shares_prefix
        from serifu.training.shared_prefix import most_run_tokens

        most = most_run_tokens(self._micro_batches(), share=False)
        on = shares_prefix(self.model, self.config) and self.static is None
        return {
            "setting": self.config.shared_prefix,
            "on": bool(on and self.run_tokens < most),
            "most_run_tokens": self.run_tokens,
            "most_step_tokens": most,
        }

    def _setup(self) -> None:
        import torch

        from serifu.accel.lora_train import use_lora_backward
        from serifu.modeling import default_device, load_model, load_tokenizer, resolve_base
        from serifu.prompts.chat_template import template_for
        from serifu.training.capture import use_capture
        from serifu.training.checkpoint import check_same_run, load_checkpoint, read_progress
        from serifu.training.data import load_dataset_folder
        from serifu.training.examples import encode_rows
        from serifu.training.kernels import restore_point
        from serifu.training.memory_policy import choose_checkpointing
        from serifu.training.model_setup import check_lora_targets
        from serifu.training.offload import use_checkpoint_offload
        from serifu.training.precision import decide_autocast
        from serifu.training.preflight import check_free_space
        from serifu.training.step import group_steps

        config, dist = self.config, self.dist
        self.device = (
            dist.device
            if dist is not None and torch.cuda.is_available()
            else (self.device_request or default_device())
        )
        self.base = base = resolve_base(self.model_id)
        self.folder = folder = load_dataset_folder(self.data)
        self.tokenizer = tokenizer = load_tokenizer(base)
        template = template_for(base, tokenizer)
        self.system = (
            folder.system_prompt()
            if (config.system_prompt and folder.format == "dialogue")
            else None
        )

        def encode(split: str) -> list[Example]:
            if split not in folder.splits:
                return []
            return encode_rows(
                folder.splits[split],
                fmt=folder.format,
                tokenizer=tokenizer,
                template=template,
                system=self.system,
                add_special_tokens=base.add_special_tokens,
                max_length=config.max_length,
            )

        self.fingerprint = fingerprint(base.id, folder.build_sha256, config)
        last = latest_checkpoint(self.out) if self.resume else None
        if last is not None:  # a different run is refused before the model loads
            check_same_run(read_progress(self.out) or Progress(), self.fingerprint, last)
        self.train_ex = encode("train")
        self.val_ex = encode("validation") if config.eval else []
        micro, self.per_epoch = step_plan(
            [len(ex) for ex in self.train_ex], config, [ex.augmented for ex in self.train_ex]
        )
        self.plan = group_steps(micro, config.gradient_accumulation_steps)
        self.total_steps = len(self.plan)
        seed_everything(config.seed)
        nf4 = config.quantize_4bit and config.quant_type == "nf4"
        lm = load_model(base, quantize=nf4, device=self.device)
        if config.quantize_4bit and not nf4:  # quant_type "uint4"
            from serifu.inference.quantize import round_uint4_

            round_uint4_(lm)  # the grid of the uint4 reply path, before LoRA wraps the layers
        self.load_s = time.perf_counter() - self.started
        targets = list(config.lora.targets or base.lora_targets)
        check_lora_targets(lm, targets, base.id)
        # "auto" checkpointing is decided once the weights are on the device (free memory),
        # for the plan's fullest micro-batch as it runs (a shared prompt prefix once a row)
        self.run_tokens = self.most_run_tokens(lm)
        self.checkpointing = choose_checkpointing(lm, config, self.run_tokens)
        if config.gradient_checkpointing == "auto" and self.is_main and self.show_progress:
            print(f"gradient checkpointing: {self.checkpointing.reason}", file=sys.stderr)
        resolved = self.checkpointing.resolve(config)
        self.model = add_lora(lm, resolved, base.lora_targets, nf4)
        use_fast_attention(self.model, config, self.device)
        self._unpatch = restore_point(self.model)
        self.lora_layers = use_lora_backward(self.model, config)
        if config.lora_backward == "lean" and self.is_main and self.show_progress:
            print(f"lora backward: lean ({self.lora_layers} LoRA layers)", file=sys.stderr)
        self.offload = use_checkpoint_offload(
            self.model, config, checkpointing=self.checkpointing.on, device=str(self.device)
        )
        if config.checkpoint_offload != "off" and self.is_main and self.show_progress:
            print(f"checkpoint offload: {self.offload.reason}", file=sys.stderr)
        self.kernels = use_kernels(self.model, config)
        if config.kernels != "off" and self.is_main and self.show_progress:
            print(f"kernels: {self.kernels.kernels} ({self.kernels.reason})", file=sys.stderr)
        self.autocast = decide_autocast(self.model, config, str(self.device))
        on_gpu = str(self.device).startswith("cuda")  # the CPU never autocasts: no line
        if config.autocast != "off" and on_gpu and self.is_main and self.show_progress:
            print(f"autocast: {self.autocast.reason}", file=sys.stderr)
        self.model.train()
        self.optimizer, self.scheduler, self.trainable = make_optimizer(
            self.model, config, self.total_steps
        )
        if self.is_main:
            lora_bytes = sum(p.numel() * p.element_size() for p in self.trainable)
            check_free_space(self.out, lora_bytes)
        if self.resume:
            self.state = load_checkpoint(
                self.out, self.model, self.optimizer, self.scheduler, self.fingerprint
            )
        else:
            self.state = Progress(fingerprint=self.fingerprint)
        self.pad_id = int(tokenizer.pad_token_id)
        # after Liger (its kernels compile inside) and the resume (the steps left decide "auto")
        micro_left = sum(len(step) for step in self.plan[self.state.step :])
        self.compiled = use_compile(self.model, config, micro_left)  # self._unpatch undoes it
        if config.compile != "off" and self.is_main and self.show_progress:
            print(f"compile: {self.compiled.compile} ({self.compiled.reason})", file=sys.stderr)
        self.capture, self.static = use_capture(
            self.model,
            config,
            self.train_ex,
            self.plan,
            device=self.device,
            distributed=dist is not None,
            checkpointing=self.checkpointing.on,
            checkpoint_every=self.checkpointing.every,
        )
        shown = self.static is not None or str(self.device).startswith("cuda")
        if shown and config.capture != "off" and self.is_main and self.show_progress:
            print(f"capture: {self.capture.reason}", file=sys.stderr)
        self.shared = self._shared_record()
        if self.shared["on"] and self.is_main and self.show_progress:
            print(
                f"shared prefix: the fullest micro-batch runs {self.run_tokens:,} of its "
                f"{self.shared['most_step_tokens']:,} tokens (its examples' common prompt once "
                "a row)",
                file=sys.stderr,
            )

    def _default_callbacks(self) -> list[Callback]:
        config = self.config
        found: list[Callback] = []
        if self.show_progress and self.is_main:
            found.append(ProgressBar())
        if config.report_to == "tensorboard" and self.is_main:
            found.append(TensorBoardLogger(self.log_dir))
        if config.eval and config.eval_steps and self.val_ex:
            found.append(PeriodicValidation(config.eval_steps))
        if config.save_steps:
            found.append(PeriodicCheckpoint(config.save_steps))
        return found

    def _loop(self) -> None:
        from serifu.training.interrupt import deferred_interrupt

        with deferred_interrupt() as stop:
            try:
                while self.state.step < self.total_steps:
                    self._step(stop)
                    for cb in self.callbacks:
                        cb.on_step_end(self, self.state.step, self.state.losses[-1])
                    if stop.requested:
                        raise KeyboardInterrupt
                    if self.should_stop:  # a callback ended the run early (e.g. early stopping)
                        break
            except KeyboardInterrupt:
                if not self.is_main:
                    raise
                where = self.save_checkpoint()
                print(
                    f"Interrupted at step {self.state.step}: checkpoint saved in {where}; "
                    "continue with --resume.",
                    file=sys.stderr,
                )
                raise
            except BaseException as exc:
                from serifu.training.step import NonFiniteLoss

                # A failed step is not applied: keep what the steps before it did (not
                # after a diverged run, which is started again with other settings).
                if self.is_main and not isinstance(exc, NonFiniteLoss):
                    self._keep_checkpoint_after_failure()
                raise

    def _step(self, stop: Any) -> None:
        """One optimizer step. Forward/backward may be cut short (then nothing of the step
        is applied and the RNG is rewound); the update itself is shielded from Ctrl-C."""
        from serifu.training.checkpoint import capture_rng, restore_rng
        from serifu.training.distributed import shard
        from serifu.training.step import apply_update, check_finite

        state = self.state
        micro = [[self.train_ex[i] for i in shard(ix, self.dist)] for ix in self.plan[state.step]]
        rng = capture_rng()
        t0 = time.perf_counter()
        try:
            try:
                loss, tokens = self._forward_backward(micro)
            except Exception as err:
                if not (self._compile_failed(err) or self._capture_failed(err)):
                    raise
                self.optimizer.zero_grad(set_to_none=True)
                restore_rng(rng)  # the same step again, eagerly
                loss, tokens = self._forward_backward(micro)
            check_finite(loss, state.step + 1)
        except BaseException:
            self.optimizer.zero_grad(set_to_none=True)
            restore_rng(rng)
            raise
        with stop.shielded():
            self.grad_norm = apply_update(
                self.optimizer,
                self.scheduler,
                self.trainable,
                self.config,
                self.dist,
                keep_grads=self.static is not None and self.static.graph,
            )
            state.step += 1
            state.tokens += tokens
            state.train_seconds += time.perf_counter() - t0
            state.losses.append(loss)

    def _forward_backward(self, micro: list[list[Example]]) -> tuple[float, int]:
        from serifu.training.step import accumulate_gradients

        if self.static is not None:  # train.capture: one micro-batch, one process
            (examples,) = micro
            following = self.state.step + 1  # its batch is built while this step runs
            then = (
                [self.train_ex[i] for i in self.plan[following][0]]
                if following < len(self.plan)
                else None
            )
            return self.static.run(examples, then), sum(len(ex) for ex in examples)
        return accumulate_gradients(
            self.model,
            micro,
            config=self.config,
            pad_id=self.pad_id,
            device=self.device,
            dist=self.dist,
        )

    def _capture_failed(self, err: Exception) -> bool:
        """``capture = "auto"`` whose static step failed (capturing or replaying it on this
        machine, or its extra memory): the usual step from now on, the reason recorded, and
        the caller runs the step again (True). Otherwise False: the error stands."""
        import dataclasses

        import torch

        from serifu.errors import SerifuError
        from serifu.training.capture import leave_capture

        decision = self.capture
        if self.static is None or decision is None or decision.setting != "auto":
            return False
        if isinstance(err, SerifuError):
            return False
        self.static = None  # its CUDA graph and memory pool go with it
        leave_capture(  # masks drawn again each step, checkpointing with its RNG replay
            self.model,
            checkpointing=self.checkpointing.on,
            checkpoint_every=self.checkpointing.every,
        )
        for p in self.trainable:
            p.grad = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        why = (
            "auto: the captured step failed, the usual step instead "
            f"({type(err).__name__}: {str(err)[:200]})"
        )
        self.capture = dataclasses.replace(decision, capture="off", reason=why, graph=False)
        if self.is_main and self.show_progress:
            print(f"capture: {why}", file=sys.stderr)
        return True

    def _compile_failed(self, err: Exception) -> bool:
        """``compile = "auto"`` whose step failed while layers were compiled (a compiler
        error on this machine): the layers go back to eager, the reason is recorded, and
        the caller runs the step again (True). Otherwise False: the error stands."""
        import dataclasses

        import torch

        from serifu.errors import SerifuError
        from serifu.training.compile import uncompile

        decision = self.compiled
        if decision is None or decision.compile != "on" or decision.setting != "auto":
            return False
        if isinstance(err, (SerifuError, torch.OutOfMemoryError)):
            return False
        uncompile(self.model)
        why = f"auto: compiling failed, eager instead ({type(err).__name__}: {str(err)[:200]})"
        self.compiled = dataclasses.replace(decision, compile="off", reason=why, layers=0)
        if self.is_main and self.show_progress:
            print(f"compile: off ({why})", file=sys.stderr)
        return True

    def validate(self) -> float | None:
        """The validation loss now (also recorded in the progress and sent to callbacks)."""
        loss = evaluate(self.model, self.val_ex, self.config, self.pad_id, self.device)
        if loss is not None:
            self.state.eval_losses[str(self.state.step)] = loss
            for cb in self.callbacks:
                cb.on_evaluate(self, self.state.step, loss)
        return loss

    def save_checkpoint(self) -> Path:
        """Checkpoint the current step (atomic; older ones go once it is complete)."""
        from serifu.training.checkpoint import save_checkpoint
        from serifu.training.storage import writing

        with writing(
            f"checkpoint of step {self.state.step}",
            work_dir(self.out),
            then=self._kept_message(),
        ):
            return save_checkpoint(self.out, self.model, self.optimizer, self.scheduler, self.state)

    def _kept_message(self) -> str:
        last = latest_checkpoint(self.out)
        if last is None:
            return "No checkpoint was kept; free some space and run again."
        return (
            f"The last complete checkpoint ({last.name}) is kept in {last}; free some space, "
            "then run the same command with --resume."
        )

    def _keep_checkpoint_after_failure(self) -> None:
        """After an error mid-run, keep what is done (best effort: the disk may be full)."""
        from serifu.training.checkpoint import save_checkpoint

        if self.state.step == 0:
            return
        with contextlib.suppress(Exception):  # the original error is the one to report
            save_checkpoint(self.out, self.model, self.optimizer, self.scheduler, self.state)

    def _conclude(self) -> None:
        """After the last step: its checkpoint (whatever fails later, ``--resume`` then
        finishes without training), a check that the weights are finite, the final
        validation loss."""
        import torch

        from serifu.errors import SerifuError

        if self.is_main:
            self.save_checkpoint()
        if not all(bool(torch.isfinite(p).all()) for p in self.trainable):
            raise SerifuError(
                "the trained LoRA weights are not finite (the run diverged); no adapter was "
                "written. Lower train.learning_rate and start again with --force"
            )
        self.eval_loss = self.validate() if self.config.eval else None

    def _finish(self) -> TrainResult:
        """Write the adapter, its run files and logs to ``out`` (atomically)."""
        from serifu.fsutil import atomic_output_dir
        from serifu.inference.vocab import write_adapter_vocabulary
        from serifu.retrieval.examples import write_adapter_examples
        from serifu.training.checkpoint import remove_checkpoints
        from serifu.training.outputs import (
            adapter_base_name,
            name_base_in_adapter,
            write_run_files,
        )
        from serifu.training.storage import writing

        state = self.state
        eval_loss = self.eval_loss
        tokens_per_s = state.tokens / state.train_seconds if state.train_seconds else 0.0
        base_name = adapter_base_name(self.base)
        info = self._info(eval_loss, tokens_per_s, base_name)
        if self.is_main:
            name_base_in_adapter(self.model, base_name)
            with (
                writing("adapter", self.out, then=self._kept_message()),
                atomic_output_dir(
                    self.out, kind="adapter", inputs=[self.data], force=self.force
                ) as tmp,
            ):
                # no embedding layers: PEFT would look the base up on the hub to decide
                self.model.save_pretrained(str(tmp), save_embedding_layers=False)
                write_run_files(tmp, info)
                write_adapter_vocabulary(tmp, self.tokenizer, self._her_lines())
                write_adapter_examples(tmp, self._her_exchanges())
                if self.log_dir.is_dir():
                    shutil.copytree(self.log_dir, tmp / LOGS)
            remove_checkpoints(self.out)
        return TrainResult(
            self.out, state.step, state.losses[0], state.losses[-1], tokens_per_s, eval_loss, info
        )

    def _her_lines(self) -> list[str]:
        """Her lines of the training and validation splits (not test): the tokens her replies
        may use besides Japanese text (``serifu.inference.vocab``)."""
        column = "reply" if self.folder.format == "dialogue" else "text"
        return [
            str(text)
            for split in ("train", "validation")
            if split in self.folder.splits and column in self.folder.splits[split].column_names
            for text in self.folder.splits[split][column]
        ]

    def _her_exchanges(self) -> list[tuple[str, str]]:
        """Her real (protagonist line, reply) pairs of the training split (dialogue data):
        what ``--examples`` may show in her prompt; held-out pairs never."""
        train = self.folder.splits.get("train")
        if train is None or not {"query", "reply"} <= set(train.column_names):
            return []
        sources = train["source"] if "source" in train.column_names else ["real"] * len(train)
        return [
            (str(q), str(r))
            for q, r, source in zip(train["query"], train["reply"], sources, strict=True)
            if source == "real"  # not augmented profile answers: her own exchanges
        ]

    def _compile_record(self) -> dict[str, Any]:
        """``serifu.json``'s ``compile``: the decision, and for compiled layers the compile
        seconds, graphs, graph breaks and recompiles of the run."""
        import dataclasses

        from serifu.training.compile import compile_stats

        decision = self.compiled
        if decision.compile == "on":
            decision = dataclasses.replace(decision, stats=compile_stats())
        return dict(decision.as_dict())

    def _info(self, eval_loss: float | None, tokens_per_s: float, base_name: str) -> dict[str, Any]:
        from serifu.training.outputs import versions

        state, config, folder, base = self.state, self.config, self.folder, self.base
        return {
            "out": str(self.out),
            "base_model": base.id,
            "base_name": base_name,
            "template": base.template,
            "lora_targets": list(config.lora.targets or base.lora_targets),
            "system_prompt": self.system is not None,
            "dataset": {
                "path": str(folder.path),
                "build_sha256": folder.build_sha256,
                "format": folder.format,
                "character": folder.build.get("character"),
                "character_id": folder.build.get("character_id"),
                "train_examples": len(self.train_ex),
                "validation_examples": len(self.val_ex),
                # how to rebuild the held-out split where the folder is gone (evaluation)
                "options": folder.build.get("options"),
                "splits": folder.build.get("splits"),
            },
            "config": config.model_dump(mode="json"),
            "gradient_checkpointing": self.checkpointing.as_dict()
            | {"layers": checkpointed_layers(self.model)},
            "kernels": self.kernels.as_dict(),
            "autocast": self.autocast.as_dict(),
            "lora_backward": {"setting": config.lora_backward, "layers": self.lora_layers},
            "checkpoint_offload": self.offload.as_dict(),
            "shared_prefix": self.shared,
            "compile": self._compile_record(),
            "capture": self.capture.as_dict()  # a softmax that failed to compile fell back
            | ({"fused_softmax": self.static.fused} if self.static is not None else {}),
            "steps": state.step,
            "epochs": (
                config.epochs * state.step / max(self.total_steps, 1)
                if config.real_only_epochs and config.max_steps is None
                else state.step * config.gradient_accumulation_steps / max(self.per_epoch, 1)
            ),
            "loss": state.losses,
            "loss_first": state.losses[0],
            "loss_last": state.losses[-1],
            "eval_loss": eval_loss,
            "eval_losses": {int(k): v for k, v in state.eval_losses.items()},
            "tokens": state.tokens,
            "tokens_per_s": tokens_per_s,
            "steps_per_s": state.step / state.train_seconds if state.train_seconds else 0.0,
            "load_s": self.load_s,
            "wall_s": time.perf_counter() - self.started,
            "peak_gib": peak_gib(self.device),
            "device": self.device,
            "world_size": self.dist.world if self.dist is not None else 1,
            "versions": versions(),
        }


def train(
    model: str,
    data: Path,
    out: Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    device: str | None = None,
    progress: bool = True,
    on_step: StepCallback | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train a LoRA adapter for ``model`` on the dataset folder ``data``; write it to ``out``.

    ``force``: replace an ``out`` Serifu did not write and delete an unfinished run's
    checkpoint; ``on_step(step, loss)`` runs after every step (after ``callbacks``)."""
    extra = list(callbacks) + ([StepFunction(on_step)] if on_step is not None else [])
    return Trainer(
        model,
        data,
        out,
        config,
        resume=resume,
        force=force,
        device=device,
        progress=progress,
        callbacks=extra,
    ).fit()
