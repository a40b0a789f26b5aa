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

Modules: ``base`` (``EPS``, :class:`Workspace`, :func:`safe_divide`, per-image sums),
``weights`` (the cached ``[W, |W|, 2 EPS - b]`` blocks), ``block`` (linear, residual Add,
clone and attention-matmul rules), ``pooling`` (the head's pooling) and ``pixels``
(the patch convolution and convolutional stems, down to the pixels).
"""
from __future__ import annotations

from retcore.explain.rules.base import EPS, Workspace, dot_per_image, safe_divide
from retcore.explain.rules.block import add_factors, add_rule, clone_rule, linear_ab, matmul_rule
from retcore.explain.rules.pixels import conv_stem_rule, patch_zbox_rule
from retcore.explain.rules.pooling import pool_mean_rule, pool_token_rule
from retcore.explain.rules.weights import abs_weight, clear_weight_cache, weight_block

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
