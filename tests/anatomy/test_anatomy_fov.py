"""FOV mask and circle on synthetic photos with known geometry."""
from __future__ import annotations

import math

import numpy as np
import pytest

from retcore.anatomy import fov_circle, fov_mask


def _disk_image(h: int, w: int, cx: float, cy: float, r: float, value=(180, 90, 60)) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    inside = np.hypot(xs - cx, ys - cy) <= r
    img = np.zeros((h, w, 3), np.uint8)
    img[inside] = value
    return img


def test_fov_mask_matches_disk_and_removes_clutter():
    img = _disk_image(200, 240, 120.0, 100.0, 80.0)
    truth = img[..., 0] > 0
    img[99:102, 195:235] = (200, 200, 200)  # a 3-px thin spur sticking out of the FOV
    img[5:8, 5:30] = (255, 255, 255)  # burnt-in text in the black border
    img[95:105, 115:125] = (0, 0, 0)  # a dark hole inside the FOV (e.g. a black lesion)
    m = fov_mask(img)
    assert m.dtype == bool and m.shape == (200, 240)
    iou = (m & truth).sum() / (m | truth).sum()
    assert iou > 0.97
    assert not m[6, 10], "border text must not join the FOV"
    assert m[100, 120], "holes inside the FOV are filled"
    assert not m[100, 232], "the thin spur is removed by the opening"


def test_fov_mask_without_border_is_whole_image():
    assert fov_mask(np.zeros((20, 30, 3), np.uint8)).all()
    assert fov_mask(np.full((20, 30, 3), 120, np.uint8)).all()


@pytest.mark.parametrize("cx,cy,r", [(120.0, 100.0, 80.0), (100.3, 97.7, 61.5)])
def test_fov_circle_of_a_full_disk(cx, cy, r):
    m = _disk_image(200, 240, cx, cy, r)[..., 0] > 0
    fx, fy, fr = fov_circle(m)
    assert abs(fx - cx) < 0.5 and abs(fy - cy) < 0.5 and abs(fr - r) < 0.8


def test_fov_circle_recovers_a_cut_off_disk():
    # the circle extends past the top and bottom of the frame (cropped or shifted photos)
    m = _disk_image(160, 240, 120.0, 70.0, 95.0)[..., 0] > 0
    fx, fy, fr = fov_circle(m)
    assert abs(fx - 120.0) < 1.0 and abs(fy - 70.0) < 1.0 and abs(fr - 95.0) < 1.0
    area_r = math.sqrt(m.sum() / math.pi)
    assert abs(area_r - 95.0) > 3.0  # the area-equivalent radius would be wrong


def test_fov_circle_ignores_a_notch_outlier():
    m = _disk_image(200, 200, 100.0, 100.0, 80.0)[..., 0] > 0
    m[20:40, 150:175] = True  # a tab attached to the rim
    fx, fy, fr = fov_circle(m)
    assert abs(fx - 100.0) < 1.0 and abs(fy - 100.0) < 1.0 and abs(fr - 80.0) < 1.0


def test_fov_circle_fallback_for_tiny_masks():
    m = np.zeros((10, 10), bool)
    m[4:6, 4:6] = True
    cx, cy, r = fov_circle(m)
    assert (cx, cy) == (5.0, 5.0) and r == pytest.approx(math.sqrt(4 / math.pi))
