"""The fine-tuning driver: optimizer, epochs, validation, best/last checkpoints, resume.

Pure with respect to the database: progress and per-epoch results leave through
callbacks, so ``jobs/finetune.py`` decides what to record. Checkpoint files are
written atomically (temporary file, then rename), so a killed run never leaves
a half-written checkpoint, and ``checkpoint-last.pth`` resumes exactly where
the last finished epoch ended.
"""
from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from timm.loss import LabelSmoothingCrossEntropy
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from retcore.errors import CheckpointError
from retcore.metrics import ClassificationReport, classification_report, selection_score
from retcore.models.checkpoint import save_checkpoint
from retcore.models.heads import uses_double_fc_norm
from retcore.train.config import FinetuneConfig
from retcore.train.distributed import ShardedOrder, all_gather, barrier, world, wrap
from retcore.train.engine import RunningLoss, autocast, predict_probs, resolve_device, train_one_epoch
from retcore.train.lr_decay import param_groups_lrd
from retcore.train.schedule import cosine_lr

__all__ = [
    "BEST_CHECKPOINT",
    "LAST_CHECKPOINT",
    "Bar",
    "BarFactory",
    "EpochResult",
    "FitResult",
    "build_optimizer",
    "extract_pooled_features",
    "fit",
    "seed_everything",
]

BEST_CHECKPOINT = "checkpoint-best.pth"
LAST_CHECKPOINT = "checkpoint-last.pth"


class Bar(Protocol):
    """The part of a progress bar that :func:`fit` uses (a ``tqdm.tqdm`` is one).

    ``update`` returns True when the bar redrew; only then does ``fit`` read the
    running training loss for the postfix (reading it waits for the device).
    """

    def update(self, n: int = 1) -> bool | None: ...

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None: ...

    def close(self) -> None: ...


BarFactory = Callable[..., Bar]
"""Makes a :class:`Bar` from the keywords ``total``, ``desc``, ``unit``, ``leave`` and ``initial``
(``tqdm.tqdm`` itself, or a ``functools.partial`` of it, fits)."""


class _NoBar:
    """Stands in for a bar when ``fit`` is given none: draws nothing, never reads the loss."""

    def __init__(self, **_: Any) -> None:
        pass

    def update(self, n: int = 1) -> bool:
        return False

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class EpochResult:
    """What one epoch produced; ``report`` holds the validation metrics."""

    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    report: ClassificationReport | None
    score: float
    is_best: bool
    seconds: float
    guide_penalty: float | None = None


@dataclass
class FitResult:
    """Where the checkpoints are and which epoch was best."""

    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_score: float
    epochs_run: int


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(model: nn.Module, cfg: FinetuneConfig, world_size: int = 1) -> torch.optim.AdamW:
    """AdamW over layer-decayed parameter groups (no weight decay on 1-D params)."""
    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    groups = param_groups_lrd(model, weight_decay=cfg.weight_decay, layer_decay=cfg.layer_decay,
                              no_weight_decay=tuple(skip))
    return torch.optim.AdamW(groups, lr=cfg.effective_lr(world_size))


class _PooledHead(nn.Module):
    """fc_norm -> head of a ViT, applied to cached pooled features (B, D)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.fc_norm = vit.fc_norm
        self.head_drop = vit.head_drop
        self.head = vit.head
        self.fc_norm_passes = 2 if uses_double_fc_norm(vit) else 1

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        for _ in range(self.fc_norm_passes):
            pooled = self.fc_norm(pooled)
        return self.head(self.head_drop(pooled))


@torch.no_grad()
def extract_pooled_features(
    model: nn.Module, loader: DataLoader, *, device: torch.device, amp: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> TensorDataset:
    """Backbone features before ``fc_norm`` for every image: (N, D) float32,
    returned as a dataset of ``(features, label, index)`` for the linear probe."""
    model.eval()
    feats, labels, indices = [], [], []
    for step, (images, batch_labels, batch_indices) in enumerate(loader):
        with autocast(device, amp):
            tokens = model.forward_features(images.to(device))
            pooled = model.pool(tokens)
        feats.append(pooled.float().cpu())
        labels.append(torch.as_tensor(batch_labels))
        indices.append(torch.as_tensor(batch_indices))
        if on_step is not None:
            on_step(step)
    return TensorDataset(torch.cat(feats), torch.cat(labels), torch.cat(indices))


def _loader(dataset: Dataset, cfg: FinetuneConfig, *, train: bool, seed: int) -> DataLoader:
    """Batches of ``cfg.batch_size`` (per process). Distributed, each rank reads its share of the
    single-process order (:class:`~retcore.train.distributed.ShardedOrder`)."""
    workers = 0 if isinstance(dataset, TensorDataset) else cfg.num_workers
    w = world()
    if not w.distributed:
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            dataset, batch_size=cfg.batch_size, shuffle=train, drop_last=train and len(dataset) > cfg.batch_size,
            num_workers=workers, generator=generator, persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
    sampler = ShardedOrder(len(dataset), seed, w.rank, w.size, cfg.batch_size, drop_last=train, shuffle=train)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=False, num_workers=workers,
                      generator=torch.Generator().manual_seed(seed * 1000 + w.rank),  # workers' augmentation
                      persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())


def _gathered(probs: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every rank's predictions of its share, joined in dataset order without the padding repeats."""
    parts = all_gather((probs, labels, indices))
    probs = np.concatenate([p[0] for p in parts if len(p[0])]) if any(len(p[0]) for p in parts) else probs
    labels = np.concatenate([p[1] for p in parts])
    indices = np.concatenate([p[2] for p in parts])
    _, first = np.unique(indices, return_index=True)
    return probs[first], labels[first], indices[first]


def _gathered_features(features: TensorDataset) -> TensorDataset:
    """Every rank's cached features of its share, joined in dataset order (padding repeats dropped)."""
    parts = all_gather(tuple(t.cpu() for t in features.tensors))
    feats, labels, indices = (torch.cat([p[i] for p in parts]) for i in range(3))
    order = np.unique(indices.numpy(), return_index=True)[1]
    keep = torch.as_tensor(order)
    return TensorDataset(feats[keep], labels[keep], indices[keep])


def _atomic_save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _evaluate(module: nn.Module, loader: DataLoader, class_names: list[str], device: torch.device,
              amp: bool, bars: BarFactory) -> tuple[float, ClassificationReport | None]:
    bar = bars(total=len(loader), desc="validate", unit="batch", leave=False)
    try:
        probs, labels, indices = predict_probs(module, loader, device=device, amp=amp,
                                               on_step=lambda step: bar.update(1))
    finally:
        bar.close()
    if world().distributed:
        probs, labels, indices = _gathered(probs, labels, indices)
    known = labels >= 0
    if not known.any():
        return float("nan"), None
    p = np.clip(probs[known, labels[known]], 1e-12, 1.0)
    return float(-np.log(p).mean()), classification_report(labels[known], probs[known], class_names)


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    class_names: list[str],
    cfg: FinetuneConfig,
    out_dir: str | os.PathLike[str],
    *,
    meta: dict[str, Any] | None = None,
    resume: bool = False,
    on_epoch: Callable[[EpochResult], None] | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    bars: BarFactory | None = None,
) -> FitResult:
    """Fine-tune ``model`` on ``train_set``, selecting on ``val_set``.

    Datasets yield ``(image (3,H,W), label, index)``; for a guided run
    (``cfg.guide``) the training set yields ``(image, label, index, allowed
    (1,H,W), weight)`` (a :class:`retcore.guide.GuidedDataset`). With
    ``cfg.freeze_backbone`` the backbone runs once per image to cache pooled
    features and only ``fc_norm`` + ``head`` train (a linear probe). Each epoch
    validates, calls ``on_epoch``, writes ``checkpoint-last.pth`` (model,
    optimizer, epoch, best score) and, when the selection score (mean of macro
    F1, macro AUROC and kappa) improves, ``checkpoint-best.pth`` (model only).
    A linear probe's last checkpoint holds the head (and the best head) only — its
    backbone is the pretrained one the caller loads again on resume — and its
    best checkpoint (the whole model) is written once, when training ends.
    With ``resume`` the last checkpoint in ``out_dir`` is restored first.

    Progress: ``on_progress(fraction, note)`` after every training batch (for a
    heartbeat); with ``bars`` (e.g. ``tqdm.tqdm``) progress bars: one over the
    epochs (unit ``epoch``, postfix train/val loss, lr and score), one over each
    epoch's batches (unit ``batch``, postfix running loss and lr) and over its
    validation batches, and one over the images whose features are cached
    (unit ``img``, ``freeze_backbone`` only). The inner bars do not stay.
    """
    w = world()
    out = Path(out_dir)
    if w.main:
        out.mkdir(parents=True, exist_ok=True)
    if not w.main:  # rank 0 alone reports, draws bars and writes checkpoints
        on_epoch = on_progress = None
        bars = None
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model.to(device)
    meta = dict(meta or {})
    meta.setdefault("class_names", list(class_names))
    bars = bars if bars is not None else _NoBar

    trainable: nn.Module = model
    if cfg.freeze_backbone:
        for p in model.parameters():
            p.requires_grad_(False)
        trainable = _PooledHead(model)
        for p in trainable.parameters():
            p.requires_grad_(True)
        eval_loader_cfg = cfg  # caching holds --batch-size images at a time, like every other step
        if on_progress:
            on_progress(0.0, "caching backbone features")
        sizes = (len(train_set), len(val_set))
        bar = bars(total=sum(sizes), desc="cache features", unit="img", leave=False)
        try:
            cached = []
            for dataset, size in zip((train_set, val_set), sizes):
                batch = eval_loader_cfg.batch_size * w.size
                features = extract_pooled_features(
                    model, _loader(dataset, eval_loader_cfg, train=False, seed=0), device=device, amp=cfg.amp,
                    on_step=lambda step, size=size, batch=batch: bar.update(min(batch, max(size - step * batch, 0))))
                cached.append(_gathered_features(features) if w.distributed else features)
        finally:
            bar.close()
        train_set, val_set = cached
    spec = cfg.guide_spec()
    guide = None
    if spec is not None:
        if cfg.freeze_backbone:
            raise ValueError("--guide trains the backbone's attention: it cannot be combined with --freeze-backbone")
        from retcore.guide import get_penalty

        guide = get_penalty(spec.form)
    optimizer = build_optimizer(trainable, cfg, w.size)
    criterion = LabelSmoothingCrossEntropy(cfg.smoothing) if cfg.smoothing > 0 else nn.CrossEntropyLoss()

    start_epoch, best_score, best_epoch = 0, -math.inf, -1
    best_head: dict[str, torch.Tensor] | None = None  # linear probe: the best head, written out at the end
    best_meta: dict[str, Any] | None = None
    last_path, best_path = out / LAST_CHECKPOINT, out / BEST_CHECKPOINT
    if resume and last_path.exists():
        try:
            state = torch.load(last_path, map_location="cpu", weights_only=True)
            if "head" in state:  # a linear probe's last checkpoint: the frozen backbone came with the model
                trainable.load_state_dict(state["head"])
                best_head, best_meta = state.get("best_head"), state.get("best_meta")
            else:
                model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(
                f"cannot resume from {last_path}: {str(exc).splitlines()[0]}; start a new run instead"
            ) from exc
        start_epoch = int(state["train_state"]["epoch"]) + 1
        best_score = float(state["train_state"]["best_score"])
        best_epoch = int(state["train_state"]["best_epoch"])
        torch.set_rng_state(state["train_state"]["torch_rng"])

    val_loader = _loader(val_set, cfg, train=False, seed=0)
    base_lr = cfg.effective_lr(w.size)
    n_batches = math.ceil(len(train_set) / (cfg.batch_size * w.size))  # global batches per epoch
    train_module = wrap(trainable, device)  # DistributedDataParallel when distributed
    steps = n_batches if cfg.max_train_batches is None else min(n_batches, cfg.max_train_batches)
    total_steps = cfg.epochs * steps

    def lr_at(epoch_float: float) -> float:
        return cosine_lr(epoch_float, cfg.epochs, cfg.warmup_epochs, base_lr, cfg.min_lr)

    epoch_bar = bars(total=cfg.epochs, initial=start_epoch, desc="finetune", unit="epoch", leave=True)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            train_loader = _loader(train_set, cfg, train=True, seed=cfg.seed * 1000 + epoch)
            running = RunningLoss()
            bar = bars(total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)

            def step_progress(step: int, epoch: int = epoch, bar: Bar = bar, running: RunningLoss = running) -> None:
                if on_progress:
                    on_progress((epoch * steps + step + 1) / max(total_steps, 1), f"epoch {epoch + 1}/{cfg.epochs}")
                if bar.update(1):  # the bar redrew: worth one device sync for the loss it shows next
                    bar.set_postfix(loss=f"{running.mean():.4f}", lr=f"{lr_at(epoch + (step + 1) / steps):.2e}",
                                    refresh=False)

            guide_log: list[float] = []
            try:
                train_loss = train_one_epoch(
                    train_module, train_loader, optimizer, criterion, lr_at=lr_at, epoch=epoch,
                    steps_per_epoch=steps, device=device, amp=cfg.amp, accum_iter=cfg.accum_iter,
                    max_batches=cfg.max_train_batches, on_step=step_progress,
                    guide=guide, guide_weight=cfg.guide_weight, guide_log=guide_log, running_loss=running,
                )
            finally:
                bar.close()
            val_loss, report = _evaluate(trainable, val_loader, class_names, device, cfg.amp, bars)
            score = selection_score(report) if report is not None else -train_loss
            is_best = bool(np.isfinite(score) and score > best_score)
            model_meta = {**meta, "epoch": epoch, "val_score": float(score) if np.isfinite(score) else None,
                          "config": cfg.to_dict()}
            if w.distributed:
                train_loss = float(np.mean(all_gather(train_loss)))
            if is_best:
                best_score, best_epoch = float(score), epoch
                if cfg.freeze_backbone:
                    best_head = {k: v.detach().to("cpu", copy=True) for k, v in trainable.state_dict().items()}
                    best_meta = model_meta
                elif w.main:
                    save_checkpoint(best_path, model, model_meta)
            lr = lr_at(epoch + 1.0)
            if on_epoch is not None:
                on_epoch(EpochResult(epoch, train_loss, val_loss, lr, report, float(score),
                                     is_best, time.perf_counter() - t0, guide_log[0] if guide_log else None))
            # recorded first, saved second: a kill in between redoes (and re-records) this epoch
            train_state = {"epoch": epoch, "best_score": best_score, "best_epoch": best_epoch,
                           "torch_rng": torch.get_rng_state()}
            if w.main and cfg.freeze_backbone:
                # the backbone is the pretrained one, reloaded on resume: save the head only (KB, not GB)
                _atomic_save({"head": trainable.state_dict(), "best_head": best_head, "best_meta": best_meta,
                              "optimizer": optimizer.state_dict(), "retcore": model_meta,
                              "train_state": train_state}, last_path)
            elif w.main:
                _atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                              "retcore": model_meta, "train_state": train_state}, last_path)
            barrier()  # the next epoch starts when the checkpoint is on disk
            epoch_bar.set_postfix(loss=f"{train_loss:.4f}", val_loss=f"{val_loss:.4f}", lr=f"{lr:.2e}",
                                  score=f"{score:.3f}", refresh=False)
            epoch_bar.update(1)
    finally:
        epoch_bar.close()
    if cfg.freeze_backbone and best_head is not None and w.main:
        trainable.load_state_dict(best_head)  # the full model with the best head, written once
        save_checkpoint(best_path, model, best_meta)
    barrier()
    if w.main and not best_path.exists():
        raise CheckpointError(f"no best checkpoint in {out}: training ran no epoch (check --epochs)")
    return FitResult(best_path, last_path, best_epoch, best_score, cfg.epochs - start_epoch)
