"""What every relevance rule shares: the stabiliser, scratch buffers and per-image sums."""
from __future__ import annotations

import torch

__all__ = ["EPS", "Workspace", "dot_per_image", "safe_divide"]

EPS = 1e-9
"""Stabiliser of the authors' ``safe_divide``."""


class Workspace:
    """Reusable scratch tensors, one per ``(name, shape)``; allocated on first use."""

    def __init__(self, dtype: torch.dtype, device: torch.device) -> None:
        self.dtype = dtype
        self.device = device
        self._buffers: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
        """The buffer ``name`` of ``shape`` (uninitialised contents)."""
        key = (name, tuple(shape))
        buf = self._buffers.get(key)
        if buf is None:
            buf = torch.empty(key[1], dtype=self.dtype, device=self.device)
            self._buffers[key] = buf
        return buf


def _scratch(ws: Workspace | None, name: str, shape: tuple[int, ...] | torch.Size, like: torch.Tensor) -> torch.Tensor:
    if ws is None:
        return torch.empty(tuple(shape), dtype=like.dtype, device=like.device)
    return ws.get(name, shape)


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / (b + EPS)`` where ``b != 0``, else 0 (broadcasting like ``a / b``)."""
    return torch.where(b != 0, a / (b + EPS), torch.zeros((), dtype=a.dtype, device=a.device))


def dot_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum()`` per image (B,) for (B, ...) tensors, without a temporary."""
    bsz = a.shape[0]
    a2, b2 = a.reshape(bsz, -1), b.reshape(bsz, -1)
    if a.is_cuda:  # one batched product: a loop of B small kernels would be launch-bound on a GPU
        return torch.bmm(a2.unsqueeze(1), b2.unsqueeze(2)).view(bsz)
    # on a CPU one matrix-vector product per image: a single pass over memory (bmm / vecdot are much slower)
    return torch.cat([torch.mv(a2[i:i + 1], b2[i]) for i in range(bsz)])


def _per_image(c: torch.Tensor, ndim: int) -> torch.Tensor:
    return c.view((-1,) + (1,) * (ndim - 1))
