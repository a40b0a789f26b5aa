"""Attention-only methods (no gradients): ``rollout`` and ``attention``.

* ``rollout`` — Abnar & Zuidema (2020) attention rollout, as in Chefer's
  baseline: mean over heads, ``+ I``, row-normalise, product over blocks
  from ``start_layer``, read-out.
* ``attention`` — raw attention of the last block, mean over heads, read-out.

Read-outs (:mod:`retcore.explain.rollout`): the CLS row for CLS-token heads,
the mean of the patch-token rows for average-pool heads.
"""
from __future__ import annotations

import torch

from retcore.explain.methods.base import Method, Trace, register_method
from retcore.explain.rollout import rollout_readout

__all__ = ["AttentionMethod", "RolloutMethod"]


def _mean_heads(t: torch.Tensor) -> torch.Tensor:
    return t.mean(1)


@register_method("rollout")
class RolloutMethod(Method):
    """Attention rollout (Abnar & Zuidema 2020): ``prod_l rownorm(mean_h A_l + I)``, read out."""

    attention = "from_start"

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, Np) read-out of the normalised rollout from ``start_layer``."""
        depth = trace.info.depth
        mats = (_mean_heads(trace.attention(i)) for i in range(depth - 1, trace.start_layer - 1, -1))
        r = rollout_readout(trace.weights, mats, add_identity=True, normalize=True)
        return r[:, trace.num_prefix_tokens:]


@register_method("attention")
class AttentionMethod(Method):
    """Raw attention of the last block, mean over heads, read out (Chefer's ``last_layer_attn``)."""

    attention = "last"

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, Np) read-out of ``mean_h A_{L-1}``."""
        attn = _mean_heads(trace.attention(trace.info.depth - 1).clamp(min=0))
        r = torch.bmm(trace.weights.unsqueeze(1), attn)[:, 0]
        return r[:, trace.num_prefix_tokens:]
