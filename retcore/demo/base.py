"""The base photograph: scikit-image's ``data.retina()`` fundus, cropped and measured once.

All anatomy is stored in *FOV units*: a point ``v = (p - fov_centre) / fov_radius`` of the
base photo, so the field of view is the unit disc and x grows to the viewer's right, y down.

Which eye is it?  A colour fundus photograph is viewed as if facing the patient (the camera
image is not inverted).  The optic disc lies nasal to the fovea.  For a LEFT eye the nasal
side points to the patient's right, which for a viewer facing the patient is the viewer's
LEFT.  In ``retina()`` the disc is on the viewer's left (x ~ 212 of 1411) and the fovea is at
the image centre, so it is a macula-centred LEFT eye; a right eye is its horizontal mirror.
(This matches the usual convention "left eye: disc left of centre, right eye: disc right".)

The constants below were measured on ``retina()`` (1411 x 1411) and checked visually by
drawing them onto the photo: FOV circle fitted to the bright aperture (the small tab at the
upper right lies outside it), disc circle around the yellow disc including its pale rim up
to the pigmented temporal crescent, fovea = darkest smoothed point near the centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "BasePhoto",
    "load_base",
    "RETINA_FOV_CENTRE_PX",
    "RETINA_FOV_RADIUS_PX",
    "RETINA_DISC_CENTRE_PX",
    "RETINA_DISC_RADIUS_PX",
    "RETINA_FOVEA_PX",
    "BASE_EYE",
]

RETINA_FOV_CENTRE_PX = (704.0, 703.0)  # (x, y) in retina() pixels
RETINA_FOV_RADIUS_PX = 695.0
RETINA_DISC_CENTRE_PX = (212.0, 655.0)
RETINA_DISC_RADIUS_PX = 92.0
RETINA_FOVEA_PX = (708.0, 704.0)
BASE_EYE = "left"


def _to_fov_units(p: tuple[float, float]) -> tuple[float, float]:
    cx, cy = RETINA_FOV_CENTRE_PX
    return ((p[0] - cx) / RETINA_FOV_RADIUS_PX, (p[1] - cy) / RETINA_FOV_RADIUS_PX)


@dataclass(frozen=True)
class BasePhoto:
    """Pre-processed base photo.

    rgb: (size, size, 3) uint8; the FOV circle is inscribed in the square and the pixels
    outside it are filled with the nearest FOV colour (so warps and blurs never pull in black).
    disc / fovea: centres in FOV units (x, y); disc_r: disc radius in FOV units.
    """

    rgb: np.ndarray
    disc: tuple[float, float]
    disc_r: float
    fovea: tuple[float, float]

    @property
    def size(self) -> int:
        return int(self.rgb.shape[0])


@lru_cache(maxsize=4)
def load_base(size: int) -> BasePhoto:
    """Crop ``retina()`` to its FOV, resize to ``size`` x ``size`` and extrapolate the border."""
    from PIL import Image
    from scipy import ndimage as ndi
    from skimage import data

    photo = data.retina()
    cx, cy = RETINA_FOV_CENTRE_PX
    r0 = RETINA_FOV_RADIUS_PX
    box = (int(round(cx - r0)), int(round(cy - r0)), int(round(cx + r0)), int(round(cy + r0)))
    img = Image.fromarray(photo).crop(box).resize((size, size), Image.Resampling.LANCZOS)
    arr = np.asarray(img).copy()
    yy, xx = np.mgrid[0:size, 0:size]
    c = size / 2.0
    rr = np.hypot(xx + 0.5 - c, yy + 0.5 - c) / c
    # the last ~1% of the radius is darkened by the aperture edge: replace it as well
    outside = rr > 0.985
    _, (iy, ix) = ndi.distance_transform_edt(outside, return_indices=True)
    arr = arr[iy, ix]
    arr.setflags(write=False)
    return BasePhoto(
        rgb=arr,
        disc=_to_fov_units(RETINA_DISC_CENTRE_PX),
        disc_r=RETINA_DISC_RADIUS_PX / r0,
        fovea=_to_fov_units(RETINA_FOVEA_PX),
    )
