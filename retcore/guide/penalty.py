"""Differentiable "right for the right reasons" penalties of guided fine-tuning.

Each penalty form (registered by name with ``@register_penalty``) runs the
forward pass itself and returns ``(logits (B, C), penalty (scalar))``; the
training loss is ``cross_entropy + weight x penalty``. Both forms measure the
*share* of an explanation that falls outside the allowed region, in [0, 1]:
0 when everything is inside, 1 when everything is outside, so one ``weight``
means the same for both and for any image size. ``allowed`` is (B, 1, H, W)
in {0, 1} in the model-input frame; ``weight`` (B,) switches images without a
region off. The batch penalty is ``sum(weight_i x share_i) / max(sum(weight), 1)``.

Forms:

- ``input_gradient`` — Ross, Hughes, Doshi-Velez (IJCAI 2017), "Right for the
  Right Reasons": the input gradient of the summed log-probabilities
  ``g = d(sum_k log p_k) / dx``; explanation ``E = sum_channels g^2`` per pixel;
  share = ``sum(E x (1 - allowed)) / sum(E)``. Ross et al. add the raw sum
  ``sum(E x (1 - allowed))``, whose scale depends on the model and the input
  size; the share keeps the weight comparable across models (the gradient of
  the share still pushes the outside gradients down). Needs double
  back-propagation (``create_graph=True``): about 3x a plain step.
- ``relevance`` — the gradient x attention rollout of Chefer et al. (ICCV 2021,
  ``gae`` in ``retcore.explain``): ``A_bar_l = mean_heads(relu(dy_t/dA_l * A_l))``
  for the true class ``t``, rolled out with the model's read-out ``w`` (the CLS
  row, or the mean of the patch rows for average-pool heads) as
  ``r = w^T (I + A_bar_L) ... (I + A_bar_1) - w^T``, i.e. the relevance that
  reaches each patch through attention (the identity path, which no training
  can move, is left out). Patch shares of ``allowed`` come from average
  pooling over each patch. share = ``sum(r x (1 - allowed_patch)) / sum(r)``.
  The attention gradient ``dy_t/dA`` is treated as a constant (one extra
  backward, no double back-propagation): the penalty trains the attention maps
  themselves. About 2x a plain step.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from timm.layers import Attention
from torch import nn

from retcore.registry import Registry

__all__ = ["EPS", "PENALTY_REGISTRY", "attention_maps", "explicit_attention", "get_penalty", "list_penalties",
           "patch_relevance", "register_penalty"]

EPS = torch.finfo(torch.float32).tiny
"""Floor of a share's denominator (an all-zero explanation has share 0, a tiny one is not swamped)."""
PenaltyFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                     tuple[torch.Tensor, torch.Tensor]]
PENALTY_REGISTRY: Registry[PenaltyFn] = Registry("guide penalty")
"""Name -> penalty form; filled by :func:`register_penalty`."""


def register_penalty(name: str) -> Callable[[PenaltyFn], PenaltyFn]:
    """Decorator registering a penalty form under ``name``.

    Raises:
        retcore.registry.DuplicateNameError: ``name`` is already registered.
    """
    return PENALTY_REGISTRY.register(name)


def list_penalties() -> list[str]:
    """Names of the registered penalty forms, in registration order."""
    return PENALTY_REGISTRY.names()


def get_penalty(name: str) -> PenaltyFn:
    """The penalty form ``name``.

    Raises:
        retcore.registry.UnknownNameError: ``name`` is not registered (the message lists the names).
    """
    return PENALTY_REGISTRY.get(name)


def _attention_modules(model: nn.Module) -> list[Attention]:
    mods = [m for m in model.modules() if isinstance(m, Attention)]
    if not mods:
        raise ValueError(f"{type(model).__name__} has no timm Attention modules: guided fine-tuning needs a timm ViT")
    return mods


@contextmanager
def explicit_attention(model: nn.Module) -> Iterator[list[Attention]]:
    """Run every timm ``Attention`` of ``model`` unfused (explicit softmax(QK^T)V) inside the block.

    Explicit attention supports double back-propagation and exposes the
    attention map; the ``fused_attn`` flags are restored on exit.
    """
    mods = _attention_modules(model)
    saved = [m.fused_attn for m in mods]
    try:
        for m in mods:
            m.fused_attn = False
        yield mods
    finally:
        for m, flag in zip(mods, saved):
            m.fused_attn = flag


@contextmanager
def attention_maps(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the post-softmax attention maps (B, heads, N, N) of every block, in order, with their graph."""
    maps: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        maps.append(output)

    with explicit_attention(model) as mods:
        handles = [m.attn_drop.register_forward_hook(hook) for m in mods]
        try:
            yield maps
        finally:
            for h in handles:
                h.remove()


def _weighted_mean(share: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    weight = weight.to(share.dtype)
    return (share * weight).sum() / weight.sum().clamp(min=1.0)


@register_penalty("input_gradient")
def input_gradient_penalty(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, allowed: torch.Tensor,
                           weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of the squared input gradient of ``sum_k log p_k`` outside ``allowed`` (module docstring)."""
    del labels  # RRR explains all classes at once
    x = images.detach().requires_grad_(True)
    with explicit_attention(model):
        logits = model(x)
        log_p = F.log_softmax(logits.float(), dim=-1).sum()
        (grad,) = torch.autograd.grad(log_p, x, create_graph=True)
    energy = grad.float().pow(2).sum(1, keepdim=True)  # (B, 1, H, W)
    outside = (energy * (1.0 - allowed)).flatten(1).sum(1)
    share = outside / energy.flatten(1).sum(1).clamp(min=EPS)
    return logits, _weighted_mean(share, weight)


def _readout_weights(model: nn.Module, batch: int, n_tokens: int, like: torch.Tensor) -> torch.Tensor:
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    w = torch.zeros(batch, n_tokens, dtype=like.dtype, device=like.device)
    pool = getattr(model, "global_pool", "token")
    if pool == "avg":
        w[:, prefix:] = 1.0 / (n_tokens - prefix)
    elif pool == "token":
        w[:, 0] = 1.0
    else:
        raise ValueError(f"guided 'relevance' penalty supports global_pool 'avg' or 'token', not {pool!r}")
    return w


def patch_relevance(model: nn.Module, maps: list[torch.Tensor], logits: torch.Tensor,
                    labels: torch.Tensor) -> torch.Tensor:
    """Gradient x attention rollout relevance (B, Np) of the patch tokens for class ``labels``.

    Differentiable through the attention maps; the attention gradients are constants.
    """
    score = logits.float().gather(1, labels.long()[:, None]).sum()
    grads = torch.autograd.grad(score, maps, retain_graph=True)
    batch, _, n, _ = maps[0].shape
    w = _readout_weights(model, batch, n, maps[0].float())
    # u = w^T (I + A_L) ... (I + A_1) - w^T, accumulated directly (u <- u + (w + u) A_l) and in float32:
    # early in training the A_bar are ~1e-9 of w, and forming the product first would cancel to 0.
    u = torch.zeros_like(w)
    for a, g in zip(reversed(maps), reversed(grads)):
        a_bar = (g.detach().float() * a.float()).clamp(min=0).mean(1)  # (B, N, N)
        u = u + torch.bmm((w + u).unsqueeze(1), a_bar).squeeze(1)
    prefix = int(getattr(model, "num_prefix_tokens", 1))
    return u[:, prefix:]


@register_penalty("relevance")
def relevance_penalty(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, allowed: torch.Tensor,
                      weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of the gradient x attention rollout relevance outside ``allowed`` (module docstring)."""
    with attention_maps(model) as maps:
        logits = model(images)
    if not maps:
        raise ValueError("no attention maps were recorded: is this a timm VisionTransformer?")
    r = patch_relevance(model, maps, logits, labels)  # (B, Np)
    ph, pw = model.patch_embed.patch_size
    a = F.avg_pool2d(allowed.float(), (ph, pw)).flatten(1)  # (B, Np) share of each patch inside
    if a.shape[1] != r.shape[1]:
        raise ValueError(f"allowed mask gives {a.shape[1]} patches but the model has {r.shape[1]} patch tokens")
    share = (r * (1.0 - a)).sum(1) / r.sum(1).clamp(min=EPS)
    return logits, _weighted_mean(share, weight)
