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

import argparse
import json
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from retcore.errors import CheckpointError
from retcore.models.heads import init_head, uses_double_fc_norm
from retcore.models.pos_embed import grid_of, resize_pos_embed

__all__ = [
    "CHECKPOINT_KINDS",
    "FORMAT_VERSION",
    "HUB_PREFIX",
    "LoadReport",
    "hub_download",
    "load_checkpoint_into",
    "load_checkpoint_state",
    "load_retfound",
    "read_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_KINDS = ("mae_pretrain", "dinov2_pretrain", "retfound_finetuned", "retcore", "state_dict")
FORMAT_VERSION = 1
HUB_PREFIX = "hub:"

_SAFE_GLOBALS: list[Any] = [argparse.Namespace]
_DROP_PREFIXES = ("decoder_", "dino_head.", "ibot_head.", "dino_loss.", "ibot_patch_loss.")
_DROP_KEYS = ("mask_token",)
_CHUNKED_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.*)$")
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_MAX_LISTED = 5

StateDict = dict[str, torch.Tensor]
CheckpointSource = str | os.PathLike[str] | tuple[Mapping[str, torch.Tensor], Mapping[str, Any]]


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


# --------------------------------------------------------------------------- reading


def _torch_load(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
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
            f"checkpoint {path} is not a PyTorch weights file ({_first_line(exc)}): pass a .pth saved with torch.save"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for foreign files
        raise CheckpointError(
            f"checkpoint {path} is not a readable PyTorch file ({type(exc).__name__}: {_first_line(exc)}): "
            "pass a .pth/.pt file saved with torch.save"
        ) from None


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
    p = Path(path).expanduser()
    if not p.exists():
        hint = ""
        if not p.is_absolute() and str(path).count("/") == 1 and not str(path).endswith((".pth", ".pt")):
            hint = f" (for the Hugging Face release use hub:{path})"
        raise CheckpointError(f"checkpoint {path} not found: check the path{hint}")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file: pass the .pth file itself")
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


# --------------------------------------------------------------------------- loading


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


def hub_download(spec: str) -> Path:
    """Download ``<name>.pth`` of ``hub:<owner>/<name>`` from the Hugging Face Hub.

    Returns the local file path. Any network, authentication or licence
    failure raises ``CheckpointError`` telling the user how to fetch the file
    by hand and pass its local path instead.
    """
    repo_id = spec[len(HUB_PREFIX):].strip().strip("/") if spec.startswith(HUB_PREFIX) else spec.strip("/")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise CheckpointError(f"bad hub checkpoint {spec!r}: write hub:<owner>/<name>, e.g. "
                              "hub:YukunZhou/RETFound_mae_natureCFP")
    filename = f"{repo_id.split('/')[-1]}.pth"
    manual = (
        f"download {filename} from https://huggingface.co/{repo_id} (gated: log in, accept the licence, "
        "and use an access token via `hf auth login` or HF_TOKEN) and pass its local path"
    )
    try:
        import huggingface_hub
    except ImportError:
        raise CheckpointError(f"huggingface_hub is not installed, so {spec} cannot be fetched: {manual}") from None
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id=repo_id, filename=filename))
    except Exception as exc:  # noqa: BLE001 - network, auth, gating, missing repo...
        raise CheckpointError(
            f"could not download {filename} from {repo_id} ({type(exc).__name__}): {manual}"
        ) from None


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


# --------------------------------------------------------------------------- saving


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
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return dest
