"""Rules inside a transformer block: linear layers, the residual Add and fork, the attention matmuls.

See :mod:`retcore.explain.rules` for the formulas.
"""
from __future__ import annotations

import torch
from torch import nn

from retcore.explain.rules.base import EPS, Workspace, _as, _per_image, _scratch, dot_per_image, safe_divide
from retcore.explain.rules.weights import abs_weight, weight_block

__all__ = ["add_factors", "add_rule", "clone_rule", "linear_ab", "matmul_rule"]


def linear_ab(layer: nn.Linear, x: torch.Tensor, y: torch.Tensor, relevance: torch.Tensor, *,
              ws: Workspace | None = None, scale: torch.Tensor | None = None,
              consume_output: bool = False) -> torch.Tensor:
    """Alpha = 1, beta = 0 rule of a linear layer.

    Args:
        layer: the ``nn.Linear`` (weight (out, in), optional bias).
        x: its input (..., in) from the forward pass.
        y: its output (..., out) from the forward pass (bias included).
        relevance: relevance of the output (..., out).
        ws: optional workspace for the intermediates (the result is its
            ``'lin_g1'`` buffer).
        scale: optional per-image factor (B,) applied to ``relevance`` first
            (inputs shaped (B, ..., out)).
        consume_output: ``y`` is not needed afterwards and has the compute
            dtype and a contiguous layout: the numerator is accumulated into
            its memory (saves a pass over the output; ``y`` is overwritten).

    Returns:
        relevance of the input (..., in) in ``relevance.dtype``; its total
        equals the (scaled) output total up to ``EPS``.
    """
    dtype = relevance.dtype
    w, w_abs, shift = abs_weight(layer, dtype)
    x = _as(x, dtype)
    lead = x.shape[:-1]
    n_in, n_out = w.shape[1], w.shape[0]
    m = x.numel() // n_in
    x2 = x.reshape(m, n_in)
    xa = _scratch(ws, "lin_xa", (m, n_in + 1), relevance)
    xa[:, n_in] = 1.0
    xa_view = xa[:, :n_in]
    torch.abs(x2, out=xa_view)
    if consume_output and y.dtype == dtype and y.is_contiguous():
        z = y.view(m, n_out)
    else:
        z = _scratch(ws, "lin_z", (m, n_out), relevance)
        z.copy_(y.reshape(m, n_out))
    block = weight_block(layer, dtype)
    torch.addmm(z, xa, block[:, n_in:].t(), out=z)  # y + |x||W|^T + 2 EPS - b = 2 (Z + EPS)
    # Z >= 0, so 2 (Z + EPS) >= 2 EPS; rounding of y - b + |x||W| can leave 0 or less where Z = 0 (an
    # output with no positive contribution), and 0 / 0 would give NaN relevance
    z.clamp_(min=2 * EPS)
    r = relevance.reshape(m, n_out)
    if scale is not None:
        z.div_(scale.view(-1, 1).expand(scale.shape[0], m // scale.shape[0]).reshape(m, 1))
    s = torch.div(r, z, out=z)  # S / 2
    g = _scratch(ws, "lin_g", (m, 2 * n_in), relevance)
    torch.mm(s, block[:, : 2 * n_in], out=g)  # [S W, S |W|]
    g1, g2 = g[:, :n_in], g[:, n_in:]
    g1.mul_(x2).addcmul_(xa_view, g2)
    return g1.view(*lead, n_in)


def add_factors(a: torch.Tensor, b: torch.Tensor, z: torch.Tensor | None, relevance: torch.Tensor, *,
                ws: Workspace | None = None, name: str = "add_s",
                den: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The residual Add rule in factored form.

    Args:
        a, b: the operands (B, ...); ``z = a + b`` their sum from the forward pass.
        relevance: relevance of ``z`` (B, ...).
        ws, name: optional workspace and the name of the buffer ``s`` is written to.
        den: ``z + EPS`` if already at hand (then ``z`` is not read).

    Returns:
        ``(s, c_a, c_b)`` with ``s = relevance / (z + EPS)`` (B, ...) and
        per-image factors (B,) such that ``R_a = c_a * a * s`` and
        ``R_b = c_b * b * s``; ``sum R_a + sum R_b = sum relevance`` per image.
    """
    dtype = relevance.dtype
    total = relevance.reshape(relevance.shape[0], -1).sum(1)
    s = _scratch(ws, name, relevance.shape, relevance)
    if den is None:
        assert z is not None
        den = torch.add(_as(z, dtype), EPS, out=s)
    torch.div(relevance, den, out=s)
    a = _as(a, dtype)
    b = _as(b, dtype).expand_as(s)
    sum_a = dot_per_image(a, s)
    sum_b = dot_per_image(b.contiguous(), s)
    den = sum_a.abs() + sum_b.abs()
    fact_a = safe_divide(sum_a.abs(), den) * total
    fact_b = safe_divide(sum_b.abs(), den) * total
    return s, safe_divide(fact_a, sum_a), safe_divide(fact_b, sum_b)


def add_rule(a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual ``z = a + b``: gradient x input per operand, rescaled to conserve the total.

    Args:
        a, b: the operands (B, ...) (``b`` may broadcast over the batch).
        relevance: relevance of ``a + b`` (B, ...).

    Returns:
        ``(R_a, R_b)`` with ``R_a.sum() + R_b.sum() == relevance.sum()`` per image.
    """
    dtype = relevance.dtype
    a = _as(a, dtype)
    b = _as(b, dtype)
    s, c_a, c_b = add_factors(a, b, a + b, relevance)
    ra = a * s * _per_image(c_a, s.ndim)
    rb = b * s * _per_image(c_b, s.ndim)
    return ra, rb


def clone_rule(x: torch.Tensor, r1: torch.Tensor, r2: torch.Tensor, *, ws: Workspace | None = None,
               den: torch.Tensor | None = None) -> torch.Tensor:
    """Fork ``x -> (x, x)``: ``x * (r1 + r2) / (x + EPS)``, 0 where ``x == 0`` (overwrites ``r1``).

    That is ``r1 + r2`` up to a relative ``EPS / |x|``. In float64 it is
    computed as written (LRP through many blocks amplifies even such small
    differences, and the float64 tests compare with the authors' algorithm
    to 1e-7). In float32 and below ``x / (x + EPS)`` rounds to exactly 1 for
    ``|x| > 0.02`` and differs from it by far less than the rounding the
    authors' form itself adds elsewhere, so the sum is returned. ``den`` =
    ``x + EPS`` if already at hand.
    """
    r = r1.add_(r2)
    if r.dtype != torch.float64:
        return r
    x = _as(x, r.dtype)
    if den is None:
        den = torch.add(x, EPS, out=_scratch(ws, "clone_den", x.shape, r))
    return r.mul_(x).div_(den)


def matmul_rule(
    left: torch.Tensor,
    right: torch.Tensor,
    product: torch.Tensor,
    relevance: torch.Tensor,
    *,
    right_transposed: bool = False,
    need_right: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradient x input for ``product = left @ right`` (or ``left @ right^T``), each half.

    Args:
        left: (..., n, k).
        right: (..., k, m), or (..., m, k) with ``right_transposed``.
        product: the forward result (..., n, m).
        relevance: relevance of ``product`` (..., n, m).
        need_right: False skips the right operand's relevance (returns None).

    Returns:
        ``(R_left / 2, R_right / 2)`` in the operands' shapes; each unhalved
        part alone carries the whole total where ``product != 0``.
    """
    dtype = relevance.dtype
    s = safe_divide(relevance, _as(product, dtype)).mul_(0.5)
    left = _as(left, dtype)
    right = _as(right, dtype)
    if right_transposed:
        r_left = torch.matmul(s, right).mul_(left)
        r_right = torch.matmul(s.transpose(-1, -2), left).mul_(right) if need_right else None
    else:
        r_left = torch.matmul(s, right.transpose(-1, -2)).mul_(left)
        r_right = torch.matmul(left.transpose(-1, -2), s).mul_(right) if need_right else None
    return r_left, r_right
