"""LRP of a timm ViT: Chefer, Gur, Wolf (CVPR 2021) "transformer attribution", and full LRP to pixels.

``lrp`` (the paper's method, their ``method="transformer_attribution"`` /
``relprop(method="grad")``):

1. Forward, keeping every block's post-softmax attention ``A`` (B, H, N, N).
2. Backward the target logit to ``dA`` (attention maps only; no parameter
   gradients; nothing below block ``start_layer``).
3. LRP from a one-hot relevance at the logits down to the attention of block
   ``start_layer`` with the rules of :mod:`retcore.explain.rules`; ``R_A`` is
   the (halved) relevance reaching ``A`` at the ``A @ V`` product.
4. Per block ``cam_l = mean_h clamp(R_A * dA, 0)`` (the authors' order:
   product, clamp, head mean).
5. Rollout ``prod_l (I + cam_l)`` from ``start_layer``, no row normalisation.
6. Read-out: CLS row without the CLS column.

Only what the map needs is computed: the LRP pass stops at the ``A @ V``
product of block ``start_layer`` (its ``Q K^T``, ``qkv`` and everything below
are never visited); the rollout is pushed through as the read-out row
vector, ``w^T (I + cam_{L-1}) ... (I + cam_s)``, updated as soon as ``R_A``
of a block is known, so neither ``cam_l`` (a head mean) nor the N x N
product is ever formed; no parameter gradient is taken.

Cost (ViT-B, see ``bench/explain.py``): forward 1 unit, backward to the
attention maps about 1, and the alpha-beta rule 3 matmuls per linear layer
instead of the 4 of its textbook form (:mod:`retcore.explain.rules`), with
the weights' absolute values cached once per model.

**Average-pool heads (RETFound)** — no reference exists; our adaptation:

* the relevance of the pooled vector (after ``fc_norm``, which, like every
  LayerNorm, passes relevance unchanged — also when applied twice) is spread
  over the averaged patch tokens by gradient x input of the mean
  (:func:`~retcore.explain.rules.pool_mean_rule`): token ``n`` receives
  ``x_nd / (N_p z_d) R_d`` of feature ``d``, the CLS token nothing;
* the read-out is the **mean of the patch-token rows** of the rollout,
  restricted to the patch columns, because the prediction is a mean over
  patch tokens, not a single token's output. Everything else is unchanged.

``lrp_pixels`` (the paper's "full LRP" baseline, ``relprop(method="full")``):
the same rules all the way down through every block, then the position-
embedding Add (the add rule; the part of the patch embedding is kept, the
CLS/register tokens dropped), then the patch convolution with the authors'
z^B rule (:func:`~retcore.explain.rules.patch_zbox_rule`; bounds = per-image
min and max of the model input, which suits normalised images whose values
are bounded), summed over colour channels. The result lives on the **pixel
grid** (B, H, W) of the model input, not on the token grid; ``start_layer``
does not apply.

Batched: every total the authors take over their single image is taken per
image. LayerScale (DINOv2) passes relevance unchanged, like the affine part
of LayerNorm.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from retcore.explain.capture import BlockRecord
from retcore.explain.methods import Method, Trace, register_method
from retcore.explain.rules import (
    EPS,
    Workspace,
    add_factors,
    add_rule,
    clone_rule,
    conv_stem_rule,
    linear_ab,
    patch_zbox_rule,
    pool_mean_rule,
    pool_token_rule,
)

__all__ = ["LRPMethod", "LRPPixelsMethod", "head_relevance", "pixel_relevance", "propagate_blocks"]


def head_relevance(trace: Trace) -> torch.Tensor:
    """Relevance (B, N, D) of the last block's output tokens for the target classes.

    One-hot relevance at the logits -> ``head`` (alpha 1, beta 0) -> ``fc_norm``
    (identity, once or twice) -> pooling (CLS selection or
    :func:`~retcore.explain.rules.pool_mean_rule`) -> final ``norm`` (identity).
    """
    rec, info = trace.recorder.head, trace.info
    assert rec.head_in is not None and rec.logits is not None and rec.tokens is not None
    one_hot = F.one_hot(trace.targets, info.num_classes).to(trace.dtype)
    r = linear_ab(trace.model.head, rec.head_in, rec.logits, one_hot)  # type: ignore[arg-type]
    if info.global_pool == "token":
        return pool_token_rule(rec.tokens, r)
    return pool_mean_rule(rec.tokens, info.pooled_slice(), r)


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, H*d) -> (B, H, N, d) view."""
    b, n, _ = t.shape
    return t.reshape(b, n, heads, -1).transpose(1, 2)


def propagate_blocks(
    trace: Trace,
    relevance: torch.Tensor,
    *,
    stop_layer: int,
    to_input: bool,
    on_attention: Callable[[int, slice, torch.Tensor], None] | None = None,
    on_block_input: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor | None:
    """LRP through the blocks, from the last one down to ``stop_layer``.

    Per block, in the authors' order: second residual Add, ``fc2``, ``fc1``
    (GELU and ``norm2`` pass relevance unchanged), Clone; first residual Add,
    ``proj``, ``A @ V`` (halved), softmax (unchanged), ``Q K^T`` (halved),
    ``qkv``, Clone. Per-image factors of the Add rule are folded into the
    next division and the halvings into the products; every large
    intermediate lives in a reusable workspace, the numerators of the linear
    rules are accumulated into the recorded layer outputs, and the
    attention-sized steps run on chunks of images (bounded memory). This
    **consumes the records** of the visited blocks.

    Args:
        trace: a trace recorded with activations for blocks ``stop_layer..L-1``.
        relevance: relevance (B, N, D) of the last block's output (overwritten).
        stop_layer: lowest block visited.
        to_input: continue through block ``stop_layer``'s ``Q K^T`` and ``qkv``
            to its input; if False stop right after ``R_A`` of that block.
        on_attention: called as ``f(l, images, R_A)`` with ``R_A``
            (b, H, N, N), the halved relevance of ``A`` in block ``l`` for the
            images ``images`` (a slice of the batch), from the last block down;
            ``f`` may overwrite ``R_A`` (a workspace buffer).
        on_block_input: called as ``f(l, R)`` with the relevance (B, N, D) of
            block ``l``'s input (a workspace buffer: copy it to keep it).

    Returns:
        relevance (B, N, D) of block ``stop_layer``'s input if ``to_input``
        (a workspace buffer), else None.
    """
    model, rec, dtype = trace.model, trace.recorder, trace.dtype
    ws = Workspace(dtype, relevance.device)
    r: torch.Tensor | None = relevance
    den_out = None  # x_out + EPS of the next block down = x_in + EPS of the block above
    for index in range(trace.info.depth - 1, stop_layer - 1, -1):
        br = rec.blocks[index]
        rec.blocks[index] = BlockRecord(attn=br.attn)
        last = index == stop_layer and not to_input
        assert r is not None
        blk = model.blocks[index]  # type: ignore[index]
        r, den_out = _block(blk, br, r, den_out, ws, dtype, last, index, on_attention)
        if r is None:
            return None
        if on_block_input is not None:
            on_block_input(index, r)
    return r


_CHUNK_BYTES = 64 << 20
"""Attention-sized work is done on chunks of images of at most this many bytes per tensor.

Large chunks: on a shared CPU every extra (small) parallel kernel can wait for a
time slice, which costs far more than the cache misses of large tensors."""


def _f(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    assert t is not None, "activation not recorded"
    return t if t.dtype == dtype else t.to(dtype)


def _block(blk: nn.Module, br: BlockRecord, r: torch.Tensor, den_out: torch.Tensor | None, ws: Workspace,
           dtype: torch.dtype, last: bool, index: int,
           on_attention: Callable[[int, slice, torch.Tensor], None] | None,
           ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One block of :func:`propagate_blocks`.

    Relevance of the block output (and ``x_out + EPS`` if known) -> relevance
    of its input and ``x_in + EPS`` (``(None, None)`` when ``last``).
    """
    bsz, n, _ = r.shape
    attn_mod = blk.attn
    heads = attn_mod.num_heads
    x_in, x_mid = _f(br.x_in, dtype), _f(br.x_mid, dtype)
    branch1, branch2 = _f(br.branch1, dtype), _f(br.branch2, dtype)
    # second residual Add: x_out = x_mid + branch2
    s, c_res, c_mlp = add_factors(x_mid, branch2, br.x_out, r, ws=ws, name="s_add2", den=den_out)
    r_b = torch.mul(branch2, s, out=ws.get("r_branch", r.shape))
    r_b = linear_ab(blk.mlp.fc2, br.fc2_in, br.fc2_out, r_b, ws=ws, scale=c_mlp,  # type: ignore[arg-type]
                    consume_output=True)
    r_b = linear_ab(blk.mlp.fc1, br.fc1_in, br.fc1_out, r_b, ws=ws, consume_output=True)  # type: ignore[arg-type]
    # Clone: residual part c_res * x_mid * s plus the MLP part
    r_mid = s.mul_(x_mid).mul_(c_res.view(bsz, 1, 1))
    den_mid = torch.add(x_mid, EPS, out=ws.get("den_mid", r.shape))
    r_mid = clone_rule(x_mid, r_mid, r_b, den=den_mid)
    # first residual Add: x_mid = x_in + branch1
    s, c_res, c_attn = add_factors(x_in, branch1, None, r_mid, ws=ws, name="s_add1", den=den_mid)
    r_b = torch.mul(branch1, s, out=ws.get("r_branch", r.shape))
    # proj, with the halving of A @ V folded into its per-image factor
    r_o = linear_ab(attn_mod.proj, br.proj_in, br.proj_out, r_b, ws=ws, scale=c_attn * 0.5,  # type: ignore[arg-type]
                    consume_output=True)
    # A @ V: S = R / (A V + EPS) (halved), R_A = A * (S V^T), R_V = V * (A^T S)
    s_o = torch.add(_f(br.attn_out, dtype), EPS, out=ws.get("s_o", r.shape))
    torch.div(r_o, s_o, out=s_o)
    head_dim = s_o.shape[-1] // heads
    s_h = ws.get("s_h", (bsz, heads, n, head_dim))
    s_h.copy_(_heads(s_o, heads))
    qkv = _f(br.qkv_out, dtype).view(bsz, n, 3, heads, head_dim)
    v = ws.get("v", s_h.shape)
    v.copy_(qkv[:, :, 2].transpose(1, 2))
    attn = _f(br.attn.detach(), dtype)  # type: ignore[union-attr]
    r_qkv = None
    if not last:
        q = ws.get("q", s_h.shape)
        q.copy_(_f(br.q, dtype))
        k = ws.get("k", s_h.shape)
        k.copy_(_f(br.k, dtype))
        r_qkv = ws.get("r_qkv", qkv.shape)  # (B, N, 3, H, d), the qkv output layout
        r_q, r_k, r_v = (r_qkv[:, :, i].transpose(1, 2) for i in range(3))
    chunk = max(1, min(bsz, _CHUNK_BYTES // max(1, heads * n * n * attn.element_size())))
    for start in range(0, bsz, chunk):
        sl = slice(start, min(bsz, start + chunk))
        b = sl.stop - start
        bh = b * heads
        a = attn[sl].reshape(bh, n, n)
        sh = s_h[sl].reshape(bh, n, head_dim)
        vh = v[sl].reshape(bh, n, head_dim)
        r_a = ws.get("r_a", (bh, n, n))
        torch.bmm(sh, vh.transpose(1, 2), out=r_a).mul_(a)
        if last:
            if on_attention is not None:
                on_attention(index, sl, r_a.view(b, heads, n, n))
            continue
        assert r_qkv is not None
        g = ws.get("g_h", (bh, n, head_dim))
        torch.bmm(a.transpose(1, 2), sh, out=g)
        torch.mul(g.view(b, heads, n, head_dim), v[sl], out=r_v[sl])
        # Q K^T (softmax passes relevance unchanged): S = R_A / (q k^T + EPS), halves via alpha
        qh = q[sl].reshape(bh, n, head_dim)
        kh = k[sl].reshape(bh, n, head_dim)
        s_qk = ws.get("s_qk", (bh, n, n))
        torch.bmm(qh, kh.transpose(1, 2), out=s_qk).add_(EPS)
        torch.div(r_a, s_qk, out=s_qk)
        if on_attention is not None:
            on_attention(index, sl, r_a.view(b, heads, n, n))
        torch.baddbmm(g, s_qk, kh, beta=0.0, alpha=0.5, out=g)
        torch.mul(g.view(b, heads, n, head_dim), q[sl], out=r_q[sl])
        torch.baddbmm(g, s_qk.transpose(1, 2), qh, beta=0.0, alpha=0.5, out=g)
        torch.mul(g.view(b, heads, n, head_dim), k[sl], out=r_k[sl])
    if last:
        return None, None
    assert r_qkv is not None
    r_b = linear_ab(attn_mod.qkv, br.qkv_in, br.qkv_out, r_qkv.view(bsz, n, -1), ws=ws,  # type: ignore[arg-type]
                    consume_output=True)
    r_in = s.mul_(x_in).mul_(c_res.view(bsz, 1, 1))
    den_in = torch.add(x_in, EPS, out=ws.get("den_res", r.shape))  # den_out of the block below
    return clone_rule(x_in, r_in, r_b, den=den_in), den_in


@register_method("lrp")
class LRPMethod(Method):
    """Chefer et al. CVPR 2021 transformer attribution (LRP x gradient, rollout from ``start_layer``)."""

    attention = "from_start"
    gradients = True
    activations = True
    autocast = False

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, Np) read-out of ``prod_l (I + mean_h clamp(R_A * dA, 0)) - I`` (identity path left out, as ``gae``)."""
        w = trace.weights.unsqueeze(1)  # (B, 1, N)
        extra = torch.zeros_like(w)  # w^T (I + cam_{L-1}) ... so far, minus w^T (the identity path)

        def on_attention(index: int, images: slice, r_a: torch.Tensor) -> None:
            # w^T cam = mean_h (w^T clamp(R_A * dA, 0)_h): one batched product, cam never formed
            positive = r_a.mul_(trace.grads[index][images].to(r_a.dtype)).clamp_(min=0)
            r = w[images] + extra[images]
            extra[images] += torch.matmul(r.unsqueeze(1), positive).mean(1)

        propagate_blocks(trace, head_relevance(trace), stop_layer=trace.start_layer, to_input=False,
                         on_attention=on_attention)
        return extra[:, 0, trace.num_prefix_tokens:]


@register_method("lrp_pixels")
class LRPPixelsMethod(Method):
    """Full LRP (the paper's "full LRP" baseline) down to the input pixels, summed over channels."""

    attention = "all"
    activations = True
    embedding = True
    output = "pixels"
    autocast = False

    def compute(self, trace: Trace) -> torch.Tensor:
        """(B, H, W) pixel relevance."""
        r = propagate_blocks(trace, head_relevance(trace), stop_layer=0, to_input=True)
        assert r is not None
        return pixel_relevance(trace, r)


def pixel_relevance(trace: Trace, tokens_relevance: torch.Tensor) -> torch.Tensor:
    """Relevance (B, N, D) of the first block's input -> pixels (B, H, W).

    Position-embedding Add (add rule), drop CLS/register tokens, patch
    convolution (z^B rule), sum over channels.
    """
    model, emb, info = trace.model, trace.recorder.embed, trace.info
    assert emb.patch_tokens is not None and emb.image is not None and emb.conv_out is not None
    p = info.num_prefix_tokens
    b, d = emb.patch_tokens.shape[0], emb.patch_tokens.shape[-1]
    patches = emb.patch_tokens.reshape(b, -1, d)  # (B, Np, D) also for an NHWC patch embedding
    r = tokens_relevance
    if emb.tokens is not None:  # x + pos_embed happened
        if getattr(model, "no_embed_class", False):
            r_patch, _ = add_rule(patches, emb.tokens[:, p:] - patches.to(emb.tokens.dtype), r[:, p:])
        else:
            prefix = [t.expand(b, -1, -1) for t in (model.cls_token, model.reg_token) if t is not None]
            before = torch.cat([t.detach().to(patches.dtype) for t in prefix] + [patches], dim=1)
            r_all, _ = add_rule(before, emb.tokens - before, r)
            r_patch = r_all[:, p:]
    else:
        r_patch = r[:, p:]
    gh, gw = emb.conv_out.shape[-2:]
    r_conv = r_patch.transpose(1, 2).reshape(b, -1, gh, gw)
    proj = model.patch_embed.proj
    if isinstance(proj, nn.Conv2d):
        pixels = patch_zbox_rule(proj, emb.image, emb.conv_out, r_conv)
    else:  # a convolutional stem (retcore.models.stem.ConvStem)
        pixels = conv_stem_rule(proj, emb.image, r_conv)
    return pixels.sum(1)
