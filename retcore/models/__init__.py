"""Vision Transformers for retinal images: registry, RETFound checkpoints, heads.

``create_model(name, num_classes, checkpoint=...)`` builds one of
:func:`list_models` (timm ``VisionTransformer``); checkpoint helpers read
official RETFound (MAE / DINOv2 / fine-tuned) and retcore files safely.
"""
from __future__ import annotations

from retcore.models.checkpoint import (
    CHECKPOINT_KINDS,
    HUB_PREFIX,
    LoadReport,
    hub_download,
    load_checkpoint_into,
    load_checkpoint_state,
    load_retfound,
    read_checkpoint,
    save_checkpoint,
)
from retcore.models.heads import HEAD_INIT_STD, DoubleFcNormVisionTransformer, init_head, uses_double_fc_norm
from retcore.models.pos_embed import at_input_size, resize_pos_embed
from retcore.models.registry import (
    GLOBAL_POOLS,
    MODEL_REGISTRY,
    ModelConfigError,
    UnknownModelError,
    create_model,
    list_models,
    model_from_checkpoint,
    register_model,
)
from retcore.models.vit import ViTSpec, build_vit  # noqa: F401  (import registers the built-in models)

__all__ = [
    "at_input_size",
    "CHECKPOINT_KINDS",
    "GLOBAL_POOLS",
    "HEAD_INIT_STD",
    "HUB_PREFIX",
    "MODEL_REGISTRY",
    "DoubleFcNormVisionTransformer",
    "LoadReport",
    "ModelConfigError",
    "UnknownModelError",
    "ViTSpec",
    "build_vit",
    "create_model",
    "hub_download",
    "init_head",
    "list_models",
    "load_checkpoint_into",
    "load_checkpoint_state",
    "load_retfound",
    "model_from_checkpoint",
    "read_checkpoint",
    "register_model",
    "resize_pos_embed",
    "save_checkpoint",
    "uses_double_fc_norm",
]
