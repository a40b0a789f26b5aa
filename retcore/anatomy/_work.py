"""The shrunk working copy of a photo and the FOV-restricted smoothing shared by the
disc and fovea searches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from retcore.anatomy.fov import fov_circle, fov_mask

WORK_SIDE = 256
"""Longer side (pixels) of the shrunk copy on which the disc and fovea are searched."""


@dataclass(frozen=True)
class _Work:
    """Shrunk float copy of the image with its FOV, in working pixels."""

    rgb: np.ndarray  # (h, w, 3) float32 0..255
    fov: np.ndarray  # (h, w) bool
    circle: tuple[float, float, float]  # FOV circle in working pixels
    scale: float  # working px per input px


def _prepare(rgb: np.ndarray, fov: np.ndarray | None = None) -> _Work:
    if rgb.ndim == 2:  # grey / red-free photo
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    scale = min(1.0, WORK_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., :3])).resize(size, Image.Resampling.BOX))
        scale = size[0] / w
        if fov is not None:
            fm = np.asarray(Image.fromarray(fov.astype(np.uint8) * 255).resize(size, Image.Resampling.BOX)) >= 128
        else:
            fm = fov_mask(small)
    else:
        small = rgb[..., :3]
        fm = fov.astype(bool) if fov is not None else fov_mask(small)
    return _Work(small.astype(np.float32), fm, fov_circle(fm), scale)


def _masked_smooth(x: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing that only averages pixels inside ``mask`` (normalised convolution)."""
    m = mask.astype(np.float32)
    num = _gauss(x * m, sigma)
    den = _gauss(m, sigma)
    return num / np.maximum(den, 1e-6)


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter (zero outside the image); wide kernels run on a block-averaged copy.

    For sigma >= 4 px the (h, w) array is averaged over f x f blocks (f = sigma // 2),
    filtered with sigma / f and interpolated back (bilinear), which changes the result by
    far less than the features it feeds and is 10-50x faster.
    """
    x = x.astype(np.float32, copy=False)
    f = int(sigma // 2)
    if f < 2:
        return ndi.gaussian_filter(x, sigma, mode="constant")
    h, w = x.shape
    hp, wp = -(-h // f) * f, -(-w // f) * f
    padded = np.zeros((hp, wp), np.float32)
    padded[:h, :w] = x
    small = padded.reshape(hp // f, f, wp // f, f).mean(axis=(1, 3))
    small = ndi.gaussian_filter(small, sigma / f, mode="constant")
    big = ndi.zoom(small, f, order=1, mode="nearest", grid_mode=True)
    return big[:h, :w]
