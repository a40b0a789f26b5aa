"""Rules down to the pixels: the ViT patch convolution (z^B) and convolutional stems (z+, z^B)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from retcore.explain.rules.base import EPS, _as
from retcore.explain.rules.weights import abs_weight

__all__ = ["conv_stem_rule", "patch_zbox_rule"]


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
