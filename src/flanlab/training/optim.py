"""Optimizers and learning-rate schedules.

The schedule is a pure function of the step, applied before each optimizer step; resuming needs
only the step number, so there is no scheduler object whose state could drift.
"""

from __future__ import annotations

import math
from typing import Any

from flanlab.training.config import OptimConfig

__all__ = ["build_optimizer", "lr_at", "set_lr"]


def lr_at(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warmup, then constant / cosine /
    linear decay down to ``min_lr_ratio * lr``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape)


def set_lr(optimizer: Any, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def build_optimizer(params: list[Any], cfg: OptimConfig) -> Any:
    """Adafactor (factored second moments, no momentum, no relative step or parameter scaling: the
    fixed-rate setting used for T5 / Flan finetuning) or AdamW."""
    import torch

    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    from transformers.optimization import Adafactor

    return Adafactor(params, lr=cfg.lr, scale_parameter=False, relative_step=False, warmup_init=False,
                     weight_decay=cfg.weight_decay)
