"""Token-to-token matrices: rollout products and read-outs.

A per-block matrix ``M_l`` (B, N, N) says how much each token (row) draws on
each token (column) in block ``l``. The *rollout* of blocks ``s..L-1`` is the
product ``J = M_{L-1} ... M_{s+1} M_s`` (rows: output tokens, columns: input
tokens), and a *read-out* turns ``J`` into one value per patch token:

* ``'cls'``: the CLS row, ``J[:, 0, prefix:]`` (CLS-token heads);
* ``'mean'``: the mean of the rows of the tokens the average-pool head
  averages (the patch tokens), ``J[:, pooled, prefix:].mean(1)`` — the
  adaptation for global-average-pool heads (RETFound), whose prediction is a
  mean over patch tokens rather than one token.

Both are a weighted sum of rows, ``w^T J`` with a row-weight vector ``w``
(:func:`readout_weights`), so :func:`rollout_readout` never forms ``J``: it
pushes ``w`` through the chain, ``w^T M_{L-1} ... M_s`` (N^2 work per block
instead of N^3). Column ``j < prefix`` (CLS, registers) is dropped.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from retcore.explain.capture import ViTInfo
from retcore.explain.errors import ExplainError

__all__ = ["READOUTS", "default_readout", "readout", "readout_weights", "rollout_matrix", "rollout_readout"]

READOUTS = ("cls", "mean")
"""``'cls'``: CLS-token row; ``'mean'``: mean of the averaged (patch) token rows."""


def default_readout(info: ViTInfo) -> str:
    """The head's own read-out: ``'cls'`` for a CLS-token head, ``'mean'`` for an average-pool head."""
    return "cls" if info.global_pool == "token" else "mean"


def readout_weights(
    info: ViTInfo, kind: str, batch: int, n_tokens: int, *, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Row weights ``w`` (B, N) of a read-out.

    Args:
        info: the model description.
        kind: ``'cls'`` (one-hot on token 0) or ``'mean'`` (uniform over the
            tokens the average-pool head averages: the patch tokens).
        batch, n_tokens: ``B`` and ``N``.

    Raises:
        ExplainError: unknown kind, or ``'cls'`` on a model without CLS token.
    """
    w = torch.zeros(batch, n_tokens, dtype=dtype, device=device)
    if kind == "cls":
        if not info.has_class_token:
            raise ExplainError("readout 'cls' needs a model with a class token: use readout='mean'")
        w[:, 0] = 1.0
    elif kind == "mean":
        pooled = info.pooled_slice()
        count = len(range(n_tokens)[pooled])
        w[:, pooled] = 1.0 / count
    else:
        raise ExplainError(f"unknown readout {kind!r}: use one of {', '.join(READOUTS)}")
    return w


def rollout_matrix(matrices: Sequence[torch.Tensor], *, start_layer: int = 0, add_identity: bool = True,
                   normalize: bool = False) -> torch.Tensor:
    """Product of per-block matrices, as the authors' ``compute_rollout_attention``.

    Args:
        matrices: ``M_0 .. M_{L-1}``, each (B, N, N), in block order.
        start_layer: first block of the product.
        add_identity: use ``M_l + I`` (the residual connection).
        normalize: divide each row of ``M_l (+ I)`` by its sum (Abnar & Zuidema
            rollout; the LRP "transformer attribution" does not normalise).

    Returns:
        ``J = M'_{L-1} ... M'_{start_layer}`` (B, N, N).
    """
    mats = list(matrices)[start_layer:]
    if not mats:
        raise ExplainError(f"start_layer {start_layer} leaves no block to roll out")
    joint = None
    for m in mats:
        m = _augment(m, add_identity, normalize)
        joint = m if joint is None else torch.bmm(m, joint)
    assert joint is not None
    return joint


def _augment(m: torch.Tensor, add_identity: bool, normalize: bool) -> torch.Tensor:
    if add_identity:
        m = m + torch.eye(m.shape[-1], dtype=m.dtype, device=m.device)
    if normalize:
        m = m / m.sum(-1, keepdim=True)
    return m


def readout(matrix: torch.Tensor, weights: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """``(w^T J)[:, prefix:]``: read-out (B, Np) of a token matrix ``J`` (B, N, N) with row weights (B, N)."""
    return torch.bmm(weights.unsqueeze(1).to(matrix.dtype), matrix)[:, 0, num_prefix_tokens:]


def rollout_readout(
    weights: torch.Tensor,
    matrices_last_first: Iterable[torch.Tensor],
    *,
    add_identity: bool = True,
    normalize: bool = False,
) -> torch.Tensor:
    """``w^T M'_{L-1} ... M'_s`` without forming the product (all N columns).

    Args:
        weights: row weights (B, N) (:func:`readout_weights`).
        matrices_last_first: ``M_{L-1}, ..., M_s`` (B, N, N), last block first
            (a generator is fine: each matrix can be freed after use).
        add_identity, normalize: as in :func:`rollout_matrix`.

    Returns:
        (B, N); drop the first ``num_prefix_tokens`` columns for a patch map.
    """
    r = weights.unsqueeze(1)
    for m in matrices_last_first:
        r = r.to(m.dtype)
        if normalize:
            r = torch.bmm(r, _augment(m, add_identity, normalize))
        elif add_identity:
            r = r + torch.bmm(r, m)
        else:
            r = torch.bmm(r, m)
    return r[:, 0]
