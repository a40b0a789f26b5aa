"""Model registry: names -> ViT factories, and :func:`create_model`.

A factory is registered with ``@register_model(name)`` and called as
``factory(num_classes, *, img_size, global_pool, drop_path, double_fc_norm)``;
it returns a timm :class:`~timm.models.vision_transformer.VisionTransformer`
(the built-in ones live in :mod:`retcore.models.vit`).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from timm.models.vision_transformer import VisionTransformer

from retcore.errors import CheckpointError, RetcoreError
from retcore.models.checkpoint import load_checkpoint_into, read_checkpoint
from retcore.registry import Registry, UnknownNameError

__all__ = [
    "GLOBAL_POOLS",
    "MODEL_REGISTRY",
    "ModelConfigError",
    "UnknownModelError",
    "create_model",
    "list_models",
    "model_from_checkpoint",
    "register_model",
]

GLOBAL_POOLS = ("avg", "token")
"""``'avg'``: mean of patch tokens -> fc_norm -> head (RETFound). ``'token'``: norm -> CLS -> head."""


class ModelConfigError(RetcoreError, ValueError):
    """A model option that cannot work (unknown pooling, image size not a multiple of the patch...)."""


class UnknownModelError(UnknownNameError, ModelConfigError):
    """A model name that is not in :data:`MODEL_REGISTRY` (the message lists the names)."""


MODEL_REGISTRY: Registry[Callable[..., VisionTransformer]] = Registry("model", error=UnknownModelError)
"""Name -> factory; filled by :func:`register_model`."""


def register_model(name: str) -> Callable[[Callable[..., VisionTransformer]], Callable[..., VisionTransformer]]:
    """Decorator registering ``factory`` under ``name``.

    Raises:
        retcore.registry.DuplicateNameError: ``name`` is already registered.
    """
    return MODEL_REGISTRY.register(name)


def list_models() -> list[str]:
    """Registered model names, in registration order."""
    return MODEL_REGISTRY.names()


def create_model(
    name: str,
    num_classes: int,
    *,
    checkpoint: str | Path | None = None,
    global_pool: str = "avg",
    img_size: int | tuple[int, int] = 224,
    drop_path: float | None = None,
    double_fc_norm: bool = False,
) -> VisionTransformer:
    """Build the registered ViT ``name`` with a ``num_classes``-way head.

    Args:
        name: one of :func:`list_models` (``retfound_mae``, ``retfound_dinov2``,
            ``vit_tiny``, ``vit_small``, ``vit_base``, ``demo``).
        num_classes: logits per image; 0 gives an ``Identity`` head (features).
        checkpoint: optional local path or ``hub:<repo_id>`` loaded with
            :func:`retcore.models.checkpoint.load_checkpoint_into` (pretrained
            weights -> backbone only, fine-tuned/retcore weights -> whole model).
        global_pool: ``'avg'`` = RETFound head (mean of patch tokens, CLS
            excluded -> ``fc_norm`` -> ``head``); ``'token'`` = CLS head
            (``norm`` -> CLS token -> ``head``). The official RETFound-DINOv2
            recipe keeps timm's CLS head, so pass ``'token'`` to reproduce it.
        img_size: input side in pixels (or ``(H, W)``), a multiple of the patch size.
        drop_path: stochastic-depth rate; ``None`` = the model's default
            (0.2 for ViT-L, 0.1 otherwise).
        double_fc_norm: apply ``fc_norm`` twice, as the official RETFound code
            on timm 0.9 does (needs ``global_pool='avg'``).

    Returns:
        a timm ``VisionTransformer`` (in train mode) taking ``(B, 3, H, W)``
        float images and returning ``(B, num_classes)`` logits, with attribute
        ``retcore_name = name``.

    Raises:
        UnknownModelError: ``name`` is not registered (the message lists the names).
        ModelConfigError: impossible option combination.
        CheckpointError: the checkpoint is missing, unreadable or does not fit.
    """
    factory = MODEL_REGISTRY.get(name)
    if global_pool not in GLOBAL_POOLS:
        raise ModelConfigError(f"unknown global_pool {global_pool!r}: use 'avg' (RETFound) or 'token' (CLS)")
    if double_fc_norm and global_pool != "avg":
        raise ModelConfigError("double_fc_norm only applies to global_pool='avg': drop one of the two options")
    if num_classes < 0:
        raise ModelConfigError(f"num_classes must be >= 0, got {num_classes}")
    if drop_path is not None and not 0.0 <= drop_path < 1.0:
        raise ModelConfigError(f"drop_path must be in [0, 1), got {drop_path}")
    model = factory(
        num_classes,
        img_size=img_size,
        global_pool=global_pool,
        drop_path=drop_path,
        double_fc_norm=double_fc_norm,
    )
    model.retcore_name = name
    if checkpoint is not None:
        load_checkpoint_into(model, checkpoint)
    return model


def model_from_checkpoint(path: str | Path) -> tuple[VisionTransformer, dict[str, Any]]:
    """Rebuild a model saved by :func:`retcore.models.checkpoint.save_checkpoint`.

    Returns ``(model in eval mode, meta)``; ``meta`` is the saved ``retcore``
    dict (model name, num_classes, class_names, img_size, global_pool, ...)
    plus ``kind``. Raises ``CheckpointError`` for other checkpoint kinds.
    """
    state, meta = read_checkpoint(path)
    if meta.get("kind") != "retcore" or "model_name" not in meta:
        raise CheckpointError(
            f"{path} is not a retcore checkpoint (kind {meta.get('kind')!r}): "
            "use create_model(name, num_classes, checkpoint=...) instead"
        )
    img_size = meta.get("img_size", 224)
    model = create_model(
        str(meta["model_name"]),
        int(meta["num_classes"]),
        global_pool=str(meta.get("global_pool", "avg")),
        img_size=tuple(img_size) if isinstance(img_size, list) else img_size,
        double_fc_norm=bool(meta.get("double_fc_norm", False)),
    )
    load_checkpoint_into(model, (state, meta))
    model.eval()
    return model, meta
