r"""Relevance rules of Chefer et al. (CVPR 2021) as closed-form tensor functions.

Every rule takes the relevance ``R`` of an operation's output and the
activations recorded in the forward pass, and returns the relevance of the
operation's input(s). ``EPS = 1e-9`` is the stabiliser of the authors'
``safe_divide(a, b) = a / (b + EPS)`` (0 where ``b == 0``).

* Linear layer, alpha-beta rule with alpha = 1, beta = 0 (:func:`linear_ab`):

  .. math:: Z_j = \sum_i x_i^+ W_{ji}^+ + x_i^- W_{ji}^-,\qquad
            R_i = x_i^+ \sum_j W_{ji}^+ \frac{R_j}{Z_j + \epsilon} + x_i^- \sum_j W_{ji}^- \frac{R_j}{Z_j + \epsilon}

  (bias ignored; the beta term is skipped because beta = 0). Three matmuls'
  worth of work instead of four: :math:`x^+W^+ + x^-W^- = (|x|\,|W| + xW)/2`
  reuses the forward output :math:`xW^\top = y - b` (one matmul, which also
  adds the bias term and accumulates into ``y``), and
  :math:`x^+ (SW^+) + x^- (SW^-) = (x\,(SW) + |x|\,(S|W|))/2`, where
  ``S [W, |W|]`` is one matmul of twice the width. ``[W, |W|, 2 EPS - b]``
  is built once per layer (:func:`weight_block`) and cached until the
  weight changes (about twice the memory of the linear weights). (The authors zero ``R_j / Z_j`` where ``Z_j`` is exactly 0,
  i.e. where no input contributes positively; the three-matmul form cannot
  see that exact 0 and leaves rounding noise there instead. With an all-zero
  weight or input row both give 0; otherwise it needs every one of the ``in``
  products ``x_i W_ji`` to be <= 0, which does not happen for the dense,
  LayerNorm-ed inputs of ViT layers. The residual Add skips the same mask for
  an exactly zero sum.)
* Residual Add ``a + b`` (:func:`add_rule`, :func:`add_factors`): gradient x
  input per operand, ``a * R / (a + b)``, then each part rescaled so that the
  totals are ``|s_a| / (|s_a| + |s_b|)`` and ``|s_b| / (...)`` of ``sum R``
  (``s_a``, ``s_b``: the parts' totals). Totals are per image (the authors'
  code runs one image at a time), and the sum is conserved.
* Clone (the residual fork, :func:`clone_rule`): ``x * (R_1 + R_2) / (x + EPS)``
  (in float32 the sum ``R_1 + R_2``, to which it rounds).
* The attention matmuls ``Q K^T`` and ``A V`` (:func:`matmul_rule`): gradient
  x input for both operands, each half.
* LayerNorm, GELU, softmax, dropout, LayerScale, identity norms: relevance
  passes through unchanged (no function needed).
* Pooling (:func:`pool_token_rule`, :func:`pool_mean_rule`): gradient x input
  of the CLS selection / of the average.
* First layer (:func:`patch_zbox_rule`): the authors' z^B rule for the patch
  convolution with per-image bounds ``l = min(image)``, ``h = max(image)``.

The functions compute in the dtype of ``R`` (float32 or float64). Those that
accept a :class:`Workspace` write their large intermediates into its
reusable buffers (fresh large allocations dominate the cost of these
memory-bound steps on CPU); their results then live in the workspace until
the same buffer is requested again.
"""
from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "EPS",
    "Workspace",
    "abs_weight",
    "add_factors",
    "add_rule",
    "clear_weight_cache",
    "clone_rule",
    "dot_per_image",
    "linear_ab",
    "matmul_rule",
    "conv_stem_rule",
    "patch_zbox_rule",
    "pool_mean_rule",
    "pool_token_rule",
    "safe_divide",
    "weight_block",
]

EPS = 1e-9
"""Stabiliser of the authors' ``safe_divide``."""

_WEIGHT_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict[torch.dtype, tuple]]" = weakref.WeakKeyDictionary()


class Workspace:
    """Reusable scratch tensors, one per ``(name, shape)``; allocated on first use."""

    def __init__(self, dtype: torch.dtype, device: torch.device) -> None:
        self.dtype = dtype
        self.device = device
        self._buffers: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
        """The buffer ``name`` of ``shape`` (uninitialised contents)."""
        key = (name, tuple(shape))
        buf = self._buffers.get(key)
        if buf is None:
            buf = torch.empty(key[1], dtype=self.dtype, device=self.device)
            self._buffers[key] = buf
        return buf


def _scratch(ws: Workspace | None, name: str, shape: tuple[int, ...] | torch.Size, like: torch.Tensor) -> torch.Tensor:
    if ws is None:
        return torch.empty(tuple(shape), dtype=like.dtype, device=like.device)
    return ws.get(name, shape)


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / (b + EPS)`` where ``b != 0``, else 0 (broadcasting like ``a / b``)."""
    return torch.where(b != 0, a / (b + EPS), torch.zeros((), dtype=a.dtype, device=a.device))


def abs_weight(layer: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W, |W|, 2 EPS - b)`` of a linear/conv ``layer`` in ``dtype``, cached per layer.

    The entry is reused while the weight and bias keep their storage, version
    counter (bumped by in-place updates: optimiser steps, ``load_state_dict``),
    dtype and device, and it lives as long as the layer. ``W^+ = (W + |W|)/2``
    and ``W^- = (W - |W|)/2``, so ``|W|`` is the only extra matrix the
    alpha-beta rule needs. The third item is the bias term of the doubled
    numerator ``2 Z + 2 EPS = |x| |W|^T + y + (2 EPS - b)`` (shape (out,)).
    For a linear layer the three are views of one cached (out, 2 in + 1)
    matrix ``[W, |W|, 2 EPS - b]`` (see :func:`weight_block`), so that
    ``S [W, |W|]`` is a single matmul.
    """
    block = weight_block(layer, dtype)
    if block.ndim != 2:
        return _cached(layer, dtype)
    n_in = (block.shape[1] - 1) // 2
    return block[:, :n_in], block[:, n_in:2 * n_in], block[:, 2 * n_in]


def weight_block(layer: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """``[W, |W|, 2 EPS - b]`` (out, 2 in + 1) of a linear layer (``|W|`` alone for a conv), cached.

    ``S @ block[:, :2 in]`` gives ``(S W, S |W|)`` in one matmul, and with an
    input ``[|x|, 1]``, ``block[:, in:]`` gives ``|x| |W|^T + 2 EPS - b``.
    """
    return _cached(layer, dtype)[1]


def _cached(layer: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    weight = layer.weight
    bias = getattr(layer, "bias", None)
    key = (weight._version, weight.data_ptr(), weight.dtype, weight.device,
           None if bias is None else (bias._version, bias.data_ptr()))
    per_dtype = _WEIGHT_CACHE.get(layer)
    if per_dtype is None:
        per_dtype = {}
        _WEIGHT_CACHE[layer] = per_dtype
    entry = per_dtype.get(dtype)
    if entry is not None and entry[0] == key:
        return entry[1]
    with torch.no_grad():
        w = weight.detach().to(dtype)
        shift = torch.full((w.shape[0],), 2 * EPS, dtype=dtype, device=w.device)
        if bias is not None:
            shift -= bias.detach().to(dtype)
        if w.ndim == 2:
            block = torch.cat((w, w.abs(), shift.unsqueeze(1)), dim=1)
            value = (w, block, shift)
        else:
            value = (w, w.abs(), shift)
    per_dtype[dtype] = (key, value)
    return value


def clear_weight_cache() -> None:
    """Forget every cached ``|W|`` (they are also dropped with their layers)."""
    _WEIGHT_CACHE.clear()


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
    r = relevance.reshape(m, n_out)
    if scale is not None:
        z.div_(scale.view(-1, 1).expand(scale.shape[0], m // scale.shape[0]).reshape(m, 1))
    s = torch.div(r, z, out=z)  # S / 2
    g = _scratch(ws, "lin_g", (m, 2 * n_in), relevance)
    torch.mm(s, block[:, : 2 * n_in], out=g)  # [S W, S |W|]
    g1, g2 = g[:, :n_in], g[:, n_in:]
    g1.mul_(x2).addcmul_(xa_view, g2)
    return g1.view(*lead, n_in)


def dot_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum()`` per image (B,) for (B, ...) tensors, without a temporary."""
    bsz = a.shape[0]
    a2, b2 = a.reshape(bsz, -1), b.reshape(bsz, -1)
    # one matrix-vector product per image: a single pass over memory (bmm / vecdot are much slower here)
    return torch.cat([torch.mv(a2[i:i + 1], b2[i]) for i in range(bsz)])


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


def _per_image(c: torch.Tensor, ndim: int) -> torch.Tensor:
    return c.view((-1,) + (1,) * (ndim - 1))


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


def patch_zbox_rule(
    conv: nn.Conv2d, image: torch.Tensor, conv_out: torch.Tensor, relevance: torch.Tensor
) -> torch.Tensor:
    """The authors' z^B rule for the patch convolution (kernel = stride, no padding).

    With per-image bounds ``l = min(image)``, ``h = max(image)`` (scalars, as
    in the authors' code):

    .. math:: Z = x \\ast W - l \\ast W^+ - h \\ast W^- + 10^{-9},\\quad
              R_x = x\\,(W^\\top S) - l\\,(W^{+\\top} S) - h\\,(W^{-\\top} S),\\ S = R / Z

    Args:
        conv: the patch-embedding convolution (D, C, ph, pw).
        image: its input (B, C, H, W) with H, W multiples of the patch.
        conv_out: its output (B, D, gh, gw) (bias included).
        relevance: relevance of the output (B, D, gh, gw).

    Returns:
        relevance of every input pixel and channel (B, C, H, W).
    """
    dtype = relevance.dtype
    w, w_abs, _ = abs_weight(conv, dtype)
    b, d, gh, gw = relevance.shape
    c, ph, pw = w.shape[1:]
    w_pos = (w + w_abs) * 0.5
    w_neg = (w - w_abs) * 0.5
    x = _as(image, dtype)
    low = x.amin(dim=(1, 2, 3)).view(b, 1, 1, 1)
    high = x.amax(dim=(1, 2, 3)).view(b, 1, 1, 1)
    y = _as(conv_out, dtype)
    if conv.bias is not None:
        y = y - _as(conv.bias.detach(), dtype).view(1, d, 1, 1)
    z = y - low * w_pos.sum((1, 2, 3)).view(1, d, 1, 1) - high * w_neg.sum((1, 2, 3)).view(1, d, 1, 1) + EPS
    s = (relevance / z).permute(0, 2, 3, 1).reshape(b, gh * gw, d)  # (B, Np, D)
    mats = torch.stack((w, w_pos, w_neg)).reshape(3, d, c * ph * pw)
    grads = torch.matmul(s.unsqueeze(1), mats.unsqueeze(0))  # (B, 3, Np, C*ph*pw)

    def unpatch(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, gh, gw, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, gh * ph, gw * pw)

    g, g_pos, g_neg = (unpatch(grads[:, i]) for i in range(3))
    x = x[:, :, : gh * ph, : gw * pw]
    return x * g - low * g_pos - high * g_neg


def _conv_zplus(x: torch.Tensor, w: torch.Tensor, stride, padding, relevance: torch.Tensor) -> torch.Tensor:
    """z+ rule of one convolution on non-negative input (post-ReLU): R_x = x (W+^T S), S = R / (x * W+)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        z = F.conv2d(x, w.clamp(min=0), None, stride, padding) + EPS
        s = (relevance / z).detach()
        (g,) = torch.autograd.grad((z * s).sum(), x)
    return x.detach() * g


def _conv_zbox(x: torch.Tensor, w: torch.Tensor, stride, padding, relevance: torch.Tensor) -> torch.Tensor:
    """z^B rule of the first convolution, bounds l = min(image), h = max(image) per image (as ``patch_zbox_rule``)."""
    b = x.shape[0]
    low = x.amin(dim=(1, 2, 3)).view(b, 1, 1, 1).expand_as(x)
    high = x.amax(dim=(1, 2, 3)).view(b, 1, 1, 1).expand_as(x)
    with torch.enable_grad():
        xs = [t.detach().clone().requires_grad_(True) for t in (x, low, high)]
        z = (F.conv2d(xs[0], w, None, stride, padding) - F.conv2d(xs[1], w.clamp(min=0), None, stride, padding)
             - F.conv2d(xs[2], w.clamp(max=0), None, stride, padding) + EPS)
        s = (relevance / z).detach()
        grads = torch.autograd.grad((z * s).sum(), xs)
    return sum(t.detach() * g for t, g in zip(xs, grads))


def conv_stem_rule(stem: nn.Module, image: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """LRP through a convolutional patch embedding (``retcore.models.stem.ConvStem``) down to the pixels.

    Each eval-mode BatchNorm is folded into the convolution before it; ReLU
    passes relevance unchanged; every convolution but the first uses the z+
    rule (its input is post-ReLU, non-negative) and the first the z^B rule
    with the image's min/max as bounds — the standard composite for a CNN
    feature extractor (Montavon et al., 2019). Biases absorb a little
    relevance, so conservation is approximate.

    Args:
        stem: ``nn.Sequential`` of Conv2d / BatchNorm2d / ReLU / Identity.
        image: its input (B, C, H, W).
        relevance: relevance of its output (B, D, gh, gw).

    Returns:
        relevance of every input pixel and channel (B, C, H, W).
    """
    dtype = relevance.dtype
    layers = list(stem.children())
    convs: list[tuple[torch.Tensor, tuple, tuple, torch.Tensor]] = []
    x = _as(image.detach(), dtype)
    i = 0
    with torch.no_grad():
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, nn.Conv2d):
                w = _as(layer.weight.detach(), dtype)
                bias = _as(layer.bias.detach(), dtype) if layer.bias is not None else torch.zeros(
                    w.shape[0], dtype=dtype, device=w.device)
                if i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
                    bn = layers[i + 1]
                    scale = _as(bn.weight.detach(), dtype) / torch.sqrt(_as(bn.running_var, dtype) + bn.eps)
                    w = w * scale.view(-1, 1, 1, 1)
                    bias = (bias - _as(bn.running_mean, dtype)) * scale + _as(bn.bias.detach(), dtype)
                    i += 1
                convs.append((w, layer.stride, layer.padding, x))
                x = F.conv2d(x, w, bias, layer.stride, layer.padding)
            elif isinstance(layer, nn.ReLU):
                x = F.relu(x)
            elif not isinstance(layer, nn.Identity):
                raise TypeError(f"LRP through the patch embedding does not know {type(layer).__name__}")
            i += 1
    r = relevance
    for k in range(len(convs) - 1, -1, -1):
        w, stride, padding, xin = convs[k]
        r = (_conv_zbox if k == 0 else _conv_zplus)(xin, w, stride, padding, r)
    return r
