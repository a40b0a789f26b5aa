"""Where a relevance map puts its positive mass: zone scores, the peak zone, concentration.

Definitions and the resampling choice are described in ``retcore.zones``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from retcore.zones.geometry import ZoneContext, circle_mask
from retcore.zones.registry import compute_zones
from retcore.zones.resample import _overlap, area_transfer

__all__ = ["ZoneScore", "concentration", "peak_zone", "score_zone_set", "zone_scores"]


@dataclass(frozen=True)
class ZoneScore:
    """Where a relevance map puts its positive mass, for one zone.

    zone: zone name. mass_share: share of the FOV's positive relevance in the zone (0..1).
    area_share: zone area / FOV area (0..1). score: mass_share / area_share (1.0 =
    uniform; NaN for an empty zone). peak: the zone holds the map's maximum.
    """

    zone: str
    mass_share: float
    area_share: float
    score: float
    peak: bool


def _check_relevance(relevance: np.ndarray) -> np.ndarray:
    r = np.asarray(relevance, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"relevance must be a 2-D (h, w) map, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("relevance contains NaN or infinite values")
    return r


def zone_scores(relevance: np.ndarray, zones: Mapping[str, np.ndarray],
                fov_mask: np.ndarray | None = None) -> list[ZoneScore]:
    """Mass share, area share, area-normalised score and peak flag of each zone.

    Args:
        relevance: (h, w) raw relevance (token grid or pixels; any sign, any scale; only
            the positive part is used).
        zones: ``{name: (H, W) bool}`` masks on one grid spanning the same image
            (``compute_zones``); (H, W) may differ from (h, w).
        fov_mask: (H, W) bool FOV mask on the zone grid; None = the whole image.

    Returns:
        One ``ZoneScore`` per zone, in the order of ``zones``. Shares are NaN when the
        map has no positive mass in the FOV; score is NaN for a zone with no area.
        Relevance is moved onto the zone grid by ``area_transfer(..., 'mass')`` (see
        ``retcore.zones``), so results do not depend on the resolution of either grid
        beyond the rasterisation of the masks.
    """
    r = _check_relevance(relevance)
    if not zones:
        return []
    shapes = {np.asarray(m).shape for m in zones.values()}
    if len(shapes) != 1:
        raise ValueError(f"zone masks must share one shape, got {sorted(shapes)}")
    grid = shapes.pop()
    if len(grid) != 2:
        raise ValueError(f"zone masks must be 2-D, got shape {grid}")
    fov = np.ones(grid, bool) if fov_mask is None else np.asarray(fov_mask, bool)
    if fov.shape != grid:
        raise ValueError(f"fov_mask has shape {fov.shape}, the zones {grid}")
    pos = np.clip(r, 0.0, None)
    mass = area_transfer(pos, grid, mode="mass")
    total = float(mass[fov].sum())
    fov_area = int(fov.sum())
    peak_cov = _peak_coverages(pos, zones, fov)
    out = []
    for name, m in zones.items():
        zf = np.asarray(m, bool) & fov
        area_share = zf.sum() / fov_area if fov_area else float("nan")
        mass_share = float(mass[zf].sum()) / total if total > 0 else float("nan")
        score = mass_share / area_share if area_share > 0 else float("nan")
        out.append(ZoneScore(name, float(mass_share), float(area_share), float(score),
                             bool(peak_cov.get(name, 0.0) >= 0.5)))
    return out


def _peak_cell(pos: np.ndarray, fov_cov: np.ndarray) -> tuple[int, int] | None:
    cand = np.where(fov_cov >= 0.5, pos, -np.inf)
    if not np.isfinite(cand).any() or cand.max() <= 0:
        return None
    i, j = np.unravel_index(int(np.argmax(cand)), cand.shape)
    return int(i), int(j)


def _peak_coverages(pos: np.ndarray, zones: Mapping[str, np.ndarray], fov: np.ndarray) -> dict[str, float]:
    """Share of the relevance peak cell (first maximum of R+ among cells at least half in
    the FOV) covered by each zone (and the FOV)."""
    h, w = pos.shape
    grid = fov.shape
    fov_cov = area_transfer(fov.astype(np.float64), (h, w), mode="mean")
    cell = _peak_cell(pos, fov_cov)
    if cell is None:
        return {}
    i, j = cell
    wy = _overlap(h, grid[0])[i] * h  # weights of the mask rows inside relevance row i
    wx = _overlap(w, grid[1])[j] * w
    return {name: float(wy @ (np.asarray(m, bool) & fov).astype(np.float64) @ wx) for name, m in zones.items()}


def peak_zone(relevance: np.ndarray, zones: Mapping[str, np.ndarray], fov_mask: np.ndarray | None = None) -> str | None:
    """Name of the zone covering most of the relevance peak cell (None if no zone does or
    the map has no positive value in the FOV); ties go to the first zone.

    Args:
        relevance: (h, w) raw relevance.
        zones: ``{name: (H, W) bool}``.
        fov_mask: (H, W) bool or None.
    """
    r = _check_relevance(relevance)
    if not zones:
        return None
    grid = next(iter(zones.values())).shape
    fov = np.ones(grid, bool) if fov_mask is None else np.asarray(fov_mask, bool)
    cov = _peak_coverages(np.clip(r, 0.0, None), zones, fov)
    if not cov or max(cov.values()) <= 0:
        return None
    return max(cov, key=lambda k: cov[k])


def concentration(relevance: np.ndarray, fov_mask: np.ndarray | None = None) -> dict[str, float]:
    """How concentrated the positive relevance is over the FOV, on the map's own grid.

    With ``p_i = R+_i / sum(R+)`` over the n relevance cells at least half inside the FOV:
    ``entropy = -sum p_i log p_i / log n`` (1 = uniform, 0 = a single cell) and
    ``gini = sum_i (2 i - n - 1) x_(i) / (n sum x)`` over the ascending values x_(i)
    (0 = uniform, (n - 1) / n = a single cell).

    Args:
        relevance: (h, w) raw relevance.
        fov_mask: bool FOV mask on any grid spanning the image (resampled to (h, w) by
            area coverage); None = all cells.

    Returns:
        ``{'entropy': float, 'gini': float, 'n_cells': float}``; entropy and gini are NaN
        when there is no positive mass (or fewer than 2 cells).
    """
    r = _check_relevance(relevance)
    if fov_mask is None:
        inside = np.ones(r.shape, bool)
    else:
        inside = area_transfer(np.asarray(fov_mask, np.float64), r.shape, mode="mean") >= 0.5
    x = np.clip(r[inside], 0.0, None)
    n = x.size
    total = float(x.sum())
    if n < 2 or total <= 0:
        return {"entropy": float("nan"), "gini": float("nan"), "n_cells": float(n)}
    p = x / total
    nz = p[p > 0]
    entropy = max(0.0, float(-(nz * np.log(nz)).sum() / math.log(n)))
    xs = np.sort(x)
    idx = np.arange(1, n + 1, dtype=np.float64)
    gini = float(((2 * idx - n - 1) * xs).sum() / (n * total))
    return {"entropy": entropy, "gini": gini, "n_cells": float(n)}


def score_zone_set(relevance: np.ndarray, name: str, ctx: ZoneContext, *, fov_mask: np.ndarray | None = None,
                   shape: tuple[int, int] | None = None, **params: object) -> list[ZoneScore]:
    """``zone_scores`` of the zone set ``name`` drawn on ``shape`` (default full image).

    Args:
        relevance: (h, w) raw relevance spanning the image of ``ctx``.
        name: registered zone set.
        ctx: geometry of the image.
        fov_mask: (H, W) bool FOV mask on the zone grid; default the FOV circle of ``ctx``
            clipped to the image.
        shape: (H, W) zone grid; default (ctx.height, ctx.width).
        **params: options of the zone set.

    Returns:
        list of ``ZoneScore``.
    """
    grid = (ctx.height, ctx.width) if shape is None else shape
    zones = compute_zones(name, ctx, grid, **params)
    fov = circle_mask(ctx, grid) if fov_mask is None else fov_mask
    return zone_scores(relevance, zones, fov)
