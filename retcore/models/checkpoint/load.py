"""Loading a state dict into a ViT: pretrained backbones and whole fine-tuned models.

Pretrained backbones are loaded with :func:`load_retfound`, which follows the
RETFound fine-tuning code (rmaphoh/RETFound_MAE ``main_finetune.py`` and
``models_vit.py``): decoder/mask keys and a head of the wrong shape are
dropped, ``pos_embed`` is resized to the model's grid, the load is non-strict,
and the only keys allowed to stay missing are ``head.*`` and ``fc_norm.*``.

``norm.*`` versus ``fc_norm.*``: with average pooling the RETFound model
deletes the final ``norm`` and creates a *fresh* ``fc_norm``
(``del self.norm``; ``self.fc_norm = norm_layer(embed_dim)``), then asserts
``missing_keys == {head.weight, head.bias, fc_norm.weight, fc_norm.bias}`` —
the pretrained ``norm.weight/bias`` are unexpected keys that ``strict=False``
ignores. timm >= 1.0 with ``global_pool='avg', fc_norm=True`` has the same
parameters (``norm`` is an ``Identity``), so the pretrained ``norm.*`` is
*dropped* (reported in ``LoadReport.dropped``), never copied into
``fc_norm``; ``fc_norm`` starts at weight 1, bias 0. With
``global_pool='token'`` the model keeps ``norm`` and loads it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from retcore.errors import CheckpointError
from retcore.models.checkpoint.hub import HUB_PREFIX, hub_download
from retcore.models.checkpoint.read import (
    _MAX_LISTED,
    CheckpointSource,
    StateDict,
    _is_state_dict,
    _strip_prefix,
    _unchunk_blocks,
    read_checkpoint,
)
from retcore.models.heads import init_head, uses_double_fc_norm
from retcore.models.pos_embed import grid_of, resize_pos_embed

__all__ = ["LoadReport", "load_checkpoint_into", "load_retfound"]


_DROP_PREFIXES = ("decoder_", "dino_head.", "ibot_head.", "dino_loss.", "ibot_patch_loss.")
_DROP_KEYS = ("mask_token",)


@dataclass
class LoadReport:
    """What loading a checkpoint into a model did.

    Attributes:
        missing: model keys left at their initial values (only ``head.*`` and
            ``fc_norm.*`` are ever allowed).
        unexpected: checkpoint keys the model has no place for (always empty
            after a successful load: such keys either are dropped on purpose or
            raise ``CheckpointError``).
        dropped: checkpoint keys removed on purpose (decoder, mask token, a head
            of the wrong shape, the final ``norm`` of an avg-pool model).
        interpolated_pos_embed: ``pos_embed`` was resized to the model's grid.
        head_initialised: the head was (re-)initialised (trunc normal, std 2e-5).
        kind: the checkpoint kind (see ``CHECKPOINT_KINDS``), '' for a raw mapping.
        strict: every model key came from the checkpoint (fine-tuned load).
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    interpolated_pos_embed: bool = False
    head_initialised: bool = False
    kind: str = ""
    strict: bool = False


def _source_label(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], Mapping) and source[1].get("path"):
        return str(source[1]["path"])
    return "state dict"


def _resolve_state(source: Any) -> tuple[StateDict, dict[str, Any]]:
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], Mapping):
        return dict(source[0]), dict(source[1])
    if isinstance(source, Mapping):
        state = dict(source)
        if not _is_state_dict(state):
            raise CheckpointError("the state dict to load must map parameter names to tensors")
        state = _unchunk_blocks(_strip_prefix(_strip_prefix(state, "module."), "backbone."))
        return state, {"kind": "", "path": None}
    if isinstance(source, str | os.PathLike):
        if str(source).startswith(HUB_PREFIX):
            return read_checkpoint(hub_download(str(source)))
        return read_checkpoint(source)
    raise CheckpointError(f"cannot load weights from a {type(source).__name__}: pass a path or a state dict")


def _fit_pos_embed(model: nn.Module, state: StateDict, label: str) -> bool:
    """Resize ``state['pos_embed']`` in place to the model's grid; True if it changed."""
    target = getattr(model, "pos_embed", None)
    src = state.get("pos_embed")
    if src is None or target is None or tuple(src.shape) == tuple(target.shape):
        return False
    if src.ndim != 3 or src.shape[-1] != target.shape[-1]:
        return False  # reported as a shape mismatch
    prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 1))
    try:
        grid_of(src.shape[1], prefix)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {label}: {exc}; it does not come from a ViT with a class token") from None
    new_grid = tuple(int(g) for g in model.patch_embed.grid_size)
    state["pos_embed"] = resize_pos_embed(src, new_grid, prefix)  # type: ignore[arg-type]
    return True


def _mismatch_error(label: str, model: nn.Module, missing: list[str], unexpected: list[str],
                    shapes: list[str]) -> CheckpointError:
    parts = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            shown = ", ".join(items[:_MAX_LISTED])
            more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
            parts.append(f"{title}: {shown}{more}")
    arch = _describe(model)
    fix = "pick the model name that matches the checkpoint (or the checkpoint that matches the model)"
    if not shapes and missing and unexpected:
        if all(k.startswith("fc_norm.") for k in missing) and all(k.startswith("norm.") for k in unexpected):
            fix = "the checkpoint has a CLS-token head: create the model with global_pool='token'"
        elif all(k.startswith("norm.") for k in missing) and all(k.startswith("fc_norm.") for k in unexpected):
            fix = "the checkpoint has an average-pool head: create the model with global_pool='avg'"
    return CheckpointError(f"checkpoint {label} does not fit model {arch}: {'; '.join(parts)} -- {fix}")


def _describe(model: nn.Module) -> str:
    name = getattr(model, "retcore_name", type(model).__name__)
    dim = getattr(model, "embed_dim", "?")
    depth = len(getattr(model, "blocks", ()))
    return f"{name!r} (dim {dim}, depth {depth})"


def _shape_mismatches(model_state: Mapping[str, torch.Tensor], state: StateDict) -> list[str]:
    return [
        f"{k} {tuple(state[k].shape)} vs model {tuple(model_state[k].shape)}"
        for k in state
        if k in model_state and tuple(state[k].shape) != tuple(model_state[k].shape)
    ]


def _head_fits(model_state: Mapping[str, torch.Tensor], state: StateDict) -> bool:
    keys = [k for k in model_state if k.startswith("head.")]
    return bool(keys) and all(k in state and tuple(state[k].shape) == tuple(model_state[k].shape) for k in keys)


@torch.no_grad()
def load_retfound(model: nn.Module, path_or_state: CheckpointSource | Mapping[str, torch.Tensor]) -> LoadReport:
    """Load pretrained RETFound (MAE or DINOv2) weights into ``model``'s backbone.

    Steps (as the RETFound fine-tuning code): drop ``mask_token`` and
    ``decoder_*`` (and DINOv2 ``dino_head``/``ibot_head``) keys; drop ``head.*``
    when its shape differs from the model's; drop ``norm.*`` when the model uses
    ``fc_norm`` (avg pooling, see module docstring); resize ``pos_embed`` to the
    model's patch grid (bicubic); load non-strictly; re-initialise the head
    (trunc normal, std 2e-5, bias 0) when it was not loaded.

    Args:
        model: a timm ``VisionTransformer`` (e.g. from ``create_model``).
        path_or_state: a checkpoint path, ``hub:<repo_id>``, a state dict, or
            ``(state_dict, meta)`` as returned by :func:`read_checkpoint`.

    Returns:
        a :class:`LoadReport`.

    Raises:
        CheckpointError: any model key other than ``head.*``/``fc_norm.*``
            missing, any unexpected checkpoint key, or a backbone shape mismatch
            (the message lists the first 5 of each).
    """
    state, meta = _resolve_state(path_or_state)
    return _load_backbone(model, state, meta, _source_label(path_or_state))


@torch.no_grad()
def _load_backbone(model: nn.Module, state: StateDict, meta: Mapping[str, Any], label: str) -> LoadReport:
    """The body of :func:`load_retfound` (``state`` is modified)."""
    report = LoadReport(kind=str(meta.get("kind", "")))
    model_state = model.state_dict()

    for key in list(state):
        if key in _DROP_KEYS or key.startswith(_DROP_PREFIXES):
            report.dropped.append(key)
            del state[key]
    for key in [k for k in state if k.startswith("head.")]:
        if key not in model_state or tuple(state[key].shape) != tuple(model_state[key].shape):
            report.dropped.append(key)
            del state[key]
    if isinstance(getattr(model, "norm", None), nn.Identity) and not isinstance(
        getattr(model, "fc_norm", None), nn.Identity
    ):
        for key in [k for k in state if k.startswith("norm.")]:
            report.dropped.append(key)
            del state[key]
    report.interpolated_pos_embed = _fit_pos_embed(model, state, label)

    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    shapes = _shape_mismatches(model_state, state)
    bad_missing = [k for k in missing if not k.startswith(("head.", "fc_norm."))]
    if bad_missing or unexpected or shapes:
        raise _mismatch_error(label, model, bad_missing, unexpected, shapes)

    model.load_state_dict(state, strict=False)
    report.missing = missing
    if any(k.startswith("fc_norm.") for k in missing):
        fc_norm = getattr(model, "fc_norm", None)
        if hasattr(fc_norm, "reset_parameters"):
            fc_norm.reset_parameters()  # weight 1, bias 0, as a freshly built LayerNorm
    if any(k.startswith("head.") for k in missing):
        report.head_initialised = init_head(model)
    return report


@torch.no_grad()
def _load_full(model: nn.Module, state: StateDict, meta: Mapping[str, Any], label: str) -> LoadReport:
    """Strict load of a whole fine-tuned model (pos_embed may be resized)."""
    _check_head_config(model, meta, label)
    report = LoadReport(kind=str(meta.get("kind", "")), strict=True)
    model_state = model.state_dict()
    report.interpolated_pos_embed = _fit_pos_embed(model, state, label)
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    shapes = _shape_mismatches(model_state, state)
    if missing or unexpected or shapes:
        raise _mismatch_error(label, model, missing, unexpected, shapes)
    model.load_state_dict(state, strict=True)
    return report


def _check_head_config(model: nn.Module, meta: Mapping[str, Any], label: str) -> None:
    """Refuse a retcore checkpoint whose head computation differs from the model's."""
    if meta.get("kind") != "retcore":
        return
    pool = meta.get("global_pool")
    if pool is not None and pool != getattr(model, "global_pool", pool):
        raise CheckpointError(
            f"checkpoint {label} was trained with global_pool={pool!r} but the model uses "
            f"{getattr(model, 'global_pool', None)!r}: create the model with global_pool={pool!r}"
        )
    double = meta.get("double_fc_norm")
    if double is not None and bool(double) != uses_double_fc_norm(model):
        raise CheckpointError(
            f"checkpoint {label} was trained with double_fc_norm={bool(double)}: "
            f"create the model with double_fc_norm={bool(double)}"
        )


def load_checkpoint_into(model: nn.Module, checkpoint: CheckpointSource) -> LoadReport:
    """Load ``checkpoint`` into ``model``, choosing strict or backbone-only loading.

    Args:
        model: a timm ``VisionTransformer``.
        checkpoint: a local path, ``hub:<owner>/<name>`` (file ``<name>.pth``,
            downloaded with ``huggingface_hub``), or ``(state, meta)`` from
            :func:`read_checkpoint`.

    Retcore and official fine-tuned checkpoints whose head matches the model
    are loaded strictly (every key, same shapes; ``pos_embed`` may be resized);
    everything else (pretrained MAE/DINOv2, or a fine-tuned model with another
    number of classes) goes through :func:`load_retfound`.

    Raises:
        CheckpointError: download, read or architecture problems.
    """
    label = _source_label(checkpoint)
    state, meta = _resolve_state(checkpoint)
    if meta.get("kind") in ("retcore", "retfound_finetuned", "state_dict") and _head_fits(model.state_dict(), state):
        return _load_full(model, state, meta, label)
    return _load_backbone(model, state, meta, label)
