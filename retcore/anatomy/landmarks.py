"""Eye laterality and all landmarks of one photo at once (one shared FOV mask)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from retcore.anatomy._work import _prepare
from retcore.anatomy.disc import _disc_work
from retcore.anatomy.fov import fov_circle
from retcore.anatomy.fovea import _fovea_work

__all__ = ["Landmarks", "detect_landmarks", "laterality_from_disc"]


def laterality_from_disc(disc_x: float, fov_cx: float) -> str:
    """Eye laterality from the side of the optic disc.

    Fundus photos are viewed facing the patient and the disc is nasal: a disc to the
    viewer's RIGHT of the FOV centre means a RIGHT eye, to the LEFT a LEFT eye.

    Args:
        disc_x: x of the disc centre, pixels.
        fov_cx: x of the FOV centre, pixels (same frame).

    Returns:
        'right' or 'left'.
    """
    return "right" if disc_x > fov_cx else "left"


@dataclass(frozen=True)
class Landmarks:
    """Anatomical landmarks of one fundus photo, in input-image pixels.

    fov_cx, fov_cy, fov_r: FOV circle (``fov_circle``); disc_x, disc_y, disc_r: optic
    disc; fovea_x, fovea_y: fovea centre; eye_estimate: 'left' | 'right' from the disc side.
    """

    fov_cx: float
    fov_cy: float
    fov_r: float
    disc_x: float
    disc_y: float
    disc_r: float
    fovea_x: float
    fovea_y: float
    eye_estimate: str

    @property
    def fov(self) -> tuple[float, float, float]:
        """(cx, cy, r) of the FOV circle."""
        return (self.fov_cx, self.fov_cy, self.fov_r)

    @property
    def disc(self) -> tuple[float, float, float]:
        """(x, y, r) of the optic disc."""
        return (self.disc_x, self.disc_y, self.disc_r)

    @property
    def fovea(self) -> tuple[float, float]:
        """(x, y) of the fovea."""
        return (self.fovea_x, self.fovea_y)

    def to_dict(self) -> dict[str, float | str]:
        """Plain dict of the fields (for a database row)."""
        return asdict(self)


def detect_landmarks(rgb: np.ndarray, fov: np.ndarray | None = None) -> Landmarks:
    """FOV circle, optic disc, fovea and eye estimate of one photo (one shared FOV mask).

    Args:
        rgb: (H, W, 3) uint8 colour fundus photo.
        fov: optional precomputed (H, W) bool FOV mask. When None the mask is computed on
            the working copy (longer side ``WORK_SIDE``), so the FOV circle is precise to
            about one working pixel (H / 256 input pixels).

    Returns:
        ``Landmarks`` in input-image pixels.
    """
    work = _prepare(rgb, fov)
    s = work.scale
    if fov is not None:
        cx, cy, rf = fov_circle(np.asarray(fov, bool))
    else:
        cx, cy, rf = (v / s for v in work.circle)
    dx, dy, dr = _disc_work(work)
    fx, fy = _fovea_work(work, (dx, dy, dr))
    return Landmarks(
        fov_cx=cx, fov_cy=cy, fov_r=rf,
        disc_x=dx / s, disc_y=dy / s, disc_r=dr / s,
        fovea_x=fx / s, fovea_y=fy / s,
        eye_estimate=laterality_from_disc(dx / s, cx),
    )
