"""Display helpers for relevance maps: upsampling and normalisation.

**Display only.** Normalised maps lose the scale that makes maps of
different images, classes and methods comparable; zone scores, faithfulness
and localisation metrics must be computed on the raw maps returned by
:func:`retcore.explain.relevance` (upsampling with :func:`upsample` is fine).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["clip_percentile", "normalize_minmax", "normalize_sum", "upsample"]


def _batched(maps: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if maps.ndim == 2:
        return maps.unsqueeze(0), True
    if maps.ndim != 3:
        raise ValueError(f"expected maps of shape (B, h, w) or (h, w), got {tuple(maps.shape)}")
    return maps, False


def upsample(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling (``align_corners=False``) of token-grid maps to an image size.

    Args:
        grid: (B, gh, gw) (or (gh, gw)) relevance on the token grid.
        size: ``(H, W)`` in pixels.

    Returns:
        (B, H, W) (or (H, W)) in floating point; each map's mean is preserved
        up to border effects, negative values are kept.
    """
    maps, single = _batched(grid)
    if not maps.dtype.is_floating_point:
        maps = maps.float()
    out = F.interpolate(maps.unsqueeze(1), size=(int(size[0]), int(size[1])), mode="bilinear",
                        align_corners=False)[:, 0]
    return out[0] if single else out


def normalize_minmax(maps: torch.Tensor) -> torch.Tensor:
    """Per-map ``(m - min) / (max - min)`` in [0, 1] (a constant map becomes 0). Display only.

    Args:
        maps: (B, h, w) or (h, w).
    """
    m, single = _batched(maps)
    flat = m.flatten(1)
    lo = flat.amin(1, keepdim=True)
    span = flat.amax(1, keepdim=True) - lo
    out = torch.where(span > 0, (flat - lo) / torch.where(span > 0, span, 1), 0).view_as(m)
    return out[0] if single else out


def normalize_sum(maps: torch.Tensor, *, positive: bool = True) -> torch.Tensor:
    """Per-map division by the total so each map sums to 1 (an all-zero map stays 0). Display only.

    Args:
        maps: (B, h, w) or (h, w).
        positive: clamp negative relevance to 0 first (default), so the map is
            a distribution of positive evidence.
    """
    m, single = _batched(maps)
    flat = m.flatten(1)
    if positive:
        flat = flat.clamp(min=0)
    total = flat.sum(1, keepdim=True)
    out = torch.where(total != 0, flat / torch.where(total != 0, total, 1), 0).view_as(m)
    return out[0] if single else out


def clip_percentile(maps: torch.Tensor, upper: float = 99.0, lower: float | None = None) -> torch.Tensor:
    """Clamp each map to its ``[lower, upper]`` percentiles (``lower=None``: no lower clip). Display only.

    Args:
        maps: (B, h, w) or (h, w).
        upper, lower: percentiles in [0, 100].
    """
    for q in (upper, lower):
        if q is not None and not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile {q} is outside [0, 100]")
    m, single = _batched(maps)
    flat = m.flatten(1).float() if not m.dtype.is_floating_point else m.flatten(1)
    hi = torch.quantile(flat, upper / 100.0, dim=1, keepdim=True)
    lo = torch.quantile(flat, lower / 100.0, dim=1, keepdim=True) if lower is not None else None
    out = flat.clamp(min=lo, max=hi).view(m.shape)
    return out[0] if single else out
