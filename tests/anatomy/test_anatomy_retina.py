"""Landmarks on scikit-image's real fundus photo ``data.retina()`` and its mirror image."""
from __future__ import annotations

import numpy as np
import pytest

from retcore.anatomy import (
    FOV_THRESHOLD,
    Landmarks,
    detect_landmarks,
    find_fovea,
    find_optic_disc,
    fovea_geometric,
    laterality_from_disc,
)

# Ground truth read off the photo (1411 x 1411 px) by viewing it: the optic disc is the
# bright yellow disc on the viewer's left, centred where the central vessel trunk emerges,
# at about (212, 655) with a radius of ~92 px (pale rim up to the pigmented crescent);
# the fovea is the dark spot at the centre, about (708, 704).
RETINA_SIZE = 1411
DISC_TRUE = (212.0, 655.0)
DISC_R_TRUE = 92.0
FOVEA_TRUE = (708.0, 704.0)


@pytest.fixture(scope="module")
def retina() -> np.ndarray:
    from skimage import data

    return data.retina()


def _mirror_x(x: float) -> float:
    return RETINA_SIZE - x


@pytest.mark.parametrize("mirrored", [False, True])
def test_disc_within_5_percent_of_width(retina, mirrored):
    img = np.ascontiguousarray(np.fliplr(retina)) if mirrored else retina
    tx = _mirror_x(DISC_TRUE[0]) if mirrored else DISC_TRUE[0]
    x, y, r = find_optic_disc(img)
    err = np.hypot(x - tx, y - DISC_TRUE[1]) / img.shape[1]
    assert err < 0.05, f"disc at ({x:.0f}, {y:.0f}), truth ({tx:.0f}, {DISC_TRUE[1]:.0f})"
    assert 0.6 * DISC_R_TRUE < r < 1.4 * DISC_R_TRUE


@pytest.mark.parametrize("mirrored", [False, True])
def test_landmarks_fovea_and_eye(retina, mirrored):
    img = np.ascontiguousarray(np.fliplr(retina)) if mirrored else retina
    lm = detect_landmarks(img)
    assert isinstance(lm, Landmarks)
    fx = _mirror_x(FOVEA_TRUE[0]) if mirrored else FOVEA_TRUE[0]
    assert np.hypot(lm.fovea_x - fx, lm.fovea_y - FOVEA_TRUE[1]) / RETINA_SIZE < 0.05
    # the FOV circle of retina(): centre ~(704, 703), radius ~695 (retcore.demo.base)
    cx = _mirror_x(704.0) if mirrored else 704.0
    assert abs(lm.fov_cx - cx) < 8 and abs(lm.fov_cy - 703.0) < 8 and abs(lm.fov_r - 695.0) < 12
    assert lm.eye_estimate == ("right" if mirrored else "left")
    assert set(lm.to_dict()) == {"fov_cx", "fov_cy", "fov_r", "disc_x", "disc_y", "disc_r",
                                 "fovea_x", "fovea_y", "eye_estimate"}
    # the stand-alone functions agree with detect_landmarks
    assert find_fovea(img, lm.disc) == pytest.approx(lm.fovea, abs=1e-6)


def test_fovea_geometric_points_temporally():
    fx, fy = fovea_geometric((100.0, 200.0, 20.0), fov_cx=300.0)  # disc left of centre: left eye
    assert fx == pytest.approx(200.0) and fy == pytest.approx(210.0)
    fx, _ = fovea_geometric((500.0, 200.0, 20.0), fov_cx=300.0)
    assert fx == pytest.approx(400.0)


def test_laterality_convention_matches_demo_generator():
    from retcore.demo import base

    assert laterality_from_disc(1000.0, 700.0) == "right"
    assert laterality_from_disc(200.0, 700.0) == "left"
    # the demo's base photo is retina() and is recorded as a left eye with its disc on the left
    assert laterality_from_disc(base.RETINA_DISC_CENTRE_PX[0], base.RETINA_FOV_CENTRE_PX[0]) == base.BASE_EYE
    assert base.RETINA_DISC_CENTRE_PX == DISC_TRUE


def test_fov_threshold_matches_the_transforms():
    from retcore.data.transforms import DEFAULT_FOV_THRESHOLD

    assert FOV_THRESHOLD == DEFAULT_FOV_THRESHOLD
