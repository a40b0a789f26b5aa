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
- ``grad_x_input`` — a pixel-level relevance of the true class ``t``: gradient x input,
  ``E = relu(sum_channels(dy_t/dx * x))`` per pixel, with ``x`` the normalised model input (so
  the reference is the dataset mean colour) and ``y_t`` the logit; share = ``sum(E x (1 -
  allowed)) / sum(E)``. It acts at the pixel scale that ``lrp_pixels`` measures (a marker a
  fraction of one 16-pixel token is invisible to the token-level ``relevance``), and explains the
  true class as the maps do (``input_gradient`` explains all classes at once). Double
  back-propagation, like ``input_gradient``.
- ``relevance`` — the ``gae`` explanation of ``retcore.explain`` (Chefer et
  al., ICCV 2021: gradient x attention rollout) of the true class ``t``,
  computed by the very function the ``gae`` method uses
  (:func:`retcore.explain.gae.gae_relevance`, which calls
  :func:`~retcore.explain.gae.gae_readout`), with the model in its training
  state: ``P_l = mean_heads(relu(dy_t/dA_l * A_l))``,
  ``r = w^T (I + P_{L-1}) ... (I + P_0) - w^T`` with the model's read-out
  ``w`` (the CLS row, or the mean of the patch rows for average-pool heads),
  i.e. the relevance that reaches each patch through attention (the identity
  path, which no training can move, is left out). For a model in eval mode
  ``r`` equals ``retcore.explain.relevance(model, images, 'gae', labels)``
  (``tests/guide/test_guide_penalty.py`` checks it). Patch shares of
  ``allowed`` come from average pooling over each patch;
  share = ``sum(r x (1 - allowed_patch)) / sum(r)``. The attention gradient
  ``dy_t/dA`` is a constant (one extra backward, no double back-propagation):
  the penalty trains the attention maps themselves. About 1.3x a plain step
  (``bench/guide.py``).
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import nn

from retcore.explain.capture import Recorder, capture
from retcore.explain.gae import gae_relevance
from retcore.registry import Registry

__all__ = ["EPS", "PENALTY_REGISTRY", "get_penalty", "list_penalties", "register_penalty"]

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


def _explicit_attention(model: nn.Module) -> AbstractContextManager[Recorder]:
    """Every block's attention explicit (softmax(QK^T)V, which supports double back-propagation), the model
    otherwise as it is: :func:`retcore.explain.capture.capture` with ``trainable=True``."""
    return capture(model, attention_layers=range(len(model.blocks)), trainable=True)  # type: ignore[arg-type]


def _weighted_mean(share: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    weight = weight.to(share.dtype)
    return (share * weight).sum() / weight.sum().clamp(min=1.0)


@register_penalty("input_gradient")
def input_gradient_penalty(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, allowed: torch.Tensor,
                           weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of the squared input gradient of ``sum_k log p_k`` outside ``allowed`` (module docstring)."""
    del labels  # RRR explains all classes at once
    x = images.detach().requires_grad_(True)
    with _explicit_attention(model):
        logits = model(x)
        log_p = F.log_softmax(logits.float(), dim=-1).sum()
        (grad,) = torch.autograd.grad(log_p, x, create_graph=True)
    energy = grad.float().pow(2).sum(1, keepdim=True)  # (B, 1, H, W)
    outside = (energy * (1.0 - allowed)).flatten(1).sum(1)
    share = outside / energy.flatten(1).sum(1).clamp(min=EPS)
    return logits, _weighted_mean(share, weight)


@register_penalty("grad_x_input")
def grad_x_input_penalty(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, allowed: torch.Tensor,
                         weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of the positive gradient x input of the true class's logit outside ``allowed`` (module docstring)."""
    x = images.detach().requires_grad_(True)
    with _explicit_attention(model):
        logits = model(x)
        chosen = logits.float().gather(1, labels.view(-1, 1).to(logits.device)).sum()
        (grad,) = torch.autograd.grad(chosen, x, create_graph=True)
    energy = (grad.float() * x.float()).sum(1, keepdim=True).clamp(min=0)  # (B, 1, H, W)
    outside = (energy * (1.0 - allowed)).flatten(1).sum(1)
    share = outside / energy.flatten(1).sum(1).clamp(min=EPS)
    return logits, _weighted_mean(share, weight)


@register_penalty("relevance")
def relevance_penalty(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, allowed: torch.Tensor,
                      weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of the ``gae`` relevance of the true class outside ``allowed`` (module docstring)."""
    logits, r = gae_relevance(model, images, labels)  # (B, Np), differentiable through the attention maps
    ph, pw = model.patch_embed.patch_size
    a = F.avg_pool2d(allowed.float(), (ph, pw)).flatten(1)  # (B, Np) share of each patch inside
    if a.shape[1] != r.shape[1]:
        raise ValueError(f"allowed mask gives {a.shape[1]} patches but the model has {r.shape[1]} patch tokens")
    share = (r * (1.0 - a)).sum(1) / r.sum(1).clamp(min=EPS)
    return logits, _weighted_mean(share, weight)
