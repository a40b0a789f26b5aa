"""Tiny randomised timm ViTs and image batches for the explanation tests (imported by the tests)."""
from __future__ import annotations

from functools import partial

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from retcore.models.heads import DoubleFcNormVisionTransformer


def make_vit(
    *,
    depth: int = 2,
    dim: int = 64,
    heads: int = 4,
    patch: int = 16,
    img: tuple[int, int] = (64, 64),
    pool: str = "token",
    classes: int = 5,
    double_fc_norm: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    **kwargs: object,
) -> VisionTransformer:
    """A timm ViT (eval mode) with every parameter drawn at random, so no rule sees zeros.

    Weights ~ N(0, 1/fan_in), biases ~ N(0, 0.1), LayerNorm gains ~ 1 + N(0, 0.1),
    CLS / position embeddings ~ N(0, 0.5).
    """
    torch.manual_seed(seed)
    cls = DoubleFcNormVisionTransformer if double_fc_norm else VisionTransformer
    model = cls(img_size=img if img[0] != img[1] else img[0], patch_size=patch, embed_dim=dim, depth=depth,
                num_heads=heads, num_classes=classes, global_pool=pool, fc_norm=pool == "avg", qkv_bias=True,
                norm_layer=partial(nn.LayerNorm, eps=1e-6), **kwargs)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name.endswith("bias"):
                p.copy_(0.1 * noise)
            elif p.ndim == 1:  # LayerNorm gains, LayerScale
                p.copy_(1 + 0.1 * noise)
            elif name in ("cls_token", "pos_embed", "reg_token"):
                p.copy_(0.5 * noise)
            else:
                fan_in = p[0].numel()
                p.copy_(noise / fan_in ** 0.5)
    return model.to(dtype).eval()


def make_images(batch: int, img: tuple[int, int], seed: int = 7, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, 3, H, W) standard-normal images."""
    return torch.randn(batch, 3, *img, generator=torch.Generator().manual_seed(seed)).to(dtype)
