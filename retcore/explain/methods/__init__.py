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

Whether a method can explain a model at all is asked with :func:`explain_support`
(see :mod:`~retcore.explain.methods.tracing`).

Methods here (the LRP ones live in :mod:`retcore.explain.lrp`):

* ``rollout`` (Abnar & Zuidema 2020) and ``attention`` (last block), in
  :mod:`~retcore.explain.methods.attention`;
* ``gradcam`` (Selvaraju et al. 2017; on the pooled tokens for average-pool
  heads, over the last block's attention heads for CLS heads) and ``gae``
  (Chefer, Gur, Wolf, ICCV 2021), in :mod:`~retcore.explain.methods.gradient`,
  whose docstring gives the formulas.

Read-outs (:mod:`retcore.explain.rollout`): the CLS row for CLS-token heads,
the mean of the patch-token rows for average-pool heads (Grad-CAM on tokens
needs none).

Modules: ``base`` (the registry, :class:`Method`, :class:`Needs`, :class:`Trace`),
``tracing`` (:func:`explain_support`, :func:`resolve_targets`, :func:`trace`),
``attention`` and ``gradient``. Importing this package registers the four methods,
in the order listed above.
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
