"""Per-iteration learning-rate schedule: linear warm-up then half-cycle cosine."""
from __future__ import annotations

import math

import torch

__all__ = ["cosine_lr", "set_lr"]


def cosine_lr(step: float, total_steps: float, warmup_steps: float, base_lr: float, min_lr: float) -> float:
    r"""Learning rate at ``step`` (fractional epochs or iterations, same unit throughout).

    Warm-up: ``base_lr * step / warmup_steps``; afterwards
    :math:`\mathrm{min} + (\mathrm{base}-\mathrm{min})\,\tfrac12(1+\cos(\pi\,\tfrac{s-w}{T-w}))`.
    """
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    span = max(total_steps - warmup_steps, 1e-12)
    progress = min((step - warmup_steps) / span, 1.0)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr to ``lr * group['lr_scale']`` (scale 1 when absent)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
