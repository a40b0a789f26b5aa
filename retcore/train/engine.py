"""Training and inference loops: one epoch of fine-tuning, batched prediction.

Kept lean on purpose: per step it does exactly what a bare timm loop does
(set lr, forward, loss, backward, optimizer step) and never synchronises with
the device except once per epoch (and when a progress bar redraws: see
:class:`RunningLoss`), so ``bench/train_step.py`` can hold it to within 10% of
the bare loop.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
from torch import nn

from retcore.train.schedule import set_lr

GuidePenalty = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                       tuple[torch.Tensor, torch.Tensor]]
"""``(model, images, labels, allowed, weight) -> (logits, penalty)``, see ``retcore.guide.penalty``."""

__all__ = ["GuidePenalty", "RunningLoss", "autocast", "cpu_bf16_supported", "predict_probs", "resolve_device",
           "train_one_epoch"]


def resolve_device(name: str = "auto") -> torch.device:
    """``'auto'`` -> CUDA when available else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.cache
def cpu_bf16_supported() -> bool:
    """True when this CPU runs bf16 matrix products natively (oneDNN: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, enabled: bool = True) -> AbstractContextManager:
    """bf16 autocast when ``enabled`` on CUDA and on CPUs with native bf16 (about 2x faster there than
    fp32 for the demo ViT on this project's 2-core machine); otherwise a no-op (fp32)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if enabled and device.type == "cpu" and cpu_bf16_supported():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


class RunningLoss:
    """Running mean of an epoch's training loss, summed on the device.

    ``train_one_epoch`` adds every batch's loss without reading it back, so the
    loop never waits for the device; :meth:`mean` reads it back, which does
    wait, so a progress bar calls it only when it redraws.
    """

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0

    def reset(self, device: torch.device) -> None:
        """Start from zero on ``device``."""
        self.total = torch.zeros((), device=device)
        self.count = 0

    def add(self, loss: torch.Tensor) -> None:
        """Add one batch's (scalar) loss; no device synchronisation."""
        self.total += loss.detach()
        self.count += 1

    def mean(self) -> float:
        """Mean loss so far (NaN before the first batch); waits for the device."""
        if self.total is None or self.count == 0:
            return float("nan")
        return float(self.total.item() / self.count)


def train_one_epoch(
    model: nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    *,
    lr_at: Callable[[float], float],
    epoch: int,
    steps_per_epoch: int,
    device: torch.device,
    amp: bool = True,
    accum_iter: int = 1,
    max_batches: int | None = None,
    on_step: Callable[[int], None] | None = None,
    guide: GuidePenalty | None = None,
    guide_weight: float = 0.0,
    guide_log: list[float] | None = None,
    running_loss: RunningLoss | None = None,
) -> float:
    """Train one epoch; return the mean training loss.

    ``batches`` yields ``(images (B,3,H,W), labels (B,), ...)``. The lr is set
    every iteration from ``lr_at(epoch + step / steps_per_epoch)`` (fractional
    epochs). Gradients are accumulated over ``accum_iter`` batches.

    Guided: with a ``guide`` penalty (``retcore.guide.penalty``) the batches
    yield ``(images, labels, index, allowed (B,1,H,W), weight (B,))``, the loss
    is ``criterion + guide_weight x penalty``, and the mean penalty of the epoch
    is appended to ``guide_log``.

    Progress: ``on_step(step)`` is called after every batch; ``running_loss``,
    when given, is reset here and holds the epoch's loss so far, for a progress
    bar to read when it redraws.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    running = running_loss if running_loss is not None else RunningLoss()
    running.reset(device)
    penalty_total = torch.zeros((), device=device)
    seen = 0
    for step, (images, labels, *rest) in enumerate(batches):
        if max_batches is not None and step >= max_batches:
            break
        if step % accum_iter == 0:
            set_lr(optimizer, lr_at(epoch + step / steps_per_epoch))
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        if guide is None:
            with autocast(device, amp):
                loss = criterion(model(images), labels)
        else:
            allowed = rest[1].to(device, non_blocking=True)
            weight = torch.as_tensor(rest[2], dtype=torch.float32).to(device, non_blocking=True)
            with autocast(device, amp):
                logits, penalty = guide(model, images, labels, allowed, weight)
                loss = criterion(logits, labels) + guide_weight * penalty
            penalty_total += penalty.detach().float()
        (loss / accum_iter).backward()
        if (step + 1) % accum_iter == 0:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        running.add(loss)
        seen += 1
        if on_step is not None:
            on_step(step)
    if seen % accum_iter:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if guide is not None and guide_log is not None:
        guide_log.append(float(penalty_total.item() / max(seen, 1)))
    return running.mean() if seen else 0.0


@torch.no_grad()
def predict_probs(
    model: nn.Module,
    batches: Iterable,
    *,
    device: torch.device,
    amp: bool = True,
    on_step: Callable[[int], None] | None = None,
    on_failed: Callable[[list[tuple[int, str]]], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax probabilities for every image.

    Batches are ``(images, labels, indices)``, or ``(images, labels, indices, failed)`` from
    :func:`retcore.data.dataset.collate_skipping`: then ``on_failed`` gets each batch's
    ``(index, reason)`` list of unreadable images (which have no row in the result), and a batch
    of unreadable images only (``images`` None) is passed over.

    Batches of uint8 pixels (``build_eval_transform(normalize=False)``) are normalised on
    ``device``. The probabilities stay on the device until the end (one copy back, no
    synchronisation per batch, so the next batch's copy and forward are queued while the
    device works).

    Returns ``probs`` (N, C) float64, ``labels`` (N,) int (-1 = unknown) and
    ``indices`` (N,) int, the dataset indices in the order seen.
    """
    from retcore.data.transforms import normalize_on_device

    model.eval()
    probs, labels, indices = [], [], []
    for step, batch in enumerate(batches):
        images, batch_labels, batch_indices = batch[:3]
        if len(batch) > 3 and batch[3] and on_failed is not None:
            on_failed(batch[3])
        if images is None:
            if on_step is not None:
                on_step(step)
            continue
        x = normalize_on_device(images.to(device, non_blocking=True))
        with autocast(device, amp):
            logits = model(x)
        probs.append(torch.softmax(logits.float(), dim=-1))
        labels.append(np.asarray(batch_labels))
        indices.append(np.asarray(batch_indices))
        if on_step is not None:
            on_step(step)
    if not probs:
        return np.zeros((0, 0)), np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    return (torch.cat(probs).cpu().double().numpy(), np.concatenate(labels).astype(int),
            np.concatenate(indices).astype(int))
