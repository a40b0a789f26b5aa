"""RETFound's MAE pretraining checkpoint layout, with random weights (for tests and benchmarks).

RETFound's weights are gated, so the loading path is exercised on files that
have their exact key layout: ``{'model': state}`` where ``state`` holds the
encoder (``cls_token``, ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*``,
``norm.*``) and the MAE decoder (``mask_token``, ``decoder_embed.*``,
``decoder_pos_embed``, ``decoder_blocks.N.*``, ``decoder_norm.*``,
``decoder_pred.*``). The published file is ViT-L/16 at 224 px with a
512-wide, 8-block decoder (:data:`RETFOUND_MAE_DECODER`).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from retcore.models.vit import RETFOUND_MAE_SPEC, ViTSpec

__all__ = ["RETFOUND_MAE_DECODER", "mae_pretrain_state", "save_mae_pretrain_checkpoint"]

RETFOUND_MAE_DECODER: tuple[int, int] = (512, 8)
"""(width, depth) of the MAE decoder in RETFound's pretraining file."""


def _block_shapes(prefix: str, dim: int, mlp_ratio: float) -> dict[str, tuple[int, ...]]:
    hidden = int(dim * mlp_ratio)
    return {
        f"{prefix}norm1.weight": (dim,), f"{prefix}norm1.bias": (dim,),
        f"{prefix}attn.qkv.weight": (3 * dim, dim), f"{prefix}attn.qkv.bias": (3 * dim,),
        f"{prefix}attn.proj.weight": (dim, dim), f"{prefix}attn.proj.bias": (dim,),
        f"{prefix}norm2.weight": (dim,), f"{prefix}norm2.bias": (dim,),
        f"{prefix}mlp.fc1.weight": (hidden, dim), f"{prefix}mlp.fc1.bias": (hidden,),
        f"{prefix}mlp.fc2.weight": (dim, hidden), f"{prefix}mlp.fc2.bias": (dim,),
    }


def mae_pretrain_state(spec: ViTSpec = RETFOUND_MAE_SPEC, *, img_size: int = 224,
                       decoder: tuple[int, int] = RETFOUND_MAE_DECODER, seed: int = 0,
                       std: float = 0.02) -> dict[str, torch.Tensor]:
    """Random weights in the MAE pretraining layout of ``spec`` (patch-embedding ViTs only).

    Weights ~ N(0, std²); LayerNorm weights ~ 1 + N(0, std²), so activations stay in range.
    ``pos_embed`` has ``1 + (img_size / patch)²`` entries (CLS first), as MAE saves it.

    Returns:
        name -> float32 tensor, encoder keys then decoder keys.
    """
    if spec.stem != "patch":
        raise ValueError("the MAE layout has a patch embedding: spec.stem must be 'patch'")
    dim, patch = spec.embed_dim, spec.patch_size
    grid = img_size // patch
    dec_dim, dec_depth = decoder
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim), "pos_embed": (1, 1 + grid * grid, dim),
        "patch_embed.proj.weight": (dim, 3, patch, patch), "patch_embed.proj.bias": (dim,),
    }
    for i in range(spec.depth):
        shapes.update(_block_shapes(f"blocks.{i}.", dim, spec.mlp_ratio))
    shapes.update({"norm.weight": (dim,), "norm.bias": (dim,), "mask_token": (1, 1, dec_dim),
                   "decoder_embed.weight": (dec_dim, dim), "decoder_embed.bias": (dec_dim,),
                   "decoder_pos_embed": (1, 1 + grid * grid, dec_dim)})
    for i in range(dec_depth):
        shapes.update(_block_shapes(f"decoder_blocks.{i}.", dec_dim, spec.mlp_ratio))
    shapes.update({"decoder_norm.weight": (dec_dim,), "decoder_norm.bias": (dec_dim,),
                   "decoder_pred.weight": (patch * patch * 3, dec_dim), "decoder_pred.bias": (patch * patch * 3,)})
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        value = torch.randn(shape, generator=gen) * std
        if "norm" in name and name.endswith(".weight"):
            value += 1.0
        state[name] = value
    return state


def save_mae_pretrain_checkpoint(path: str | os.PathLike[str], spec: ViTSpec = RETFOUND_MAE_SPEC, **kwargs) -> Path:
    """Write ``{'model': mae_pretrain_state(spec, **kwargs)}`` to ``path`` (as RETFound's file); return it.

    ViT-L/16 with the default decoder is about 1.3 GB.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": mae_pretrain_state(spec, **kwargs)}, out)
    return out
