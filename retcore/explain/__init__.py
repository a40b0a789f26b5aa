"""Relevance maps of timm Vision Transformers: ViT-LRP and baselines.

``relevance(model, images, method='lrp', target=None, start_layer=0)`` returns
raw relevance (B, gh, gw) on the token grid of any timm ``VisionTransformer``
with a CLS-token head (``global_pool='token'``) or a global-average-pool head
with ``fc_norm`` (``global_pool='avg'``, RETFound; also ``fc_norm`` applied
twice). ``upsample`` and the ``normalize_*`` / ``clip_percentile`` helpers of
:mod:`retcore.explain.display` are for display only.

Methods (registry :data:`METHOD_REGISTRY`, ``@register_method(name)``,
:func:`list_methods`):

* ``lrp`` — Chefer, Gur, Wolf, CVPR 2021, "Transformer Interpretability
  Beyond Attention Visualization" (transformer attribution), same rules,
  halving, residual normalisation, gradient weighting, clamp, head mean,
  rollout with identity from ``start_layer`` and CLS read-out as the
  authors' code; see :mod:`retcore.explain.lrp` for the rules and the
  average-pool adaptation;
* ``lrp_pixels`` — full LRP to the input pixels (B, H, W) (z^B rule at the
  patch convolution);
* ``gae`` — Chefer et al. ICCV 2021 generic attention explainability;
  :func:`gae_relevance` (:mod:`retcore.explain.gae`) is the same map with its
  graph to the parameters, for training losses (the guide's ``relevance``
  penalty);
* ``gradcam`` — Grad-CAM: on the tokens the pool reads for average-pool
  heads (channel weights = gradients averaged over the tokens, as
  pytorch-grad-cam does for ViTs), over the last block's attention heads for
  CLS heads (Chefer's baseline; a CLS read-out gives the last block's patch
  tokens no gradient);
* ``rollout`` — Abnar & Zuidema 2020 attention rollout;
* ``attention`` — last-block attention.

**Average-pool heads (RETFound).** They have no CLS read-out; we (1) pass the
relevance of the pooled vector to the patch tokens by gradient x input of the
mean (each token gets its share of each feature, the CLS token none;
``fc_norm``, like every LayerNorm, passes relevance unchanged) and (2) read
out the mean of the patch-token rows of the rollout (patch columns only),
because the prediction is a mean over patch tokens. The same read-out serves
``gae``, ``rollout`` and ``attention`` (``gradcam`` needs none there: it works
on the pooled tokens themselves). ``readout='cls'`` / ``'mean'`` overrides
the choice.

**When a method cannot explain a model.** ``explain_support(model, method)``
returns None, or a one-line reason (not a supported ViT; LRP on blocks with
in-place activations...); :func:`relevance` raises
:class:`UnsupportedMethodError` (an :class:`UnsupportedModelError`) with the
same reason rather than return empty maps.

**Cost and precision.** ``lrp`` costs about 5 plain forward passes (ViT-B,
224 px, batch 8, CPU; ``bench/explain.py``): forward, a backward to the
attention maps only, and the alpha-beta rule in three matmuls per linear
layer, with ``[W, |W|]`` cached once per layer (about twice the linear
weights' memory). The LRP rules divide by sums that can nearly cancel, so
float32 maps agree with float64 to about 1e-4..1e-3 relative on deep random
models, and ``lrp`` / ``lrp_pixels`` always run in full precision, also
inside a bf16 autocast region.

Hooks are attached only inside :func:`capture` (a context manager that
restores the model exactly); everything else is pure functions of tensors.
"""
from __future__ import annotations

from retcore.explain.api import relevance
from retcore.explain.capture import Recorder, ViTInfo, capture, inspect_vit
from retcore.explain.display import clip_percentile, normalize_minmax, normalize_sum, upsample
from retcore.explain.errors import (
    ExplainError,
    TargetError,
    UnknownMethodError,
    UnsupportedMethodError,
    UnsupportedModelError,
)
from retcore.explain.gae import GAEOutput, gae_readout, gae_relevance
from retcore.explain.lrp import LRPMethod, LRPPixelsMethod  # importing registers lrp and lrp_pixels
from retcore.explain.methods import (
    METHOD_REGISTRY,
    AttentionMethod,
    GAEMethod,
    GradCAMMethod,
    Method,
    Needs,
    RolloutMethod,
    Trace,
    explain_support,
    get_method,
    list_methods,
    register_method,
)
from retcore.explain.rollout import (READOUTS, default_readout, readout, readout_weights, rollout_matrix,
                                     rollout_readout)

__all__ = [
    "METHOD_REGISTRY",
    "READOUTS",
    "AttentionMethod",
    "ExplainError",
    "GAEMethod",
    "GAEOutput",
    "GradCAMMethod",
    "LRPMethod",
    "LRPPixelsMethod",
    "Method",
    "Needs",
    "Recorder",
    "RolloutMethod",
    "TargetError",
    "Trace",
    "UnknownMethodError",
    "UnsupportedMethodError",
    "UnsupportedModelError",
    "ViTInfo",
    "capture",
    "clip_percentile",
    "default_readout",
    "explain_support",
    "gae_readout",
    "gae_relevance",
    "get_method",
    "inspect_vit",
    "list_methods",
    "normalize_minmax",
    "normalize_sum",
    "readout",
    "readout_weights",
    "register_method",
    "relevance",
    "rollout_matrix",
    "rollout_readout",
    "upsample",
]
