"""How alike two relevance maps of one image are (Adebayo et al., NeurIPS 2018, section 3).

Both measures compare **absolute** maps (the sign of relevance is not compared) at the
method's own resolution (the token grid, or the pixel grid for ``lrp_pixels``):

- ``spearman``: Spearman rank correlation of ``|a|`` and ``|b|`` over all positions
  (``scipy.stats.spearmanr``), in [-1, 1]. A constant map has no ranks: two constant
  maps score 1, one constant map against a varying one scores 0.
- ``ssim``: structural similarity (``skimage.metrics.structural_similarity``, 7 x 7 uniform
  window, ``data_range=1``) of ``|a|`` and ``|b|`` each min-max normalised to [0, 1]
  (a constant map becomes all zeros). On grids smaller than 7 the window is the largest odd
  side that fits; below 3 it is NaN.

Identical maps score 1 on both; maps of an unrelated model score near 0.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

__all__ = ["SSIM_WINDOW", "map_similarity", "rank_correlation", "ssim"]

SSIM_WINDOW = 7
"""Side of the SSIM window (skimage's default), shrunk to fit small grids."""


def _abs2d(a: np.ndarray) -> np.ndarray:
    a = np.abs(np.asarray(a, dtype=np.float64))
    if a.ndim != 2:
        raise ValueError(f"a map must be 2-D (h, w), got shape {a.shape}")
    return a


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of ``|a|`` and ``|b|`` ((h, w) maps of the same shape), in [-1, 1]."""
    a, b = _abs2d(a), _abs2d(b)
    if a.shape != b.shape:
        raise ValueError(f"maps of shapes {a.shape} and {b.shape} cannot be compared")
    flat_a, flat_b = a.ravel(), b.ravel()
    const_a, const_b = bool(np.ptp(flat_a) == 0), bool(np.ptp(flat_b) == 0)
    if const_a or const_b:
        return 1.0 if const_a and const_b else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(flat_a, flat_b).statistic)


def _unit(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of ``|a|`` and ``|b|`` ((h, w) maps), each min-max normalised to [0, 1]; NaN below 3 x 3."""
    a, b = _abs2d(a), _abs2d(b)
    if a.shape != b.shape:
        raise ValueError(f"maps of shapes {a.shape} and {b.shape} cannot be compared")
    side = min(a.shape)
    win = min(SSIM_WINDOW, side if side % 2 else side - 1)
    if win < 3:
        return float("nan")
    return float(structural_similarity(_unit(a), _unit(b), win_size=win, data_range=1.0))


def map_similarity(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image similarity of two stacks of maps.

    Args:
        reference: (B, h, w) maps (of the trained model).
        other: (B, h, w) maps of the same images (of a randomised model).

    Returns:
        ``(spearman, ssim)``: two float64 arrays (B,).
    """
    reference, other = np.asarray(reference), np.asarray(other)
    if reference.shape != other.shape or reference.ndim != 3:
        raise ValueError(f"need two (B, h, w) stacks of the same shape, got {reference.shape} and {other.shape}")
    rho = np.array([rank_correlation(r, o) for r, o in zip(reference, other)], dtype=np.float64)
    sim = np.array([ssim(r, o) for r, o in zip(reference, other)], dtype=np.float64)
    return rho, sim
