"""Classical fundus anatomy: field of view, optic disc, fovea and eye laterality.

No trained model is involved: everything is image processing on one RGB photo.

Coordinates are continuous pixel coordinates of the input image, x to the right and y
down; pixel ``(row i, column j)`` covers ``[j, j+1) x [i, i+1)``, so its centre is
``(j + 0.5, i + 0.5)``. This is the convention of the demo manifest (``disc_x``,
``disc_y``, ``disc_r``), so detections and ground truth compare directly.

Laterality convention (see ``retcore.demo.base``): a colour fundus photo is viewed as if
facing the patient; the optic disc lies nasal to the fovea, so the disc appears on the
viewer's LEFT in a LEFT eye and on the viewer's RIGHT in a RIGHT eye.

Detection works on a copy of the image shrunk (area averaging) so its longer side is at
most ``WORK_SIDE`` pixels; all filter sizes are expressed in units of the FOV radius, so
the result does not depend on the resolution of the input.

One job per module: ``fov`` (FOV mask and circle), ``disc`` (optic disc), ``fovea``
(fovea), ``landmarks`` (laterality and the ``Landmarks`` of one photo, all at once);
``_work`` holds the shrunk working copy and the smoothing they share.
"""

from retcore.anatomy._work import WORK_SIDE
from retcore.anatomy.disc import DISC_RADIUS_FOV, find_optic_disc
from retcore.anatomy.fov import FOV_THRESHOLD, fov_circle, fov_mask
from retcore.anatomy.fovea import FOVEA_DISTANCE_DD, find_fovea, fovea_geometric
from retcore.anatomy.landmarks import Landmarks, detect_landmarks, laterality_from_disc

__all__ = [
    "DISC_RADIUS_FOV",
    "FOV_THRESHOLD",
    "FOVEA_DISTANCE_DD",
    "Landmarks",
    "WORK_SIDE",
    "detect_landmarks",
    "find_fovea",
    "find_optic_disc",
    "fov_circle",
    "fov_mask",
    "fovea_geometric",
    "laterality_from_disc",
]
