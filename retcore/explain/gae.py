"""Generic attention explainability (Chefer, Gur, Wolf, ICCV 2021), differentiable.

One implementation, two callers: the ``gae`` explanation method
(:class:`retcore.explain.methods.GAEMethod`, detached maps) and the guide's
``relevance`` penalty (:mod:`retcore.guide.penalty`, maps that are part of a
training loss).

For blocks ``l = start_layer .. L-1`` with post-softmax attention ``A_l``
(B, H, N, N) and ``dA_l = d(sum of target logits) / dA_l``, let
``P_l = mean_h clamp(dA_l * A_l, 0)``. The map is the read-out (row weights
``w``, :func:`~retcore.explain.rollout.readout_weights`) of
``R - I = (I + P_{L-1}) ... (I + P_s) - I``, patch columns only:

    r = w^T (I + P_{L-1}) ... (I + P_s) - w^T,

accumulated last block first as ``u <- u + (w + u) P_l`` (``u = 0`` at the
start), never forming ``R`` and never subtracting two large terms: early in
training (a RETFound head has std 2e-5) the ``P_l`` are ~1e-9 of ``w``, and
forming the product first would cancel to 0 in float32.

The identity (residual) path is left out: for a CLS read-out it only reaches
the CLS column, which is dropped anyway (the authors' maps are unchanged);
for the mean read-out of average-pool heads it would add the same 1/Np to
every patch and, on a trained model whose attention terms are small, swamp
the map (every zone score ~1.0). It is also the part no training can move.

:func:`gae_readout` is the formula on tensors and is differentiable in both
``A_l`` and ``dA_l``; :func:`gae_relevance` runs the model under
:func:`~retcore.explain.capture.capture` (``trainable=True``: the model keeps
its mode and its parameters their gradients) and returns logits and map with
their graph, so ``loss(map).backward()`` reaches the parameters through the
attention maps. With ``create_graph=True`` it also differentiates through
``dA_l`` (double back-propagation); by default ``dA_l`` is a constant.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from retcore.explain.capture import capture, inspect_vit
from retcore.explain.errors import ExplainError, TargetError
from retcore.explain.rollout import default_readout, readout_weights

__all__ = ["GAEOutput", "gae_readout", "gae_relevance", "target_gradients"]


def target_gradients(logits: torch.Tensor, targets: torch.Tensor, wrt: Sequence[torch.Tensor], *,
                     retain_graph: bool | None = None, create_graph: bool = False) -> tuple[torch.Tensor, ...]:
    """``d(sum_b logits[b, targets[b]]) / d t`` for every tensor ``t`` in ``wrt``.

    Args:
        logits: (B, C) with their autograd history.
        targets: class per image (B,), long.
        wrt: tensors the logits depend on (attention maps, tokens).
        retain_graph: keep the forward graph (for a later ``backward`` of a loss).
        create_graph: make the gradients themselves differentiable.

    Returns:
        One gradient per tensor of ``wrt``, same shapes.
    """
    chosen = logits.gather(1, targets.long().unsqueeze(1)).sum()
    return torch.autograd.grad(chosen, list(wrt), retain_graph=retain_graph, create_graph=create_graph)


def gae_readout(weights: torch.Tensor, layers_last_first: Iterable[tuple[torch.Tensor, torch.Tensor]],
                num_prefix_tokens: int) -> torch.Tensor:
    """``(w^T prod_l (I + mean_h clamp(dA_l * A_l, 0)) - w^T)[:, prefix:]``, last block first.

    Computed in float32 (float64 for float64 inputs) whatever the dtype of
    the maps (bf16 under autocast), out of place, so it is differentiable in
    every ``A_l`` and ``dA_l``.

    Args:
        weights: read-out row weights ``w`` (B, N).
        layers_last_first: pairs ``(A_l, dA_l)``, each (B, H, N, N), from the
            last block down to ``start_layer`` (a generator is fine).
        num_prefix_tokens: CLS + register tokens, whose columns are dropped.

    Returns:
        (B, Np) relevance of the patch tokens.
    """
    w = weights.unsqueeze(1)  # (B, 1, N)
    extra: torch.Tensor | None = None  # w^T prod (I + P_l) - w^T: the part that flows through attention
    for attn, grad in layers_last_first:
        dtype = torch.promote_types(torch.promote_types(attn.dtype, grad.dtype), torch.float32)
        w = w.to(dtype)
        positive = (grad.to(dtype) * attn.to(dtype)).clamp(min=0)  # (B, H, N, N)
        rows = w if extra is None else w + extra.to(dtype)
        step = torch.matmul(rows.unsqueeze(1), positive).mean(1)  # (B, 1, N); no head mean formed
        extra = step if extra is None else extra + step
    if extra is None:
        raise ExplainError("gae needs at least one block to roll out")
    return extra[:, 0, num_prefix_tokens:]


class GAEOutput(NamedTuple):
    """What :func:`gae_relevance` returns: ``logits`` (B, C) of the forward pass and the
    patch-token ``relevance`` (B, Np), both with their autograd history."""

    logits: torch.Tensor
    relevance: torch.Tensor


def gae_relevance(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, start_layer: int = 0,
                  readout: str | None = None, create_graph: bool = False) -> GAEOutput:
    """The ``gae`` map of ``targets``, differentiable to the model's parameters.

    One forward pass of ``model`` as it is (train or eval mode, parameters
    as they are, attention explicit in the rolled-out blocks), one gradient
    of the target logits to the attention maps (graph retained), then
    :func:`gae_readout`. Equals ``retcore.explain.relevance(model, images,
    'gae', targets, start_layer, readout=readout).flatten(1)`` for a model in
    eval mode (which that function uses), to float rounding.

    Args:
        model: a timm ``VisionTransformer`` (:func:`~retcore.explain.capture.inspect_vit`).
        images: (B, C, H, W) on the model's device.
        targets: explained class per image (B,), long (the true labels in training).
        start_layer: first block of the rollout.
        readout: ``None`` = the head's own (``'cls'`` / ``'mean'``), as :func:`retcore.explain.relevance`.
        create_graph: also differentiate through ``dA_l`` (double back-propagation);
            by default the attention gradients are constants.

    Returns:
        :class:`GAEOutput` ``(logits (B, C), relevance (B, Np))``.

    Raises:
        UnsupportedModelError: not a supported timm ViT.
        ExplainError: ``start_layer`` out of range, unknown ``readout``.
        TargetError: ``targets`` not one integer class per image (the range is not checked
            here: that would wait for the device every training step).
    """
    info = inspect_vit(model)
    if not 0 <= start_layer < info.depth:
        raise ExplainError(f"start_layer {start_layer} is out of range for a model with {info.depth} blocks")
    batch = images.shape[0]
    if targets.shape != (batch,) or targets.dtype.is_floating_point:
        raise TargetError(f"targets must be one class index per image ({batch},), got {tuple(targets.shape)} "
                          f"{targets.dtype}")
    layers = list(range(start_layer, info.depth))
    with torch.enable_grad(), capture(model, attention_layers=layers, grad_layers=layers, trainable=True) as rec:
        logits = model(images)
        maps = [rec.attention(i) for i in layers]
    grads = target_gradients(logits, targets, maps, retain_graph=True, create_graph=create_graph)
    kind = readout or default_readout(info)
    dtype = torch.promote_types(maps[0].dtype, torch.float32)
    weights = readout_weights(info, kind, batch, maps[0].shape[-1], dtype=dtype, device=images.device)
    r = gae_readout(weights, zip(reversed(maps), reversed(grads)), info.num_prefix_tokens)
    return GAEOutput(logits, r)
