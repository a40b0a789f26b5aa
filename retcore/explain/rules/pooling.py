"""Rules of the head's pooling: the CLS selection and the average of tokens."""
from __future__ import annotations

import torch

from retcore.explain.rules.base import _as, safe_divide

__all__ = ["pool_mean_rule", "pool_token_rule"]


def pool_token_rule(tokens: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """CLS pooling ``z = tokens[:, 0]``: relevance (B, D) -> (B, N, D) on token 0."""
    out = torch.zeros(tokens.shape, dtype=relevance.dtype, device=relevance.device)
    first = _as(tokens[:, 0], relevance.dtype)
    out[:, 0] = first * safe_divide(relevance, first)
    return out


def pool_mean_rule(tokens: torch.Tensor, pooled: slice, relevance: torch.Tensor) -> torch.Tensor:
    """Average pooling ``z = mean(tokens[:, pooled])`` by gradient x input.

    Token ``n`` gets ``x_nd / (N_pooled * z_d) * R_d`` of feature ``d``: the
    pooled vector's relevance is spread over the averaged tokens in proportion
    to their contribution, and the total per feature is conserved. Tokens
    outside ``pooled`` (the CLS token) get 0. Returns (B, N, D).
    """
    x = _as(tokens, relevance.dtype)
    part = x[:, pooled]
    z = part.mean(1)
    s = safe_divide(relevance, z) / part.shape[1]
    out = torch.zeros(x.shape, dtype=relevance.dtype, device=relevance.device)
    out[:, pooled] = part * s.unsqueeze(1)
    return out
