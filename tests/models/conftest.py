"""Tiny ViTs and fake checkpoints in the official RETFound key layouts."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import torch

from retcore.models import MODEL_REGISTRY, ViTSpec, build_vit

TINY = ViTSpec(patch_size=16, embed_dim=64, depth=2, num_heads=4, drop_path=0.0)


def _make_tiny(num_classes: int = 3, *, spec: ViTSpec = TINY, img_size: int = 64, global_pool: str = "avg",
               double_fc_norm: bool = False, seed: int = 0, **spec_changes: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_vit(replace(spec, **spec_changes), num_classes, img_size=img_size, global_pool=global_pool,
                      drop_path=0.0, double_fc_norm=double_fc_norm)
    model.retcore_name = "tiny"
    return model.eval()


def _block_keys(prefix: str, dim: int, mlp: int = 4, layer_scale: bool = False) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        f"{prefix}norm1.weight": (dim,), f"{prefix}norm1.bias": (dim,),
        f"{prefix}attn.qkv.weight": (3 * dim, dim), f"{prefix}attn.qkv.bias": (3 * dim,),
        f"{prefix}attn.proj.weight": (dim, dim), f"{prefix}attn.proj.bias": (dim,),
    }
    if layer_scale:
        shapes[f"{prefix}ls1.gamma"] = (dim,)
    shapes.update({
        f"{prefix}norm2.weight": (dim,), f"{prefix}norm2.bias": (dim,),
        f"{prefix}mlp.fc1.weight": (mlp * dim, dim), f"{prefix}mlp.fc1.bias": (mlp * dim,),
        f"{prefix}mlp.fc2.weight": (dim, mlp * dim), f"{prefix}mlp.fc2.bias": (dim,),
    })
    if layer_scale:
        shapes[f"{prefix}ls2.gamma"] = (dim,)
    return shapes


def _random(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen) * 0.05 for k, s in shapes.items()}


def _fake_mae(*, dim: int = 64, depth: int = 2, patch: int = 16, grid: int = 4, dec_dim: int = 32,
              dec_depth: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    """The official MAE pretrain layout: encoder keys, then decoder keys."""
    from retcore.models.layout import mae_pretrain_state

    spec = ViTSpec(patch_size=patch, embed_dim=dim, depth=depth, num_heads=4)
    return mae_pretrain_state(spec, img_size=grid * patch, decoder=(dec_dim, dec_depth), seed=seed, std=0.05)


def _fake_dinov2_teacher(*, dim: int = 64, depth: int = 2, patch: int = 14, grid: int = 6, seed: int = 2,
                         chunks: int = 0) -> dict[str, torch.Tensor]:
    """The DINOv2 training layout: ``backbone.*`` (LayerScale, mask_token) + dino/ibot heads."""
    shapes: dict[str, tuple[int, ...]] = {
        "backbone.cls_token": (1, 1, dim),
        "backbone.pos_embed": (1, 1 + grid * grid, dim),
        "backbone.mask_token": (1, dim),
        "backbone.patch_embed.proj.weight": (dim, 3, patch, patch),
        "backbone.patch_embed.proj.bias": (dim,),
    }
    per_chunk = depth // chunks if chunks else 0
    for i in range(depth):
        prefix = f"backbone.blocks.{i // per_chunk}.{i}." if chunks else f"backbone.blocks.{i}."
        shapes.update(_block_keys(prefix, dim, layer_scale=True))
    shapes.update({"backbone.norm.weight": (dim,), "backbone.norm.bias": (dim,)})
    shapes.update({
        "dino_head.mlp.0.weight": (128, dim), "dino_head.mlp.0.bias": (128,),
        "dino_head.last_layer.weight_g": (256, 1), "dino_head.last_layer.weight_v": (256, 32),
        "ibot_head.mlp.0.weight": (128, dim), "ibot_head.last_layer.weight_v": (256, 32),
    })
    return _random(shapes, seed)


@pytest.fixture
def make_tiny() -> Callable[..., torch.nn.Module]:
    """Factory for a tiny ViT (dim 64, depth 2, 4 heads, patch 16, 64 px) in eval mode."""
    return _make_tiny


@pytest.fixture
def fake_mae() -> Callable[..., dict[str, torch.Tensor]]:
    """Factory for an MAE pretrain state dict (encoder + decoder) in the official layout."""
    return _fake_mae


@pytest.fixture
def fake_dinov2_teacher() -> Callable[..., dict[str, torch.Tensor]]:
    """Factory for a DINOv2 ``teacher`` state dict (``backbone.`` prefix + heads)."""
    return _fake_dinov2_teacher


@pytest.fixture
def tiny_registered() -> Iterator[str]:
    """Register ``tiny`` (the TINY spec) for the duration of one test; yields the name."""

    @MODEL_REGISTRY.register("tiny")
    def tiny(num_classes: int, **options: object) -> torch.nn.Module:
        return build_vit(TINY, num_classes, **options)  # type: ignore[arg-type]

    yield "tiny"
    MODEL_REGISTRY.unregister("tiny")


@pytest.fixture
def images() -> torch.Tensor:
    """A fixed batch of two 64x64 RGB images, (2, 3, 64, 64)."""
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(7))
