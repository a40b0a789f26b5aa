"""Layer-wise learning-rate decay (BEiT / MAE / RETFound fine-tuning).

Each parameter gets a layer id: 0 for the embeddings (``cls_token``,
``pos_embed``, ``reg_token``, ``patch_embed.*``, ``norm_pre.*``), ``i + 1``
for ``blocks.i.*``, and ``depth + 1`` for everything after the blocks
(``norm``, ``fc_norm``, ``head``). Its learning rate is
``lr * layer_decay ** (depth + 1 - layer_id)``: the head trains at the full
rate, earlier layers progressively slower. The training loop sets
``group['lr'] = lr * group['lr_scale']`` at every step.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

__all__ = ["layer_id_for", "param_groups_lrd"]

_EMBED_NAMES = frozenset({"cls_token", "pos_embed", "reg_token", "dist_token", "mask_token"})


def layer_id_for(name: str, depth: int) -> int:
    """Layer id of parameter ``name`` in a ViT with ``depth`` blocks (see module docstring)."""
    if name in _EMBED_NAMES or name.startswith(("patch_embed.", "norm_pre.")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def param_groups_lrd(
    model: nn.Module,
    *,
    weight_decay: float = 0.05,
    layer_decay: float = 0.65,
    no_weight_decay: Iterable[str] | None = None,
    no_weight_decay_list: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with layer-wise lr decay and selective weight decay.

    Args:
        model: a ViT with ``model.blocks`` (its length is the depth).
        weight_decay: decay for parameters with ``ndim >= 2`` not named in
            ``no_weight_decay``.
        layer_decay: per-layer lr factor (RETFound: 0.65).
        no_weight_decay: parameter names without weight decay; ``None`` uses
            ``model.no_weight_decay()`` (timm: pos_embed, cls_token, ...).
            1-D parameters (biases, norm weights, LayerScale) never decay.
        no_weight_decay_list: alias of ``no_weight_decay`` (name in the
            MAE/RETFound code); both are merged when given.

    Returns:
        one dict per (layer_id, decay/no-decay) that has trainable parameters,
        ordered by layer id then ``decay`` before ``no_decay``, with keys
        ``params`` (list of tensors), ``param_names``, ``weight_decay``,
        ``lr_scale`` and ``layer_id``. Every parameter with
        ``requires_grad=True`` is in exactly one group; frozen ones in none.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    depth = len(getattr(model, "blocks", ()))
    skip: set[str] = set()
    if no_weight_decay is None and no_weight_decay_list is None:
        own = getattr(model, "no_weight_decay", None)
        skip.update(own() if callable(own) else ())
    for names in (no_weight_decay, no_weight_decay_list):
        if names is not None:
            skip.update(names)

    groups: dict[tuple[int, str], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim == 1 or name in skip
        layer_id = layer_id_for(name, depth)
        key = (layer_id, "no_decay" if no_decay else "decay")
        if key not in groups:
            groups[key] = {
                "params": [],
                "param_names": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": layer_decay ** (depth + 1 - layer_id),
                "layer_id": layer_id,
            }
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1] != "decay"))]
