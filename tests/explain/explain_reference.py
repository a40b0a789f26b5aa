"""A slow, literal re-implementation of Chefer, Gur & Wolf (CVPR 2021) for tests.

Written from the paper and the published description of the authors'
``layers_ours`` / ``ViT_LRP`` design: every layer is an object that remembers
its input in the forward pass and has a ``relprop(R)`` computing the
relevance of its input with autograd (``gradprop``), one image at a time,
exactly like the authors' per-layer relprop objects. It shares no code with
``retcore.explain`` (which uses closed-form, batched rules): agreement
between the two is the evidence that ``retcore.explain`` reproduces the
authors' algorithm.

:class:`RefViT` copies the weights of a timm ``VisionTransformer`` (standard
blocks, CLS token, ``'token'`` or ``'avg'`` head, optional double ``fc_norm``).
Its ``relprop`` supports the authors' ``"transformer_attribution"`` (their
``method="grad"``) and ``"full"`` (LRP to pixels); for ``'avg'`` heads the
pooling is a :class:`RefMeanPool` with the gradient x input rule (our
adaptation) and the read-out is the mean of the patch-token rows.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-9


def ref_safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / (b + eps)`` (a zero denominator replaced by eps), and 0 where ``b == 0``."""
    den = b + EPS
    den = torch.where(den == 0, torch.full_like(den, EPS), den)
    return torch.where(b != 0, a / den, torch.zeros_like(a / den))


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def _d(t):
    """Detached parameter (the reference never touches the timm model's gradients)."""
    return None if t is None else t.detach()


class RefLayer:
    """Remembers its inputs; ``relprop`` passes relevance unchanged by default."""

    def __call__(self, *inputs):
        self.X = [_leaf(x) for x in inputs]
        return self.forward(*inputs)

    def forward(self, *inputs):  # pragma: no cover - overridden
        raise NotImplementedError

    def relprop(self, R):
        return R


class RefIdentityRule(RefLayer):
    """GELU, softmax, LayerNorm, dropout: relevance passes through unchanged."""

    def __init__(self, fn):
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class RefGradInput(RefLayer):
    """Gradient x input with the stabilised division (the authors' simple rule)."""

    def relprop(self, R):
        Z = self.forward(*self.X)
        S = ref_safe_divide(R, Z)
        C = torch.autograd.grad(Z, self.X, S)
        out = [x * c for x, c in zip(self.X, C)]
        return out if len(out) > 1 else out[0]


class RefEinsum(RefGradInput):
    def __init__(self, equation):
        self.equation = equation

    def forward(self, a, b):
        return torch.einsum(self.equation, a, b)


class RefIndexSelect(RefGradInput):
    def forward(self, x):
        return x[:, 0]


class RefMeanPool(RefGradInput):
    """Average of the patch tokens (our adaptation for RETFound heads)."""

    def __init__(self, prefix):
        self.prefix = prefix

    def forward(self, x):
        return x[:, self.prefix:].mean(1)


class RefAdd(RefLayer):
    def forward(self, a, b):
        return a + b

    def relprop(self, R):
        a, b = self.X
        Z = a + b
        S = ref_safe_divide(R, Z)
        Ca, Cb = torch.autograd.grad(Z, [a, b], S)
        ra, rb = a * Ca, b * Cb
        sa, sb = ra.sum(), rb.sum()
        fa = ref_safe_divide(sa.abs(), sa.abs() + sb.abs()) * R.sum()
        fb = ref_safe_divide(sb.abs(), sa.abs() + sb.abs()) * R.sum()
        return ra * ref_safe_divide(fa, ra.sum()), rb * ref_safe_divide(fb, rb.sum())


class RefClone(RefLayer):
    def forward(self, x):
        return x, x

    def relprop(self, Rs):
        x = self.X[0]
        Z = [x, x]
        S = [ref_safe_divide(r, z) for r, z in zip(Rs, Z)]
        (C,) = torch.autograd.grad(Z, [x], S)
        return x * C


class RefLinear(RefLayer):
    """Linear layer with the LRP alpha-beta rule (alpha = 1, beta = 0 by default)."""

    def __init__(self, weight, bias, alpha=1.0):
        self.weight, self.bias, self.alpha = weight, bias, alpha

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def relprop(self, R):
        beta = self.alpha - 1
        wp, wn = self.weight.clamp(min=0), self.weight.clamp(max=0)
        xp, xn = self.X[0].clamp(min=0), self.X[0].clamp(max=0)

        def rule(w1, w2):
            x1, x2 = _leaf(xp), _leaf(xn)
            z1, z2 = F.linear(x1, w1), F.linear(x2, w2)
            s = ref_safe_divide(R, z1 + z2)
            g1 = torch.autograd.grad(z1, x1, s)[0]
            g2 = torch.autograd.grad(z2, x2, s)[0]
            return x1.detach() * g1 + x2.detach() * g2

        out = self.alpha * rule(wp, wn)
        if beta:
            out = out - beta * rule(wn, wp)
        return out


class RefPatchConv(RefLayer):
    """Patch convolution with the z^B rule (bounds: min / max of the image)."""

    def __init__(self, weight, bias, patch):
        self.weight, self.bias, self.patch = weight, bias, patch

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, stride=self.patch)

    def relprop(self, R):
        x = self.X[0].detach()
        wp, wn = self.weight.clamp(min=0), self.weight.clamp(max=0)
        low = torch.full_like(x, float(x.min()))
        high = torch.full_like(x, float(x.max()))
        xs, ls, hs = _leaf(x), _leaf(low), _leaf(high)
        z = (F.conv2d(xs, self.weight, stride=self.patch) - F.conv2d(ls, wp, stride=self.patch)
             - F.conv2d(hs, wn, stride=self.patch) + 1e-9)
        S = R / z
        gx, gl, gh = torch.autograd.grad(z, [xs, ls, hs], S)
        # z = conv(x, W) - conv(l, W+) - conv(h, W-): the gradients carry the signs
        return x * gx + low * gl + high * gh


class RefAttention:
    def __init__(self, attn):
        self.heads = attn.num_heads
        self.scale = attn.scale
        self.qkv = RefLinear(_d(attn.qkv.weight), _d(attn.qkv.bias))
        self.proj = RefLinear(_d(attn.proj.weight), _d(attn.proj.bias))
        self.matmul1 = RefEinsum("bhid,bhjd->bhij")
        self.matmul2 = RefEinsum("bhij,bhjd->bhid")
        self.softmax = RefIdentityRule(lambda t: t.softmax(-1))
        self.attn_drop = RefIdentityRule(lambda t: t)
        self.attn = self.attn_grad = self.attn_cam = None

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        dots = self.matmul1(q, k) * self.scale
        attn = self.attn_drop(self.softmax(dots))
        self.attn = attn
        if attn.requires_grad:
            attn.register_hook(self._save_grad)
        out = self.matmul2(attn, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def _save_grad(self, g):
        self.attn_grad = g

    def relprop(self, R):
        b, n, d = R.shape
        R = self.proj.relprop(R).reshape(b, n, self.heads, -1).transpose(1, 2)
        r_attn, r_v = self.matmul2.relprop(R)
        r_attn, r_v = r_attn / 2, r_v / 2
        self.attn_cam = r_attn
        r_attn = self.softmax.relprop(self.attn_drop.relprop(r_attn))
        r_q, r_k = self.matmul1.relprop(r_attn)
        r_q, r_k = r_q / 2, r_k / 2
        r_qkv = torch.stack([r_q, r_k, r_v]).permute(1, 3, 0, 2, 4).reshape(b, n, -1)
        return self.qkv.relprop(r_qkv)


def _ref_layer_norm(m):
    return RefIdentityRule(lambda t: F.layer_norm(t, m.normalized_shape, _d(m.weight), _d(m.bias), m.eps))


class RefBlock:
    def __init__(self, blk):
        self.norm1, self.norm2 = _ref_layer_norm(blk.norm1), _ref_layer_norm(blk.norm2)
        self.attn = RefAttention(blk.attn)
        self.fc1 = RefLinear(_d(blk.mlp.fc1.weight), _d(blk.mlp.fc1.bias))
        self.act = RefIdentityRule(F.gelu)
        self.fc2 = RefLinear(_d(blk.mlp.fc2.weight), _d(blk.mlp.fc2.bias))
        self.add1, self.add2, self.clone1, self.clone2 = RefAdd(), RefAdd(), RefClone(), RefClone()

    def forward(self, x):
        x1, x2 = self.clone1(x)
        x = self.add1(x1, self.attn.forward(self.norm1(x2)))
        x1, x2 = self.clone2(x)
        return self.add2(x1, self.fc2(self.act(self.fc1(self.norm2(x2)))))

    def relprop(self, R):
        r1, r2 = self.add2.relprop(R)
        r2 = self.norm2.relprop(self.fc1.relprop(self.act.relprop(self.fc2.relprop(r2))))
        R = self.clone2.relprop((r1, r2))
        r1, r2 = self.add1.relprop(R)
        r2 = self.norm1.relprop(self.attn.relprop(r2))
        return self.clone1.relprop((r1, r2))


class RefViT:
    """The authors' LRP ViT rebuilt from a timm model's weights (float64 recommended)."""

    def __init__(self, model, double_fc_norm=False):
        self.patch = model.patch_embed.patch_size
        self.conv = RefPatchConv(_d(model.patch_embed.proj.weight), _d(model.patch_embed.proj.bias), self.patch)
        self.cls_token, self.pos_embed = _d(model.cls_token), _d(model.pos_embed)
        self.pos_add = RefAdd()
        self.blocks = [RefBlock(b) for b in model.blocks]
        self.pool_kind = model.global_pool
        norm = model.norm if self.pool_kind == "token" else model.fc_norm
        ln = (lambda t: F.layer_norm(t, norm.normalized_shape, _d(norm.weight), _d(norm.bias), norm.eps))
        self.norm = RefIdentityRule(ln)
        self.norm_times = 2 if double_fc_norm else 1
        self.pool = RefIndexSelect() if self.pool_kind == "token" else RefMeanPool(1)
        self.head = RefLinear(_d(model.head.weight), _d(model.head.bias))

    def forward(self, x):
        x = self.conv(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        x = self.pos_add(x, self.pos_embed)
        for blk in self.blocks:
            x = blk.forward(x)
        self.tokens = x  # what the pool reads (timm's final norm is an Identity for fc_norm heads)
        if self.pool_kind == "token":
            x = self.pool(self.norm(x))
        else:
            x = self.pool(x)
            for _ in range(self.norm_times):
                x = self.norm(x)
        return self.head(x)

    def relprop(self, one_hot, method="transformer_attribution", start_layer=0):
        R = self.head.relprop(one_hot)
        if self.pool_kind == "token":
            R = self.norm.relprop(self.pool.relprop(R))
        else:
            R = self.pool.relprop(self.norm.relprop(R))
        self.block_inputs = []
        for blk in reversed(self.blocks):
            R = blk.relprop(R)
            self.block_inputs.insert(0, R)
        if method == "full":
            r_x, _ = self.pos_add.relprop(R)
            r_x = r_x[:, 1:]
            gh, gw = self.grid
            r = r_x.transpose(1, 2).reshape(r_x.shape[0], -1, gh, gw)
            return self.conv.relprop(r).sum(1)
        cams = []
        for blk in self.blocks:
            cam = blk.attn.attn_cam[0]
            grad = blk.attn.attn_grad[0]
            cams.append((grad * cam).clamp(min=0).mean(0, keepdim=True))
        joint = ref_rollout(cams, start_layer, normalize=False)
        # retcore leaves the identity (residual) path out; for a CLS read-out that only touches the
        # dropped CLS column, so the authors' maps are unchanged
        return ref_readout(joint - torch.eye(joint.shape[-1], dtype=joint.dtype), self.pool_kind)


def ref_rollout(mats, start_layer=0, normalize=False):
    """``(M_{L-1} + I) ... (M_s + I)`` (rows optionally normalised), full matrices."""
    eye = torch.eye(mats[0].shape[-1], dtype=mats[0].dtype)
    aug = [m + eye for m in mats]
    if normalize:
        aug = [m / m.sum(-1, keepdim=True) for m in aug]
    joint = aug[start_layer]
    for m in aug[start_layer + 1:]:
        joint = m.bmm(joint)
    return joint


def ref_readout(joint, pool_kind):
    if pool_kind == "token":
        return joint[:, 0, 1:]
    return joint[:, 1:, 1:].mean(1)


def ref_explain(model, image, target, method="transformer_attribution", start_layer=0, double_fc_norm=False):
    """One image (1, 3, H, W) -> the authors' map for ``target`` (and the RefViT for inspection)."""
    ref = RefViT(model, double_fc_norm=double_fc_norm)
    ref.grid = (image.shape[2] // ref.patch[0], image.shape[3] // ref.patch[1])
    x = image.detach().clone().requires_grad_(True)
    out = ref.forward(x)
    one_hot = torch.zeros_like(out)
    one_hot[0, target] = 1
    (one_hot * out).sum().backward(retain_graph=True)
    return ref.relprop(one_hot, method=method, start_layer=start_layer), ref


def ref_baselines(model, image, target, start_layer=0):
    """The baselines from the attention maps of :class:`RefViT` (one image): dict name -> (1, Np)."""
    ref = RefViT(model)
    x = image.detach().clone().requires_grad_(True)
    out = ref.forward(x)
    out[0, target].backward(retain_graph=True)
    (d_tokens,) = torch.autograd.grad(out[0, target], ref.tokens)
    attns = [b.attn.attn.detach() for b in ref.blocks]  # (1, H, N, N)
    grads = [b.attn.attn_grad.detach() for b in ref.blocks]
    kind = ref.pool_kind
    rollout = ref_rollout([a.mean(1) for a in attns], start_layer, normalize=True)
    last, dlast = attns[-1], grads[-1]
    attention = ref_readout(last.mean(1), kind)
    if kind == "token":  # Chefer's baseline: heads of the last attention map, CLS row
        a_rows, g_rows = last[0, :, 0, 1:], dlast[0, :, 0, 1:]
        gradcam = (a_rows * g_rows.mean(-1, keepdim=True)).mean(0).clamp(min=0)[None]
    else:  # pytorch-grad-cam's recipe on the pooled patch tokens: channels = embedding dims
        acts, grads_t = ref.tokens[0, 1:].detach(), d_tokens[0, 1:]  # (Np, D)
        channel_weights = grads_t.mean(0)  # mean over the token "pixels"
        gradcam = (acts * channel_weights).sum(-1).clamp(min=0)[None]
    R = torch.eye(attns[0].shape[-1], dtype=attns[0].dtype)[None]
    for a, g in list(zip(attns, grads))[start_layer:]:
        R = R + torch.bmm((g * a).clamp(min=0).mean(1), R)
    return {"rollout": ref_readout(rollout, kind), "attention": attention, "gradcam": gradcam,
            "gae": ref_readout(R - torch.eye(R.shape[-1], dtype=R.dtype), kind)}
