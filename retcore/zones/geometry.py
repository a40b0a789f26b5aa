"""The geometry of one image in which zones are drawn, and grid cells in image pixels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from retcore.anatomy import Landmarks

__all__ = ["ZoneContext", "circle_mask"]


@dataclass(frozen=True)
class ZoneContext:
    """Geometry of one image in which zones are drawn (all in image pixels).

    height, width: image size (pixels) that every zone grid spans.
    fov: (cx, cy, r) FOV circle (continuous coordinates, pixel centres at +0.5).
    disc: (x, y, r) optic disc, or None (the ``anatomy`` set needs it).
    fovea: (x, y), or None (``anatomy`` then uses ``fovea_geometric``).
    eye: 'left' | 'right' | None; adds nasal/temporal to ``thirds`` when known.
    masks: user masks, name -> (height, width) bool, for the ``mask`` set.
    """

    height: int
    width: int
    fov: tuple[float, float, float]
    disc: tuple[float, float, float] | None = None
    fovea: tuple[float, float] | None = None
    eye: str | None = None
    masks: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_landmarks(cls, landmarks: Landmarks, height: int, width: int, *, eye: str | None = None,
                       masks: Mapping[str, np.ndarray] | None = None) -> ZoneContext:
        """Context from detected ``Landmarks`` of a (height, width) image.

        ``eye`` is the known laterality (e.g. from the file name); pass
        ``landmarks.eye_estimate`` explicitly to use the disc-side estimate instead.
        """
        return cls(height=height, width=width, fov=landmarks.fov, disc=landmarks.disc,
                   fovea=landmarks.fovea, eye=eye, masks=dict(masks or {}))


def _cell_centres(ctx_h: int, ctx_w: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Image-pixel coordinates (x (1, w), y (h, 1)) of the cell centres of an (h, w) grid."""
    h, w = shape
    xs = (np.arange(w, dtype=np.float64) + 0.5) * (ctx_w / w)
    ys = (np.arange(h, dtype=np.float64) + 0.5) * (ctx_h / h)
    return xs[None, :], ys[:, None]


def circle_mask(ctx: ZoneContext, shape: tuple[int, int] | None = None, scale: float = 1.0) -> np.ndarray:
    """Cells of an (h, w) grid whose centre lies within ``scale x`` the FOV circle.

    Args:
        ctx: geometry (FOV circle in image pixels).
        shape: (h, w) grid spanning the image; default the image size.
        scale: radius factor (1.0 = the FOV circle itself).

    Returns:
        (h, w) bool mask.
    """
    grid = (ctx.height, ctx.width) if shape is None else shape
    xs, ys = _cell_centres(ctx.height, ctx.width, grid)
    cx, cy, r = ctx.fov
    return np.hypot(xs - cx, ys - cy) <= scale * r
