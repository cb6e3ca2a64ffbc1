"""``[train]``: QLoRA training (the report's settings are the defaults)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LoraConfigModel(BaseModel):
    """LoRA adapter settings."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(default=4, ge=1, description="LoRA rank.")
    alpha: int = Field(default=8, ge=1, description="LoRA alpha.")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="LoRA dropout.")
    targets: list[str] | None = Field(
        default=None, description="Target modules; default: the model plugin's."
    )


class TrainConfig(BaseModel):
    """Training options (CLI flags of ``serifu train`` override these)."""

    model_config = ConfigDict(extra="forbid")
    epochs: float = Field(
        default=3.0,
        gt=0,
        allow_inf_nan=False,
        description="Epochs (the report used 3); a fraction trains on part of the last epoch.",
    )
    real_only_epochs: int = Field(
        default=0,
        ge=0,
        description="The last N epochs leave out augmented rows (source = augmented): a finishing phase on her real lines only. max_steps overrides it, as it overrides epochs.",
    )
    max_steps: int | None = Field(
        default=None, ge=1, description="Stop after this many optimizer steps (overrides epochs)."
    )
    learning_rate: float = Field(
        default=2e-4, gt=0, allow_inf_nan=False, description="Peak learning rate."
    )
    lr_scheduler: Literal["linear", "cosine", "constant"] = Field(
        default="linear", description="Learning-rate schedule after warm-up."
    )
    warmup_steps: int = Field(default=0, ge=0, description="Linear warm-up steps.")
    weight_decay: float = Field(
        default=0.0, ge=0.0, allow_inf_nan=False, description="AdamW weight decay."
    )
    max_grad_norm: float | None = Field(
        default=1.0, gt=0, allow_inf_nan=False, description="Gradient clipping (None: off)."
    )
    batch_size: int = Field(
        default=8, ge=1, description="Examples per micro-batch (the report used 8)."
    )
    gradient_accumulation_steps: int = Field(
        default=1,
        ge=1,
        description="Micro-batches per optimizer step; the loss is the token mean over all of them, so 2 x batch 4 equals 1 x batch 8.",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Token budget per step: batches are filled up to this many tokens instead of batch_size examples.",
    )
    max_length: int = Field(
        default=1024, ge=8, description="Examples longer than this are truncated (tokens)."
    )
    packing: bool = Field(
        default=True,
        description="Padding-free batches: examples concatenated with per-example position ids, no attention across examples.",
    )
    pack_row_tokens: int | None = Field(
        default=2048,
        ge=8,
        description="Packing: longest packed row (attention over a row is quadratic in its length); null = one row per step.",
    )
    shared_prefix: Literal["auto", "off"] = Field(
        default="auto",
        description="Packing: when a step's examples start with the same prompt tokens (a dialogue dataset's template and system prompt: ~90% of its tokens on the sample cast), each packed row runs them once and every example's own tokens attend to that copy (serifu.training.shared_prefix; the same loss and gradient up to rounding). 'auto' = whenever at least 32 tokens are shared and Serifu's attention runs (train.attention 'varlen' or 'auto'); 'off' = every example runs its whole prompt.",
    )
    attention: Literal["auto", "varlen", "sdpa"] = Field(
        default="auto",
        description="Packed rows: 'varlen' runs flash attention over the examples' boundaries (no mask; on the CPU the same boundaries become an SDPA mask; rows sharing a prompt prefix always take a mask: train.shared_prefix); 'sdpa' builds transformers' block-diagonal mask (no shared prefix); 'auto' = varlen (on the CPU too since session 32, unless train.compile is on: the shared prefix made gemma-3-270m's dialogue steps 7.5x faster there).",
    )
    upcast_fp32: bool = Field(
        default=False,
        description="Upcast the weights that are not 4-bit (norms, embeddings, output head) to float32, as PEFT's prepare_model_for_kbit_training does (the report's recipe); off: they stay in the compute dtype (bf16 on a GPU).",
    )
    gradient_checkpointing: bool | Literal["auto"] = Field(
        default="auto",
        description="Recompute activations in backward (less memory, slower). 'auto': on a GPU, off when a step's activations fit in the free memory with a safety margin, else on; off on the CPU (serifu.training.memory_policy).",
    )
    kernels: Literal["auto", "liger", "off"] = Field(
        default="auto",
        description="Fused Triton kernels for the decoder's RMSNorm, SwiGLU/GeGLU, LayerNorm and rotary embedding: 'liger' = Liger's (pip install 'serifu[liger]'; CUDA and architectures Liger supports, e.g. llama, gemma3; an error otherwise); 'auto' = Liger where it can run, else the model's own layers; 'off' = never (serifu.training.kernels).",
    )
    loss_kernel: Literal["serifu", "liger"] = Field(
        default="serifu",
        description="The loss: 'serifu' = chunked head at labelled positions with the frozen head's gradient fused (serifu.accel.loss); 'liger' = Liger's fused linear cross-entropy at the same positions (CUDA, liger-kernel installed).",
    )
    compile: Literal["auto", "on", "off"] = Field(
        default="off",
        description="torch.compile the repeated decoder layers (regional compilation, inductor; the first step compiles): 'on' = always (needs triton on CUDA, a C compiler on the CPU); 'auto' = on a CUDA GPU for models up to 1B parameters (launch-bound steps) in runs of at least 300 micro-batches (compiling takes tens of seconds once), else off (always off on the CPU); 'off' = never, the default until compiled training is measured on a GPU (serifu.training.compile).",
    )
    capture: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Run each training step as one CUDA graph over fixed shapes (a packed row padded to the run's fullest step; serifu.training.capture), the loss's softmax compiled: for launch-bound small models (gemma-3-270m on an H200: 2.36x tokens/s in the bench, 2.0-2.05x over a whole 40-step serifu train, +0.3 GiB). It needs one process, gradient_accumulation_steps = 1, packing, compile 'off' and the 'serifu' loss, and gradient checkpointing off unless the recompute draws no random numbers (LoRA dropout 0 or lora_backward 'lean', no dropout in the base: the layers then recompute without RNG replay). 'on' = always (an error says what is missing; without CUDA the same static step runs eagerly); 'auto' = on for models up to 1B parameters on CUDA when those hold (else off, the reason logged), back to the usual step if capturing fails; 'off' = the usual step. 'auto' is the default since it ran end to end with validation on an H100 (2.0-2.5x over 40-step serifu train runs, same validation loss).",
    )
    autocast: Literal["on", "off"] = Field(
        default="on",
        description="The forward pass under autocast to the base's bf16/float16 on CUDA, as HF Trainer and TRL run it with bf16 = true: LoRA's float32 weights then compute in half precision and its inputs are not copied to float32 (less peak memory; serifu.training.precision). 'off' = LoRA computes in float32. 'on' is the default since the H100 comparison: 1.10-1.12x faster on stablelm-beta-7b at TRL's peak memory or less; no effect on the CPU.",
    )
    lora_backward: Literal["peft", "lean"] = Field(
        default="peft",
        description="What LoRA layers keep for backward: 'peft' = PEFT's modules as they are (each LoRA layer keeps a dropped-out copy of its input, float32 without autocast); 'lean' = Serifu's LoRA function (serifu.accel.lora_train) keeps the input itself, shared by q/k/v and gate/up, and a 1-bit dropout mask, and rebuilds the rest in backward: less peak memory, the same math with differently drawn dropout masks. 'peft' stays the default until the GPU comparison settles it.",
    )
    checkpoint_offload: Literal["on", "off"] = Field(
        default="off",
        description="With gradient checkpointing on CUDA: keep each checkpointed layer's input in pinned host memory between the forward and its recompute (copied out and fetched back one layer ahead on a side stream; serifu.training.offload): frees layers x tokens x hidden x 2 bytes of GPU memory (4 GiB of stablelm-beta-7b's 16k-token step) for two PCIe copies per layer. 'off' = inputs stay on the GPU (the default until the GPU comparison settles it); no effect on the CPU or without checkpointing.",
    )
    checkpoint_every: int = Field(
        default=1,
        ge=1,
        description="With gradient_checkpointing: recompute every n-th decoder layer only (more memory, less recompute).",
    )
    seed: int = Field(default=0, description="Random seed (LoRA init, dropout, data order).")
    quantize_4bit: bool = Field(default=True, description="Train on a 4-bit base (QLoRA).")
    quant_type: Literal["nf4", "uint4"] = Field(
        default="nf4",
        description="With quantize_4bit, the 4-bit grid the adapter learns on: 'nf4' = bitsandbytes' NF4 (the QLoRA of the report, 4-bit memory); 'uint4' = the rounding of the `--weights uint4` reply path (serifu.inference.quantize), applied to full-precision weights (full-precision memory): the adapter then fits the 4-bit base it will run on.",
    )
    system_prompt: bool = Field(
        default=True, description="Dialogue data: include the character's system prompt."
    )
    save_steps: int = Field(
        default=50, ge=0, description="Checkpoint every N steps (0: only on Ctrl-C)."
    )
    eval: bool = Field(
        default=True, description="Report the loss on the validation split after training."
    )
    eval_steps: int = Field(
        default=0,
        ge=0,
        description="With eval: also compute the validation loss every N optimizer steps (0: only at the end).",
    )
    report_to: Literal["tensorboard", "none"] = Field(
        default="tensorboard",
        description="Where step metrics go: TensorBoard event files in the run folder (logs/), or nowhere.",
    )
    lora: LoraConfigModel = Field(default_factory=LoraConfigModel, description="LoRA settings.")

    @model_validator(mode="after")
    def _uint4_needs_4bit(self) -> TrainConfig:
        if self.quant_type == "uint4" and not self.quantize_4bit:
            raise ValueError("quant_type = 'uint4' is a 4-bit base: it needs quantize_4bit = true")
        return self

    @model_validator(mode="after")
    def _finishing_phase_fits(self) -> TrainConfig:
        if self.real_only_epochs >= self.epochs:
            raise ValueError(
                f"real_only_epochs ({self.real_only_epochs}) must be fewer than epochs ({self.epochs}): "
                "the epochs before the finishing phase are the ones that see the augmented rows"
            )
        return self
