"""Area-weighted resampling between grids spanning the same image (mass- or mean-preserving)."""

from __future__ import annotations

import numpy as np

__all__ = ["area_transfer"]


def _overlap(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) overlap lengths of the cells of two partitions of [0, 1]."""
    edges_out = np.arange(n_out + 1, dtype=np.float64) / n_out
    edges_in = np.arange(n_in + 1, dtype=np.float64) / n_in
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def area_transfer(x: np.ndarray, shape: tuple[int, int], mode: str = "mass") -> np.ndarray:
    """Resample an (h, w) array onto an (H, W) grid spanning the same extent, by area overlap.

    Args:
        x: (h, w) array.
        shape: (H, W) target grid.
        mode: 'mass' conserves the sum (each source cell's value is split over the target
            cells in proportion to the overlap: relevance mass); 'mean' gives each target
            cell the area-weighted mean of the source (coverage of a mask, densities).

    Returns:
        (H, W) float64 array.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"area_transfer needs a 2-D array, got shape {x.shape}")
    (h, w), (hh, ww) = x.shape, (int(shape[0]), int(shape[1]))
    if (h, w) == (hh, ww):
        return x.copy()
    oy, ox = _overlap(hh, h), _overlap(ww, w)
    if mode == "mass":
        oy, ox = oy * h, ox * w  # columns sum to 1
    elif mode == "mean":
        oy, ox = oy * hh, ox * ww  # rows sum to 1
    else:
        raise ValueError(f"mode={mode!r}: use 'mass' or 'mean'")
    return oy @ x @ ox.T
