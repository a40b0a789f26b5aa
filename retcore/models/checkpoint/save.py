"""Saving a model as a retcore checkpoint (``{'model': state_dict, 'retcore': meta}``)."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from retcore.models.heads import uses_double_fc_norm

__all__ = ["FORMAT_VERSION", "save_checkpoint"]


FORMAT_VERSION = 1


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _model_meta(model: nn.Module) -> dict[str, Any]:
    img_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if isinstance(img_size, tuple | list):
        img_size = int(img_size[0]) if img_size[0] == img_size[1] else [int(s) for s in img_size]
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if isinstance(patch, tuple | list):
        patch = int(patch[0])
    return {
        "model_name": getattr(model, "retcore_name", None),
        "num_classes": int(getattr(model, "num_classes", 0)),
        "img_size": img_size,
        "patch_size": patch,
        "embed_dim": getattr(model, "embed_dim", None),
        "depth": len(getattr(model, "blocks", ())),
        "global_pool": getattr(model, "global_pool", None),
        "double_fc_norm": uses_double_fc_norm(model),
    }


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, meta: Mapping[str, Any]) -> Path:
    """Write ``{'model': state_dict, 'retcore': meta}`` atomically; returns the path.

    ``meta`` must be JSON-serialisable (e.g. ``class_names``, ``epoch``,
    ``metrics``); the architecture entries (``model_name``, ``num_classes``,
    ``img_size``, ``patch_size``, ``embed_dim``, ``depth``, ``global_pool``,
    ``double_fc_norm``) are taken from ``model`` and override same-named
    entries of ``meta``. Tensors are saved on CPU. The file is written next to
    its destination and renamed over it, so readers never see a partial file;
    it loads with ``torch.load(weights_only=True)``.
    """
    full = {"format_version": FORMAT_VERSION, **dict(meta), **_model_meta(model)}
    try:
        full = json.loads(json.dumps(full))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint meta must be JSON-serialisable: {exc}") from None
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    dest = Path(path).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        torch.save({"model": state, "retcore": full}, tmp_name)
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is shared like any file
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest
