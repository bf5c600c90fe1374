"""The ``kind: train`` config: model, data, packing, optimizer, LoRA, checkpoints, logging."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flanlab.core.config import SCHEMAS, Schema
from flanlab.core.errors import UserError
from flanlab.core.paths import DataDir
from flanlab.inference.prompt_format import PromptFormat
from flanlab.inference.spec import ModelSpec

__all__ = ["NOT_RESULT_CHANGING", "DataConfig", "EvalSection", "LoraConfig", "OptimConfig", "PackingConfig",
           "TrainConfig", "TrainLoopConfig"]

# Settings a training run folder may be resumed under with other values (logging, checkpoint
# rotation, CPU threads, where the data folder is); any other change must not resume it.
NOT_RESULT_CHANGING = ("name", "model.batch_size", "model.cache", "model.max_concurrency", "model.timeout_s",
                       "model.api_key_env", "train.log_every", "train.save_every", "train.keep_checkpoints",
                       "train.tensorboard", "train.threads", "eval.data_dir")


class DataConfig(Schema):
    """Where the examples come from: a finished mixture folder (``manifest.json`` present), or a mix
    config that training builds first into that folder (through the mixture stage's API)."""

    mixture: str
    build_config: str | None = None
    data_dir: DataDir = Field(None, description="task data for build_config (unset: $FLANLAB_DATA_DIR)")
    heldout_fraction: float = Field(0.02, ge=0.0, lt=1.0)
    max_heldout: int = Field(256, ge=0)
    shuffle_buffer: int = Field(2048, ge=1)
    max_input_length: int = Field(1024, ge=1)
    max_target_length: int = Field(256, ge=1)
    epochs: int | None = Field(None, ge=1, description="stop after this many passes (None: loop until steps)")


class PackingConfig(Schema):
    """Packed rows (several examples per row, masked apart) or one example per row, length-grouped."""

    enabled: bool = True
    # Decoder-only: row length. Encoder-decoder: encoder row length (targets use target_length).
    max_length: int = Field(512, ge=8)
    target_length: int = Field(128, ge=4)
    # How packed examples are kept apart (decoder-only; T5 always uses its three masks):
    # "segments": each example attends to itself only (per-example causal attention, no block mask,
    #   a micro-batch in one unpadded row: 1.23x the real tokens/s of "mask" for SmolLM2 on the CPU);
    #   Llama/Mistral/Qwen/Gemma (not Gemma 3) families;
    # "mask": explicit 4D additive block masks (any attention implementation);
    # "position_ids": per-example position ids only, letting transformers build the block mask or
    #   use varlen flash-attention;
    # "auto": "segments" where the model is eligible, else "mask".
    attention: Literal["auto", "segments", "mask", "position_ids"] = "auto"
    window: int = Field(512, ge=1, description="examples considered together when filling rows")


class OptimConfig(Schema):
    """Adafactor at a constant rate (the paper) or AdamW with warmup and cosine decay."""

    name: Literal["adafactor", "adamw"] = "adafactor"
    lr: float = Field(5e-4, gt=0)
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad_norm: float | None = Field(1.0, gt=0)


class LoraConfig(Schema):
    """Low-rank adapters through peft (``quantize: 4bit`` is QLoRA and needs CUDA + bitsandbytes)."""

    enabled: bool = False
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    quantize: Literal["none", "4bit", "8bit"] = "none"
    merge_on_save: bool = True


class TrainLoopConfig(Schema):
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(8, ge=1, description="rows (packed) or examples (unpacked) per micro-batch")
    grad_accum: int = Field(1, ge=1)
    precision: Literal["fp32", "bf16"] = "fp32"
    dropout: float | None = Field(0.05, ge=0.0, lt=1.0, description="set every dropout module; None keeps the model's")
    seed: int = 0
    log_every: int = Field(10, ge=1)
    save_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    eval_every: int = Field(500, ge=1)
    eval_batch_size: int = Field(16, ge=1)
    keep_best: bool = True
    # What picks best/: the held-out loss, or the score of the ``eval`` section's benchmark
    # evaluation (auto: the score when an ``eval`` section is given, else the held-out loss).
    keep_best_by: Literal["auto", "heldout_loss", "eval_score"] = "auto"
    gradient_checkpointing: bool = False
    tensorboard: bool = True
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default)")
    cpu: bool = Field(False, description="train on the CPU even where a GPU is present")


class EvalSection(Schema):
    """A small benchmark evaluation of the model being trained, run every ``train.eval_every``
    steps (and before the first) through flanlab.evaluation; its mean score can pick best/, as the
    paper picked checkpoints by held-out benchmark scores."""

    benchmarks: list[str] = Field(["bbh"], min_length=1)
    strategies: list[str] = Field(["direct"], min_length=1)
    subtasks: list[str] = []
    limit: int | None = Field(16, ge=1, description="examples per subtask (None: all; slow)")
    max_new_tokens: int | None = Field(None, ge=1)
    data_dir: DataDir = Field(None, description="benchmark data folder (unset: $FLANLAB_DATA_DIR, else the hub)")
    seed: int = 0


class TrainConfig(Schema):
    """``flanlab train CONFIG``: finetune ``model`` on ``data`` with ``optim`` for ``train.steps``."""

    kind: Literal["train"] = "train"
    name: str = "train"
    model: ModelSpec
    data: DataConfig
    packing: PackingConfig = PackingConfig()
    optim: OptimConfig = OptimConfig()
    lora: LoraConfig = LoraConfig()
    train: TrainLoopConfig = TrainLoopConfig()
    eval: EvalSection | None = None
    # How decoder-only examples join inputs and targets; evaluation prompts the model the same way
    # (``flanlab run`` passes one value to both). Default: inputs, "\n", then the answer.
    prompt_format: PromptFormat = PromptFormat()

    def best_metric(self) -> str:
        """The metric that picks best/: ``heldout_loss`` (lower is better) or ``eval_score``."""
        if self.train.keep_best_by == "eval_score" and self.eval is None:
            raise UserError("train.keep_best_by: 'eval_score' needs an `eval:` section (the benchmarks to score)")
        if self.train.keep_best_by == "auto":
            return "eval_score" if self.eval is not None else "heldout_loss"
        return self.train.keep_best_by


SCHEMAS.register("train", TrainConfig)
