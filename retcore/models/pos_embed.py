"""Absolute position embeddings for another input size.

RETFound (and MAE) checkpoints store one learned embedding per token:
``pos_embed`` of shape ``(1, P + G*G, D)`` where ``P`` prefix tokens (the CLS
token) come first, followed by a square ``G x G`` grid of patch positions in
row-major order. A model built for another image size (or patch size) needs a
grid of ``gh x gw`` instead: the prefix entries are kept as they are and the
grid is resized bicubically (``align_corners=False``), as in the MAE/RETFound
fine-tuning code.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["at_input_size", "grid_of", "resize_pos_embed"]


def grid_of(num_tokens: int, num_prefix_tokens: int = 1) -> int:
    """Side ``G`` of the square patch grid in a sequence of ``num_tokens`` tokens.

    Raises ``ValueError`` when ``num_tokens - num_prefix_tokens`` is not a square.
    """
    n = num_tokens - num_prefix_tokens
    side = math.isqrt(max(n, 0))
    if n <= 0 or side * side != n:
        raise ValueError(
            f"position embedding has {num_tokens} tokens, which is not {num_prefix_tokens} prefix "
            "token(s) plus a square grid"
        )
    return side


def resize_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int],
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """Resize the patch grid of a position embedding, keeping the prefix entries.

    Args:
        pos_embed: ``(1, P + G*G, D)``; ``P = num_prefix_tokens`` entries (CLS,
            register tokens) followed by a square ``G x G`` grid, row-major.
        new_grid: ``(gh, gw)``, the model's patch grid (rows, columns).
        num_prefix_tokens: ``P``.

    Returns:
        ``(1, P + gh*gw, D)`` in the dtype of ``pos_embed``. When the grid is
        already ``(gh, gw)`` the input tensor itself is returned unchanged.
        Interpolation is bicubic with ``align_corners=False`` and computed in
        float32.
    """
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed must have shape (1, N, D), got {tuple(pos_embed.shape)}")
    gh, gw = int(new_grid[0]), int(new_grid[1])
    if gh <= 0 or gw <= 0:
        raise ValueError(f"new_grid must be positive, got {new_grid}")
    side = grid_of(pos_embed.shape[1], num_prefix_tokens)
    if (side, side) == (gh, gw):
        return pos_embed
    dim = pos_embed.shape[2]
    prefix = pos_embed[:, :num_prefix_tokens]
    grid = pos_embed[:, num_prefix_tokens:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(gh, gw), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, dim).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


def at_input_size(model: nn.Module, img_size: int | tuple[int, int]) -> nn.Module:
    """A copy of timm ViT ``model`` that takes ``img_size`` inputs: its position embedding resized
    (:func:`resize_pos_embed`, as RETFound's fine-tuning code does) and its patch embedding's
    image and grid size set; the weights are otherwise shared values (a deep copy, in eval mode if
    ``model`` is). E.g. a model trained at 224 px explained at 448 px gives 28 x 28 token maps.

    Args:
        model: a timm ``VisionTransformer`` with an absolute ``pos_embed`` (not modified).
        img_size: side in pixels, or (height, width); multiples of the patch size.

    Raises:
        ValueError: a size that is not a positive multiple of the patch size, or a model without
            a learned absolute position embedding.
    """
    h, w = (img_size, img_size) if isinstance(img_size, int) else (int(img_size[0]), int(img_size[1]))
    pe = getattr(model, "patch_embed", None)
    pos = getattr(model, "pos_embed", None)
    if pe is None or not isinstance(pos, torch.Tensor):
        raise ValueError("at_input_size needs a ViT with a patch embedding and an absolute pos_embed")
    ph, pw = (int(p) for p in pe.patch_size)
    if h <= 0 or w <= 0 or h % ph or w % pw:
        raise ValueError(f"input size {h}x{w} is not a positive multiple of the patch size {ph}x{pw}")
    out = copy.deepcopy(model)
    grid = (h // ph, w // pw)
    prefix = 0 if getattr(out, "no_embed_class", False) else int(out.num_prefix_tokens)
    with torch.no_grad():
        out.pos_embed = nn.Parameter(resize_pos_embed(out.pos_embed.data, grid, prefix),
                                     requires_grad=out.pos_embed.requires_grad)
    out.patch_embed.img_size = (h, w)
    out.patch_embed.grid_size = grid
    out.patch_embed.num_patches = grid[0] * grid[1]
    return out
