"""Field of view: the bright fundus disk's mask and its fitted circle.

Pixel coordinates follow ``retcore.anatomy`` (pixel centres at +0.5).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

__all__ = ["FOV_THRESHOLD", "fov_circle", "fov_mask"]

FOV_THRESHOLD = 20.0
"""Brightness (0..255, max over channels) above which a pixel can be in the FOV; the same
value as ``retcore.data.transforms.DEFAULT_FOV_THRESHOLD`` (not imported: this module
must not pull in torch)."""

_OPEN_FRACTION = 0.01  # FOV opening radius, share of the image's shorter side


def fov_mask(rgb: np.ndarray, threshold: float = FOV_THRESHOLD) -> np.ndarray:
    """Field-of-view mask: the bright fundus disk without the dark camera border.

    Steps: brightness = max over channels (robust to red-free and dark photos); the
    largest connected region of the 3x3 box-smoothed brightness above ``threshold`` (the
    smoothing only bridges noise, it does not widen the mask); its pixels above
    ``threshold``; holes filled; morphological opening with a disk of radius 1% of the
    shorter image side (removes thin spurs, text and specks touching the FOV); largest
    region again.

    Args:
        rgb: (H, W, 3) uint8 image (or (H, W) grey).
        threshold: brightness 0..255 above which a pixel can belong to the FOV.

    Returns:
        (H, W) bool mask. When no region covers at least 1% of the image (an image with no
        dark border at all, or a black image), the whole image is returned as FOV.
    """
    if rgb.ndim not in (2, 3) or (rgb.ndim == 3 and rgb.shape[2] < 3):
        raise ValueError(f"fov_mask needs an (H, W, 3) or (H, W) array, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    bright = rgb[..., :3].max(axis=2) if rgb.ndim == 3 else rgb
    smooth = ndi.uniform_filter(bright.astype(np.float32), size=3, mode="nearest")
    mask = _largest_region(smooth > threshold) & (bright > threshold)
    if mask.sum() < 0.01 * h * w:
        return np.ones((h, w), bool)
    mask = ndi.binary_fill_holes(mask)
    radius = max(1.0, _OPEN_FRACTION * min(h, w))
    # opening with a Euclidean disk via distance transforms (fast for any radius)
    eroded = ndi.distance_transform_edt(mask) > radius
    opened = ~(ndi.distance_transform_edt(~eroded) > radius) if eroded.any() else mask
    opened = _largest_region(opened & mask)
    return opened if opened.sum() >= 0.01 * h * w else mask


def _largest_region(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask.astype(bool, copy=False)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fov_circle(mask: np.ndarray) -> tuple[float, float, float]:
    """Circle fitted to the FOV mask boundary: ``(cx, cy, r)`` in pixels.

    The outline pixels of the mask that do not touch the image border are fitted by an
    algebraic least-squares circle (Kasa), refitted once without outliers (residual above
    3 x the median absolute residual, e.g. a notch or tab of the aperture). So a FOV that
    is cut off by the image edge (off-centre or cropped photos) still gives its full
    circle. Falls back to the area-equivalent circle around the centroid when fewer than
    12 usable outline points exist or the fit is degenerate.

    Args:
        mask: (H, W) bool FOV mask (see ``fov_mask``).

    Returns:
        (cx, cy, r): centre and radius in continuous pixel coordinates (pixel centres at
        +0.5); the centre may lie outside the image.
    """
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    area = float(mask.sum())
    if area == 0:
        return (w / 2.0, h / 2.0, min(h, w) / 2.0)
    ys, xs = np.nonzero(mask)
    fallback = (float(xs.mean()) + 0.5, float(ys.mean()) + 0.5, math.sqrt(area / math.pi))
    edge = mask & ~ndi.binary_erosion(mask, border_value=1)
    edge[0, :] = edge[-1, :] = False
    edge[:, 0] = edge[:, -1] = False
    ey, ex = np.nonzero(edge)
    if len(ex) < 12:
        return fallback
    px, py = ex + 0.5, ey + 0.5
    keep = np.ones(len(px), bool)
    fit = None
    for _ in range(2):
        fit = _kasa(px[keep], py[keep])
        if fit is None:
            return fallback
        res = np.abs(np.hypot(px - fit[0], py - fit[1]) - fit[2])
        mad = float(np.median(res[keep]))
        new_keep = res <= max(3.0 * mad, 1.0)
        if new_keep.sum() < 12:
            break
        keep = new_keep
    assert fit is not None
    cx, cy, r = fit
    if not (0 < r < 2 * max(h, w)):
        return fallback
    return (float(cx), float(cy), float(r + 0.5))  # outline pixels sit half a pixel inside


def _kasa(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    """Algebraic circle fit: x^2 + y^2 = 2 a x + 2 b y + c."""
    if len(x) < 3:
        return None
    mx, my = x.mean(), y.mean()
    u, v = x - mx, y - my  # centred for conditioning
    a = np.stack([2 * u, 2 * v, np.ones_like(u)], axis=1)
    rhs = u * u + v * v
    sol, *_ = np.linalg.lstsq(a, rhs, rcond=None)
    cu, cv, c = sol
    r2 = c + cu * cu + cv * cv
    if not np.isfinite(r2) or r2 <= 0:
        return None
    return (float(cu + mx), float(cv + my), math.sqrt(float(r2)))
