"""Explanation methods: the registry, the shared forward/backward, the attention baselines.

A method is a small :class:`Method` subclass registered with
``@register_method(name)``. Class attributes say what it needs (attention
maps of which blocks, their gradients, the LRP activations, the tokens the
head pools); :meth:`Method.needs` turns them into a :class:`Needs` for one
model (a method whose definition depends on the head overrides it);
:func:`trace` runs the model once under
:func:`retcore.explain.capture.capture` (and, if needed, one backward of the
target logits to the attention maps / pooled tokens, with no parameter
gradients) and hands a :class:`Trace` to the single override point
:meth:`Method.compute`, which returns one value per patch token (B, Np) — or
per pixel (B, H, W) for methods with ``output = 'pixels'``.

Whether a method can explain a model at all is asked with
:func:`explain_support` (None, or a one-line reason); :func:`trace` (hence
:func:`retcore.explain.relevance`) raises
:class:`~retcore.explain.errors.UnsupportedMethodError` with that reason
instead of computing maps that would be empty or wrong.

Methods here (the LRP ones live in :mod:`retcore.explain.lrp`):

* ``rollout`` — Abnar & Zuidema (2020) attention rollout, as in Chefer's
  baseline: mean over heads, ``+ I``, row-normalise, product over blocks
  from ``start_layer``, read-out.
* ``attention`` — raw attention of the last block, mean over heads, read-out.
* ``gradcam`` — Grad-CAM (Selvaraju et al. 2017), chosen by head type:

  - **average-pool heads** (``global_pool='avg'``, RETFound): Grad-CAM on the
    tokens the pool reads, as pytorch-grad-cam applies it to ViTs (patch
    tokens reshaped to the token grid, channels = the embedding dimension):
    ``A`` = output of the final ``norm`` (B, N, D) — an ``Identity`` for
    ``fc_norm`` heads, so the last block's output —, channel weights
    ``w_d = mean over the pooled tokens of d y_c / d A_{t,d}``, map =
    ``ReLU(sum_d w_d A_{t,d})`` for each patch token ``t``. See
    :class:`GradCAMMethod` for why the tokens are taken after the norm.
  - **CLS heads** (``global_pool='token'``): Chefer's ViT baseline, because
    the CLS read-out gives the patch tokens of the last block's output no
    gradient at all (the final norm is per token, the head reads token 0), so
    Grad-CAM on them is identically zero. Channels are the last block's
    attention heads, the activation is the CLS row of each head's attention
    ``A_h`` (patch columns), the weight of a head is the mean of the CLS row
    of its gradient ``dA_h``; map = ``clamp(mean_h(w_h * A_h), 0)``.
* ``gae`` — Chefer, Gur, Wolf (ICCV 2021) generic attention explainability:
  ``R = I``; for each block from ``start_layer``, ``R += mean_h(clamp(dA * A, 0)) @ R``.

Read-outs (:mod:`retcore.explain.rollout`): the CLS row for CLS-token heads,
the mean of the patch-token rows for average-pool heads (Grad-CAM on tokens
needs none).

Modules: ``base`` (the registry, :class:`Method`, :class:`Needs`, :class:`Trace`),
``tracing`` (:func:`explain_support`, :func:`resolve_targets`, :func:`trace`),
``attention`` (``rollout``, ``attention``) and ``gradient`` (``gradcam``, ``gae``).
Importing this package registers the four methods, in that order.
"""
from __future__ import annotations

# importing the method modules registers them: attention (rollout, attention), then gradient (gradcam, gae)
from retcore.explain.methods.attention import AttentionMethod, RolloutMethod
from retcore.explain.methods.base import (
    METHOD_REGISTRY,
    Method,
    Needs,
    Trace,
    get_method,
    list_methods,
    register_method,
)
from retcore.explain.methods.gradient import GAEMethod, GradCAMMethod, gradcam_heads, gradcam_tokens
from retcore.explain.methods.tracing import explain_support, resolve_targets, trace

__all__ = [
    "METHOD_REGISTRY",
    "AttentionMethod",
    "GAEMethod",
    "GradCAMMethod",
    "Method",
    "Needs",
    "RolloutMethod",
    "Trace",
    "explain_support",
    "get_method",
    "gradcam_heads",
    "gradcam_tokens",
    "list_methods",
    "register_method",
    "resolve_targets",
    "trace",
]
