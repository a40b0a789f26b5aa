"""Convolutional patch embedding ("early convolutions", Xiao et al., NeurIPS 2021).

A plain ViT patchifies with one ``patch x patch`` stride-``patch`` convolution.
Trained from scratch on a few hundred images it learns slowly: it has no
notion of locality below the patch. Replacing that single convolution by a
small stack of 3x3 stride-2 convolutions (BatchNorm, ReLU) and a final 1x1
projection keeps the token grid, the token width and everything after the
patch embedding identical, and lets the transformer start from local
features — the demo ViT uses it so it trains to a useful accuracy in minutes
on a CPU.

The stem is installed as ``patch_embed.proj`` (an ``nn.Sequential``), so
hooks, position embeddings and checkpoints keep timm's names.
"""
from __future__ import annotations

import math

from timm.layers import PatchEmbed
from torch import nn

__all__ = ["ConvStem", "ConvStemPatchEmbed"]


class ConvStem(nn.Sequential):
    """``log2(patch)`` blocks of Conv3x3(stride 2, no bias) -> BatchNorm -> ReLU, then Conv1x1 -> ``embed_dim``.

    Input ``(B, in_chans, H, W)``; output ``(B, embed_dim, H / patch, W / patch)``.
    Widths double from ``embed_dim / 2**(n-1)`` up to ``embed_dim``.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int) -> None:
        n = int(round(math.log2(patch_size)))
        if patch_size < 2 or 2 ** n != patch_size:
            raise ValueError(f"a convolutional stem needs a power-of-two patch size, got {patch_size}")
        layers: list[nn.Module] = []
        width, c_in = max(embed_dim // 2 ** (n - 1), 8), in_chans
        for _ in range(n):
            layers += [nn.Conv2d(c_in, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=False)]
            c_in, width = width, min(width * 2, embed_dim)
        layers.append(nn.Conv2d(c_in, embed_dim, 1))
        super().__init__(*layers)


class ConvStemPatchEmbed(PatchEmbed):
    """timm :class:`PatchEmbed` whose ``proj`` is a :class:`ConvStem` (same grid, same output)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        conv = self.proj
        if self.patch_size[0] != self.patch_size[1]:
            raise ValueError(f"a convolutional stem needs square patches, got {self.patch_size}")
        self.proj = ConvStem(conv.in_channels, conv.out_channels, self.patch_size[0])
