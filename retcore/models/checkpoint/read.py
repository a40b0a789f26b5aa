"""Reading, loading and saving ViT checkpoints safely.

Every file is read with ``torch.load(weights_only=True)``: tensors, plain
containers and ``argparse.Namespace`` (which official RETFound fine-tuned
checkpoints carry as ``args``) are allowed, any other pickled class is
refused. Recognised layouts:

* ``mae_pretrain`` — ``{'model': encoder + decoder}`` (RETFound-MAE release);
* ``dinov2_pretrain`` — ``{'teacher': {'backbone.<key>': ..., 'dino_head.*', 'ibot_head.*'}}``;
* ``retfound_finetuned`` — ``{'model', 'epoch', 'args', ...}`` with a head and no decoder;
* ``retcore`` — ``{'model': state_dict, 'retcore': meta}`` written by :func:`save_checkpoint`;
* ``state_dict`` — a bare ``{name: tensor}`` mapping.
"""
from __future__ import annotations

import argparse
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from retcore.errors import CheckpointError

__all__ = ["CHECKPOINT_KINDS", "CheckpointSource", "StateDict", "check_checkpoint_path", "load_checkpoint_state",
           "read_checkpoint"]

CHECKPOINT_KINDS = ("mae_pretrain", "dinov2_pretrain", "retfound_finetuned", "retcore", "state_dict")
_SAFE_GLOBALS: list[Any] = [argparse.Namespace]
_CHUNKED_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.*)$")
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_MAX_LISTED = 5

StateDict = dict[str, torch.Tensor]
CheckpointSource = str | os.PathLike[str] | tuple[Mapping[str, torch.Tensor], Mapping[str, Any]]


def _torch_load(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS), warnings.catch_warnings():
            # a raw pickle (not a torch.save zip) draws a "pickle protocol" warning before it is refused
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        match = _UNSUPPORTED_GLOBAL.search(str(exc))
        if match:
            raise CheckpointError(
                f"checkpoint {path} contains the Python object {match.group(1)}, which retcore refuses to "
                "unpickle: re-save only its tensors (torch.save({'model': model.state_dict()}, ...)) "
                "in an environment you trust"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} is not a torch.save file of tensors ({_unpickler_detail(exc)}): pass the .pth/.pt "
            "weights file itself (RETFound's release, or one written by retcore finetune)"
        ) from None
    except EOFError:
        raise CheckpointError(
            f"checkpoint {path} is empty or cut off: copy the .pth/.pt file again (or download it again)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for foreign files
        raise CheckpointError(
            f"checkpoint {path} is not a readable PyTorch file ({type(exc).__name__}: {_first_line(exc)}): "
            "pass a .pth/.pt file saved with torch.save"
        ) from None


def _unpickler_detail(exc: BaseException) -> str:
    """What torch's safe unpickler objected to, without its advice to turn the safety off."""
    text = str(exc)
    match = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, re.S)
    if match:
        return "its safe unpickler stopped at: " + " ".join(match.group(1).split())[:120]
    if "Weights only load failed" in text:
        return "its safe unpickler refused it"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:160]


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _strip_prefix(state: StateDict, prefix: str) -> StateDict:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _unchunk_blocks(state: StateDict) -> StateDict:
    """DINOv2 ``block_chunks`` layout ``blocks.<chunk>.<i>.*`` -> ``blocks.<i>.*``."""
    if not any(_CHUNKED_BLOCK.match(k) for k in state):
        return state
    out: StateDict = {}
    for key, value in state.items():
        match = _CHUNKED_BLOCK.match(key)
        out[f"blocks.{match.group(2)}.{match.group(3)}" if match else key] = value
    return out


def _args_dict(args: Any) -> dict[str, Any] | None:
    if args is None:
        return None
    if isinstance(args, argparse.Namespace):
        return dict(vars(args))
    if isinstance(args, Mapping):
        return dict(args)
    return {"value": args}


def check_checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """The local checkpoint file ``path``, checked to exist and be a file (nothing is read).

    Jobs call it before any long work, so a typo is reported at once, not after ingesting a folder.

    Raises:
        CheckpointError: missing (with a ``hub:`` hint for a repo-like name) or not a file.
    """
    p = Path(path).expanduser()
    if not p.exists():
        hint = ""
        if not p.is_absolute() and str(path).count("/") == 1 and not str(path).endswith((".pth", ".pt")):
            hint = f" (for the Hugging Face release use hub:{path})"
        raise CheckpointError(f"checkpoint {path} not found: check the path{hint}")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file: pass the .pth file itself")
    return p


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, Any]]:
    """Read a checkpoint file safely and return ``(state_dict, meta)``.

    The state dict holds the model tensors under timm ViT key names (DINOv2
    ``backbone.`` and DDP ``module.`` prefixes stripped, DINOv2 ``dino_head``/
    ``ibot_head`` keys removed); decoder keys of MAE checkpoints are kept (they
    are dropped by :func:`load_retfound`). ``meta`` has ``kind`` (one of
    ``CHECKPOINT_KINDS``), ``path``, ``epoch`` (or None), ``args`` (dict or
    None), ``dropped_keys`` and, for retcore checkpoints, the saved retcore
    metadata (``model_name``, ``num_classes``, ``class_names``...).

    Raises:
        CheckpointError: missing file, not a torch file, a pickle needing
            classes outside the allow-list, or no weights inside.
    """
    p = check_checkpoint_path(path)
    obj = _torch_load(p)
    meta: dict[str, Any] = {"path": str(p), "kind": "", "epoch": None, "args": None, "dropped_keys": []}
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a dict of weights: save model.state_dict()"
        )
    dropped: list[str] = []
    if isinstance(obj.get("retcore"), Mapping) and _is_state_dict(obj.get("model")):
        state = dict(obj["model"])
        meta.update(dict(obj["retcore"]))
        meta["kind"] = "retcore"
    elif _is_state_dict(obj.get("teacher")):
        raw = dict(obj["teacher"])
        state = {}
        for key, value in raw.items():
            if key.startswith("backbone."):
                state[key[len("backbone."):]] = value
            else:
                dropped.append(key)
        if not state:  # a teacher without a backbone prefix
            state, dropped = raw, []
        meta["kind"] = "dinov2_pretrain"
    elif _is_state_dict(obj.get("model")) or _is_state_dict(obj.get("state_dict")):
        state = dict(obj["model"] if _is_state_dict(obj.get("model")) else obj["state_dict"])
        has_decoder = any(k.startswith("decoder_") or k == "mask_token" for k in _strip_prefix(state, "module."))
        has_head = any(k.startswith("head.") for k in _strip_prefix(state, "module."))
        meta["kind"] = "retfound_finetuned" if has_head and not has_decoder else "mae_pretrain"
    elif _is_state_dict(obj):
        state = dict(obj)
        meta["kind"] = "state_dict"
    else:
        keys = ", ".join(sorted(map(str, obj))[:_MAX_LISTED])
        raise CheckpointError(
            f"checkpoint {path} has no model weights (top-level keys: {keys}): "
            "expected 'model', 'teacher' or a state dict"
        )
    state = _strip_prefix(state, "module.")
    state = _strip_prefix(state, "backbone.")
    state = _unchunk_blocks(state)
    meta["dropped_keys"] = dropped
    if meta["epoch"] is None and isinstance(obj.get("epoch"), int | float):
        meta["epoch"] = obj["epoch"]
    if meta["args"] is None:
        meta["args"] = _args_dict(obj.get("args"))
    return state, meta


load_checkpoint_state = read_checkpoint
"""Alias of :func:`read_checkpoint` (name used in docs/architecture.md)."""
