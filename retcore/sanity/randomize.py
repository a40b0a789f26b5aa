"""Model-parameter randomisation of a timm ViT (Adebayo et al., NeurIPS 2018, section 3.1).

A ViT is cut into **layer groups**, each re-initialised as one unit, listed from the
output to the input (the cascading order):

1. ``head`` — the classifier ``head`` with the final norms that feed it (``fc_norm`` of an
   average-pool head, ``norm`` of a CLS head; whichever holds parameters);
2. ``blocks.{L-1}``, ``blocks.{L-2}``, ..., ``blocks.0`` — the transformer blocks, top down;
3. ``patch_embed`` — the patch embedding or convolutional stem together with the position
   embedding, the CLS / register tokens and ``norm_pre`` (everything before block 0).

A **step** of a schedule names the model a map is computed on:

- ``cascading``: step *k* has groups 0..k re-initialised (head first, then blocks top down,
  then the stem), so the last step is a fully randomised model;
- ``independent``: step *k* has group *k* re-initialised and every other group trained.

**Re-initialisation** uses each layer's own init scheme, the one the model was built with:
the ``head`` linear layer a truncated normal of std :data:`~retcore.models.HEAD_INIT_STD`
(RETFound's, as :func:`retcore.models.init_head`) with a zero bias; every other submodule
timm's ViT rule (``init_weights_vit_timm``: linear layers truncated normal std 0.02 and zero
bias, LayerNorm / BatchNorm / LayerScale / convolutions their own ``reset_parameters``); the
position embedding a truncated normal std 0.02 and the CLS / register tokens a normal of std
1e-6 (timm's ``VisionTransformer.init_weights``). Values are drawn on the CPU in float32 from
a seed derived from ``(seed, group name)`` (:func:`group_seed`), so a group gets the same
random weights in every step, every batch, on every device and in a resumed job.

Everything here either returns a copy (:func:`randomized_copy`) or changes the model in place
inside a ``with`` that restores it exactly on exit (:func:`randomized`,
:func:`randomization`), as :func:`retcore.explain.capture` does with its hooks.
"""
from __future__ import annotations

import copy
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from timm.models import named_apply
from timm.models.vision_transformer import init_weights_vit_timm
from torch import nn

from retcore.errors import RetcoreError
from retcore.explain import inspect_vit
from retcore.models import HEAD_INIT_STD

__all__ = ["MODES", "LayerGroup", "SanityError", "Step", "group_seed", "layer_groups", "randomization",
           "randomized", "randomized_copy", "reinitialise", "schedule"]

MODES = ("cascading", "independent")
"""Randomisation schedules: cumulative from the head down, or one group at a time."""

_STEM_PARAMETERS = ("pos_embed", "cls_token", "reg_token")
_HEAD_MODULES = ("head", "fc_norm", "norm")
_STEM_MODULES = ("patch_embed", "norm_pre")


class SanityError(RetcoreError, ValueError):
    """A randomisation request that cannot work (unknown mode or layer group)."""


@dataclass(frozen=True)
class LayerGroup:
    """One unit of randomisation.

    Attributes:
        name: ``'head'``, ``'blocks.<i>'`` or ``'patch_embed'``.
        modules: names of the submodules re-initialised whole (only those holding parameters).
        parameters: names of parameters of the model itself (``pos_embed``, ``cls_token``,
            ``reg_token``) re-initialised with the group.
    """

    name: str
    modules: tuple[str, ...]
    parameters: tuple[str, ...] = ()

    def tensors(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The group's parameters and buffers by their names in ``model.state_dict()`` (live tensors)."""
        out: dict[str, torch.Tensor] = {}
        for name in self.modules:
            module = model.get_submodule(name)
            out.update({f"{name}.{k}": v for k, v in module.state_dict(keep_vars=True).items()})
        for name in self.parameters:
            out[name] = getattr(model, name)
        return out


@dataclass(frozen=True)
class Step:
    """One model of a schedule.

    Attributes:
        mode: ``'cascading'`` or ``'independent'``.
        index: position in the schedule (0 = the head).
        layer: the group this step adds (cascading) or randomises alone (independent).
        randomized: every group re-initialised in this step's model, in schedule order.
    """

    mode: str
    index: int
    layer: str
    randomized: tuple[str, ...]


def _has_parameters(model: nn.Module, name: str) -> bool:
    module = getattr(model, name, None)
    return isinstance(module, nn.Module) and any(True for _ in module.parameters())


def layer_groups(model: nn.Module) -> list[LayerGroup]:
    """The layer groups of a timm ViT in cascading order (head, blocks top down, stem).

    Raises:
        UnsupportedModelError: ``model`` is not a ViT :mod:`retcore.explain` can explain.
    """
    info = inspect_vit(model)
    head = tuple(m for m in _HEAD_MODULES if _has_parameters(model, m))
    blocks = [LayerGroup(f"blocks.{i}", (f"blocks.{i}",)) for i in reversed(range(info.depth))]
    stem = tuple(m for m in _STEM_MODULES if _has_parameters(model, m))
    stem_params = tuple(p for p in _STEM_PARAMETERS if isinstance(getattr(model, p, None), nn.Parameter))
    return [LayerGroup("head", head), *blocks, LayerGroup("patch_embed", stem, stem_params)]


def schedule(model: nn.Module, mode: str) -> list[Step]:
    """The steps of ``mode`` (``'cascading'`` or ``'independent'``) for ``model``, in order.

    Cascading step k randomises groups 0..k of :func:`layer_groups`; independent step k
    randomises group k alone. Both have one step per group (``depth + 2`` for a ViT).
    """
    if mode not in MODES:
        raise SanityError(f"unknown randomisation mode {mode!r}: choose one of {', '.join(MODES)}")
    names = [g.name for g in layer_groups(model)]
    if mode == "cascading":
        return [Step(mode, k, name, tuple(names[: k + 1])) for k, name in enumerate(names)]
    return [Step(mode, k, name, (name,)) for k, name in enumerate(names)]


def group_seed(seed: int, name: str) -> int:
    """The seed of group ``name``'s random weights: CRC-32 of ``'<seed>:<name>'`` (a 32-bit int)."""
    return zlib.crc32(f"{int(seed)}:{name}".encode())


def _group(model: nn.Module, group: LayerGroup | str) -> LayerGroup:
    if isinstance(group, LayerGroup):
        return group
    groups = {g.name: g for g in layer_groups(model)}
    if group not in groups:
        raise SanityError(f"unknown layer group {group!r}: choose one of {', '.join(groups)}")
    return groups[group]


@torch.no_grad()
def reinitialise(model: nn.Module, group: LayerGroup | str, seed: int = 0) -> None:
    """Re-initialise one layer group of ``model`` in place with its own init scheme (module docstring).

    Args:
        model: a timm ViT (any device and dtype; parameter objects are kept, values copied in).
        group: a :class:`LayerGroup` or its name (``'head'``, ``'blocks.3'``, ``'patch_embed'``).
        seed: base seed; the group's draws come from :func:`group_seed` ``(seed, name)``.
    """
    group = _group(model, group)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(group_seed(seed, group.name))
        for name in group.modules:
            live = model.get_submodule(name)
            fresh = copy.deepcopy(live).to(device="cpu", dtype=torch.float32)
            if name == "head" and isinstance(fresh, nn.Linear):
                nn.init.trunc_normal_(fresh.weight, std=HEAD_INIT_STD)
                if fresh.bias is not None:
                    nn.init.zeros_(fresh.bias)
            else:
                named_apply(init_weights_vit_timm, fresh, include_root=True)
            targets = live.state_dict(keep_vars=True)
            for key, value in fresh.state_dict().items():
                targets[key].data.copy_(value)
        for name in group.parameters:
            param = getattr(model, name)
            value = torch.empty(param.shape, dtype=torch.float32)
            if name == "pos_embed":
                nn.init.trunc_normal_(value, std=0.02)
            else:
                nn.init.normal_(value, std=1e-6)
            param.data.copy_(value)


def _snapshot(model: nn.Module, groups: Iterable[LayerGroup]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for g in groups for k, v in g.tensors(model).items()}


@torch.no_grad()
def _restore(model: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    live = model.state_dict(keep_vars=True)
    for key, value in saved.items():
        live[key].data.copy_(value)


@contextmanager
def randomized(model: nn.Module, groups: Sequence[LayerGroup | str], seed: int = 0) -> Iterator[nn.Module]:
    """``with randomized(model, ['head', 'blocks.3']) as m:`` — ``model`` with those groups
    re-initialised (in place, ``m is model``); every value is restored exactly on exit."""
    resolved = [_group(model, g) for g in groups]
    saved = _snapshot(model, resolved)
    try:
        for g in resolved:
            reinitialise(model, g, seed)
        yield model
    finally:
        _restore(model, saved)


def randomized_copy(model: nn.Module, groups: Sequence[LayerGroup | str], seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with ``groups`` re-initialised; ``model`` is not touched."""
    out = copy.deepcopy(model)
    for g in groups:
        reinitialise(out, _group(out, g), seed)
    return out


@contextmanager
def randomization(model: nn.Module, mode: str, seed: int = 0, *,
                  steps: Sequence[int] | None = None) -> Iterator[Iterator[Step]]:
    """Walk a schedule in place: ``with randomization(model, 'cascading') as walk: for step in walk: ...``.

    When the loop body runs for a step, ``model`` is that step's model (cascading: groups
    0..k re-initialised, each drawn once and kept; independent: group k alone, the previous
    one restored first). ``steps`` limits the walk to those indices (cascading still builds
    the groups before them). On exit — also after ``break`` or an exception — the model is
    restored exactly.
    """
    plan = schedule(model, mode)
    wanted = set(range(len(plan))) if steps is None else set(steps)
    groups = {g.name: g for g in layer_groups(model)}
    saved = _snapshot(model, groups.values())

    def walk() -> Iterator[Step]:
        last = max(wanted, default=-1)
        for step in plan:
            if step.index > last:
                return
            if mode == "cascading":
                reinitialise(model, groups[step.layer], seed)
            elif step.index in wanted:
                reinitialise(model, groups[step.layer], seed)
            if step.index in wanted:
                yield step
            if mode == "independent" and step.index in wanted:
                _restore(model, {k: saved[k] for k in groups[step.layer].tensors(model)})

    try:
        yield walk()
    finally:
        _restore(model, saved)
