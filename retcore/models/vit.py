"""The registered Vision Transformers (all timm ``VisionTransformer``).

Every model: class token, learned absolute position embeddings, pre-norm
blocks with ``qkv_bias``, LayerNorm eps 1e-6, no register tokens; head
weights truncated-normal with std 2e-5 and zero bias. Sizes are plain
:class:`ViTSpec` values, so a variant is one ``dataclasses.replace`` away.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from timm.models.vision_transformer import VisionTransformer
from torch import nn

from retcore.models.heads import DoubleFcNormVisionTransformer, init_head
from retcore.models.registry import ModelConfigError, register_model
from retcore.models.stem import ConvStemPatchEmbed

__all__ = [
    "DEMO_SPEC",
    "RETFOUND_DINOV2_SPEC",
    "RETFOUND_MAE_SPEC",
    "VIT_BASE_SPEC",
    "VIT_SMALL_SPEC",
    "VIT_TINY_SPEC",
    "ViTSpec",
    "build_vit",
    "demo",
    "retfound_dinov2",
    "retfound_mae",
    "vit_base",
    "vit_small",
    "vit_tiny",
]

LAYER_NORM_EPS = 1e-6


@dataclass(frozen=True)
class ViTSpec:
    """Architecture of one ViT.

    Attributes:
        patch_size: patch side in pixels (16, or 14 for DINOv2).
        embed_dim: token width ``D``.
        depth: number of transformer blocks.
        num_heads: attention heads (``embed_dim`` must be divisible by it).
        mlp_ratio: MLP hidden width / ``D``.
        qkv_bias: bias in the qkv projection.
        init_values: LayerScale init (``None`` = no LayerScale).
        drop_path: default stochastic-depth rate.
        stem: ``'patch'`` (one patch x patch convolution, as every published
            ViT) or ``'conv'`` (:class:`~retcore.models.stem.ConvStem`: 3x3
            stride-2 convolutions, for training from scratch on little data).
    """

    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    init_values: float | None = None
    drop_path: float = 0.1
    stem: str = "patch"


RETFOUND_MAE_SPEC = ViTSpec(patch_size=16, embed_dim=1024, depth=24, num_heads=16, drop_path=0.2)
RETFOUND_DINOV2_SPEC = ViTSpec(patch_size=14, embed_dim=1024, depth=24, num_heads=16, init_values=1e-5,
                               drop_path=0.2)
VIT_TINY_SPEC = ViTSpec(patch_size=16, embed_dim=192, depth=12, num_heads=3)
VIT_SMALL_SPEC = ViTSpec(patch_size=16, embed_dim=384, depth=12, num_heads=6)
VIT_BASE_SPEC = ViTSpec(patch_size=16, embed_dim=768, depth=12, num_heads=12)
DEMO_SPEC = ViTSpec(patch_size=16, embed_dim=192, depth=4, num_heads=3, mlp_ratio=4.0, drop_path=0.1, stem="conv")


def _pair(img_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(img_size, int):
        return img_size, img_size
    h, w = img_size
    return int(h), int(w)


def build_vit(
    spec: ViTSpec,
    num_classes: int,
    *,
    img_size: int | tuple[int, int] = 224,
    global_pool: str = "avg",
    drop_path: float | None = None,
    double_fc_norm: bool = False,
) -> VisionTransformer:
    """Construct a timm ViT from ``spec``.

    ``global_pool='avg'`` sets ``fc_norm=True`` (final ``norm`` becomes
    Identity; mean over patch tokens only, CLS excluded); ``'token'`` keeps
    ``norm`` and reads the CLS token. Input ``(B, 3, H, W)`` with
    ``(H, W) = img_size``; output ``(B, num_classes)``.
    """
    h, w = _pair(img_size)
    if h <= 0 or w <= 0 or h % spec.patch_size or w % spec.patch_size:
        raise ModelConfigError(
            f"img_size {img_size} is not a multiple of the patch size {spec.patch_size}: "
            f"use e.g. {spec.patch_size * max(1, round(h / spec.patch_size))}"
        )
    if spec.embed_dim % spec.num_heads:
        raise ModelConfigError(f"embed_dim {spec.embed_dim} is not divisible by num_heads {spec.num_heads}")
    if spec.stem not in ("patch", "conv"):
        raise ModelConfigError(f"unknown stem {spec.stem!r}: use 'patch' or 'conv'")
    cls = DoubleFcNormVisionTransformer if double_fc_norm else VisionTransformer
    extra = {"embed_layer": ConvStemPatchEmbed} if spec.stem == "conv" else {}
    model = cls(
        img_size=(h, w) if h != w else h,
        patch_size=spec.patch_size,
        num_classes=num_classes,
        global_pool=global_pool,
        fc_norm=global_pool == "avg",
        embed_dim=spec.embed_dim,
        depth=spec.depth,
        num_heads=spec.num_heads,
        mlp_ratio=spec.mlp_ratio,
        qkv_bias=spec.qkv_bias,
        init_values=spec.init_values,
        class_token=True,
        reg_tokens=0,
        norm_layer=partial(nn.LayerNorm, eps=LAYER_NORM_EPS),
        drop_path_rate=spec.drop_path if drop_path is None else drop_path,
        **extra,
    )
    init_head(model)
    return model


@register_model("retfound_mae")
def retfound_mae(num_classes: int, **options: object) -> VisionTransformer:
    """RETFound-MAE: ViT-Large/16 (dim 1024, depth 24, 16 heads, MLP 4, qkv bias,
    LayerNorm eps 1e-6), MAE-pretrained on 904k colour fundus photos; weights
    ``hub:YukunZhou/RETFound_mae_natureCFP`` (also ``_natureOCT``, ``_meh``,
    ``_shanghai``). About 303M parameters; default drop_path 0.2. Options as
    :func:`build_vit`."""
    return build_vit(RETFOUND_MAE_SPEC, num_classes, **options)  # type: ignore[arg-type]


@register_model("retfound_dinov2")
def retfound_dinov2(num_classes: int, **options: object) -> VisionTransformer:
    """RETFound-DINOv2: the timm ``vit_large_patch14_dinov2`` architecture —
    ViT-Large/14 (dim 1024, depth 24, 16 heads, MLP 4, qkv bias, LayerScale
    init 1e-5, LayerNorm eps 1e-6, no register tokens) — built here at
    img_size 224 (16x16 grid; the checkpoint's 37x37 grid is resized on load).
    Weights ``hub:YukunZhou/RETFound_dinov2_meh`` / ``_shanghai`` (key
    ``teacher``, prefix ``backbone.``). The official recipe uses the CLS head
    (``global_pool='token'``). Default drop_path 0.2."""
    return build_vit(RETFOUND_DINOV2_SPEC, num_classes, **options)  # type: ignore[arg-type]


@register_model("vit_tiny")
def vit_tiny(num_classes: int, **options: object) -> VisionTransformer:
    """ViT-Tiny/16 (dim 192, depth 12, 3 heads, MLP 4), about 5.5M parameters,
    randomly initialised; a fast baseline. Default drop_path 0.1."""
    return build_vit(VIT_TINY_SPEC, num_classes, **options)  # type: ignore[arg-type]


@register_model("vit_small")
def vit_small(num_classes: int, **options: object) -> VisionTransformer:
    """ViT-Small/16 (dim 384, depth 12, 6 heads, MLP 4), about 22M parameters,
    randomly initialised. Default drop_path 0.1."""
    return build_vit(VIT_SMALL_SPEC, num_classes, **options)  # type: ignore[arg-type]


@register_model("vit_base")
def vit_base(num_classes: int, **options: object) -> VisionTransformer:
    """ViT-Base/16 (dim 768, depth 12, 12 heads, MLP 4), about 86M parameters,
    randomly initialised (the published comparison baseline is ImageNet
    ViT-B/16; load such weights through ``checkpoint=``). Default drop_path 0.1."""
    return build_vit(VIT_BASE_SPEC, num_classes, **options)  # type: ignore[arg-type]


@register_model("demo")
def demo(num_classes: int, **options: object) -> VisionTransformer:
    """Demo ViT/16 (dim 192, depth 4, 3 heads, MLP 4), about 1.8M parameters:
    trains in minutes on a 2-core CPU on the synthetic demo data set. Its size
    is :data:`DEMO_SPEC`; change that one value to try another. Default
    drop_path 0.1."""
    return build_vit(DEMO_SPEC, num_classes, **options)  # type: ignore[arg-type]
