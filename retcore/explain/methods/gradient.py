"""Gradient-weighted methods: ``gradcam`` and ``gae``.

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
"""
from __future__ import annotations

import torch

from retcore.explain.capture import ViTInfo
from retcore.explain.gae import gae_readout
from retcore.explain.methods.base import Method, Needs, Trace, register_method

__all__ = ["GAEMethod", "GradCAMMethod", "gradcam_heads", "gradcam_tokens"]


def gradcam_tokens(features: torch.Tensor, grads: torch.Tensor, pooled: slice, prefix: int) -> torch.Tensor:
    """Grad-CAM on tokens: ``ReLU(sum_d w_d A_{t,d})`` with ``w_d = mean_{t in pooled} dA_{t,d}``.

    Args:
        features: token activations ``A`` (B, N, D).
        grads: ``d y / d A`` (B, N, D).
        pooled: the token positions whose gradients are averaged into channel weights.
        prefix: number of CLS/register tokens in front of the patch tokens.

    Returns:
        (B, Np) map over the patch tokens ``prefix:``, >= 0.
    """
    weights = grads[:, pooled].mean(1)  # (B, D)
    return torch.einsum("bnd,bd->bn", features[:, prefix:], weights).clamp(min=0)


def gradcam_heads(attention: torch.Tensor, grads: torch.Tensor, readout: torch.Tensor, prefix: int) -> torch.Tensor:
    """Chefer's Grad-CAM over attention heads: ``clamp(mean_h(mean_j(r^T dA_h)[patch] * (r^T A_h)[patch]), 0)``.

    Args:
        attention: ``A`` of one block (B, H, N, N).
        grads: ``dA`` (B, H, N, N).
        readout: read-out row weights ``r`` (B, N) (the CLS row for CLS heads).
        prefix: number of CLS/register tokens in front of the patch tokens.

    Returns:
        (B, Np) map over the patch tokens, >= 0.
    """
    r = readout[:, None, None, :]  # (B, 1, 1, N)
    rows = torch.matmul(r, attention)[:, :, 0, prefix:]  # (B, H, Np)
    head_weights = torch.matmul(r, grads)[:, :, 0, prefix:].mean(-1, keepdim=True)
    return (rows * head_weights).mean(1).clamp(min=0)


@register_method("gradcam")
class GradCAMMethod(Method):
    """Grad-CAM, on the pooled tokens for average-pool heads, over the last attention heads for CLS heads.

    **Average-pool heads** (``global_pool='avg'``): ``A`` = the tokens the pool
    reads, i.e. the output of the model's final ``norm`` (B, N, D); channel
    weights ``w_d`` = mean over the pooled tokens of ``d y_c / d A_{t,d}``;
    map = ``ReLU(sum_d w_d A_{t,d})`` over the patch tokens (the read-out is
    not used). The tokens are taken *after* the final norm because that is
    what the pool averages: the pool is then linear in ``A``, every pooled
    token gets the same gradient ``g / Np`` (``g`` = gradient at the pooled
    vector), and Grad-CAM reduces to CAM (Zhou et al. 2016): the first-order
    contribution ``g . A_t / Np`` of each token to the logit. Before a
    per-token LayerNorm (heads built with ``fc_norm=False``) each token would
    get its own Jacobian and that identity would be lost; for ``fc_norm``
    heads (RETFound) the final norm is an ``Identity``, so ``A`` is the last
    block's output either way. With ``fc_norm`` the unrectified map sums to
    about zero over the pooled tokens (LayerNorm ignores a shift of its input
    and, up to its ``eps``, a rescaling, so ``g . pooled ~ 0``): the map shows
    the tokens that push the class more than the average token does, and has
    positive mass unless every token is the same.

    **CLS heads** (``global_pool='token'``): Chefer's baseline over the heads
    of the last attention map (see the module docstring): the patch tokens of
    the last block's output get no gradient from a CLS read-out, so Grad-CAM on
    them would be zero everywhere.
    """

    attention = "last"
    gradients = True

    def needs(self, info: ViTInfo, start_layer: int) -> Needs:
        """The pooled tokens and their gradient for average-pool heads, else the last attention map and ``dA``."""
        if info.global_pool == "avg":
            return Needs(features=True)
        return super().needs(info, start_layer)

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, Np): :func:`gradcam_tokens` (average pool) or :func:`gradcam_heads` (CLS head)."""
        p = trace.num_prefix_tokens
        if trace.features is not None and trace.feature_grad is not None:
            return gradcam_tokens(trace.features.to(trace.dtype), trace.feature_grad.to(trace.dtype),
                                  trace.info.pooled_slice(), p)
        last = trace.info.depth - 1
        return gradcam_heads(trace.attention(last), trace.grad(last), trace.weights, p)


@register_method("gae")
class GAEMethod(Method):
    """Generic attention explainability (Chefer ICCV 2021): ``R += mean_h(clamp(dA * A, 0)) @ R``."""

    attention = "from_start"
    gradients = True

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, Np) read-out of ``prod_l (I + mean_h clamp(dA_l * A_l, 0)) - I`` from ``start_layer``.

        :func:`retcore.explain.gae.gae_readout`, the same function the guide's ``relevance``
        penalty differentiates (through :func:`retcore.explain.gae.gae_relevance`); the identity
        (residual) path is left out (see :mod:`retcore.explain.gae` for why).
        """
        layers = ((trace.attention(i), trace.grad(i)) for i in range(trace.info.depth - 1, trace.start_layer - 1, -1))
        return gae_readout(trace.weights, layers, trace.num_prefix_tokens)
