"""Per-layer cache of ``[W, |W|, 2 EPS - b]``, the matrices the alpha-beta rule multiplies by."""
from __future__ import annotations

import weakref

import torch
from torch import nn

from retcore.explain.rules.base import EPS

__all__ = ["abs_weight", "clear_weight_cache", "weight_block"]

_WEIGHT_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict[torch.dtype, tuple]]" = weakref.WeakKeyDictionary()


def abs_weight(layer: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W, |W|, 2 EPS - b)`` of a linear/conv ``layer`` in ``dtype``, cached per layer.

    The entry is reused while the weight and bias keep their storage, version
    counter (bumped by in-place updates: optimiser steps, ``load_state_dict``),
    dtype and device, and it lives as long as the layer. ``W^+ = (W + |W|)/2``
    and ``W^- = (W - |W|)/2``, so ``|W|`` is the only extra matrix the
    alpha-beta rule needs. The third item is the bias term of the doubled
    numerator ``2 Z + 2 EPS = |x| |W|^T + y + (2 EPS - b)`` (shape (out,)).
    For a linear layer the three are views of one cached (out, 2 in + 1)
    matrix ``[W, |W|, 2 EPS - b]`` (see :func:`weight_block`), so that
    ``S [W, |W|]`` is a single matmul.
    """
    block = weight_block(layer, dtype)
    if block.ndim != 2:
        return _cached(layer, dtype)
    n_in = (block.shape[1] - 1) // 2
    return block[:, :n_in], block[:, n_in:2 * n_in], block[:, 2 * n_in]


def weight_block(layer: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """``[W, |W|, 2 EPS - b]`` (out, 2 in + 1) of a linear layer (``|W|`` alone for a conv), cached.

    ``S @ block[:, :2 in]`` gives ``(S W, S |W|)`` in one matmul, and with an
    input ``[|x|, 1]``, ``block[:, in:]`` gives ``|x| |W|^T + 2 EPS - b``.
    """
    return _cached(layer, dtype)[1]


def _cached(layer: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    weight = layer.weight
    bias = getattr(layer, "bias", None)
    key = (weight._version, weight.data_ptr(), weight.dtype, weight.device,
           None if bias is None else (bias._version, bias.data_ptr()))
    per_dtype = _WEIGHT_CACHE.get(layer)
    if per_dtype is None:
        per_dtype = {}
        _WEIGHT_CACHE[layer] = per_dtype
    entry = per_dtype.get(dtype)
    if entry is not None and entry[0] == key:
        return entry[1]
    with torch.no_grad():
        w = weight.detach().to(dtype)
        shift = torch.full((w.shape[0],), 2 * EPS, dtype=dtype, device=w.device)
        if bias is not None:
            shift -= bias.detach().to(dtype)
        if w.ndim == 2:
            block = torch.cat((w, w.abs(), shift.unsqueeze(1)), dim=1)
            value = (w, block, shift)
        else:
            value = (w, w.abs(), shift)
    per_dtype[dtype] = (key, value)
    return value


def clear_weight_cache() -> None:
    """Forget every cached ``|W|`` (they are also dropped with their layers)."""
    _WEIGHT_CACHE.clear()
