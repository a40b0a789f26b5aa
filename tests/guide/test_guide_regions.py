"""Allowed regions of each guide kind."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from retcore.anatomy import Landmarks
from retcore.errors import DataError
from retcore.guide import GuideContext, GuideSpec, allowed_region, list_guides


def _fundus(h: int = 80, w: int = 100) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[np.hypot(xs - 50, ys - 40) <= 36] = (180, 80, 40)
    return rgb


LM = Landmarks(fov_cx=50, fov_cy=40, fov_r=36, disc_x=25, disc_y=40, disc_r=5, fovea_x=55, fovea_y=40,
               eye_estimate="left")


def test_registry_lists_the_three_kinds() -> None:
    assert list_guides() == ["center", "anatomy", "mask"]  # registration order
    with pytest.raises(ValueError, match="unknown guide 'nope'"):
        allowed_region(GuideContext(_fundus(), "normal"), GuideSpec("nope"))


def test_center_disk_has_the_requested_radius() -> None:
    rgb = _fundus()
    region = allowed_region(GuideContext(rgb, "glaucoma", fov=(50, 40, 36)), GuideSpec("center", radius=0.5))
    assert region.shape == (80, 100) and region[40, 50] and not region[40, 50 + 19] and region[40, 50 + 17]
    # the FOV is measured from the pixels when not given
    measured = allowed_region(GuideContext(rgb, "glaucoma"), GuideSpec("center", radius=0.5))
    assert (measured != region).mean() < 0.02


def test_anatomy_is_class_aware() -> None:
    rgb = _fundus()
    spec = GuideSpec("anatomy")
    glaucoma = allowed_region(GuideContext(rgb, "glaucoma", landmarks=LM), spec)
    ys, xs = np.nonzero(glaucoma)
    assert abs(xs.mean() - 25) < 1 and abs(ys.mean() - 40) < 1 and xs.max() - xs.min() <= 16  # 3 x disc_r box
    cataract = allowed_region(GuideContext(rgb, "cataract", landmarks=LM), spec)
    assert cataract[40, 50] and not cataract[40, 25]
    dr = allowed_region(GuideContext(rgb, "diabetic_retinopathy", landmarks=LM), spec)
    assert dr[40, 55] and dr[40, 27] and not dr[40, 88]  # macula and disc in, far temporal periphery out
    normal = allowed_region(GuideContext(rgb, "normal", landmarks=LM), spec)
    assert normal.sum() == pytest.approx(np.pi * 36 ** 2, rel=0.05)


def test_mask_uses_the_requested_bits(tmp_path) -> None:
    rgb = _fundus()
    bits = np.zeros((40, 50), np.uint8)  # half resolution: resized with nearest
    bits[5:10, 5:10] = 1  # lesion
    bits[20:25, 20:25] = 2  # disc
    bits[30:35, 30:35] = 4  # marker
    Image.fromarray(bits).save(tmp_path / "m.png")
    lesion = allowed_region(GuideContext(rgb, "glaucoma", mask_path=str(tmp_path / "m.png")), GuideSpec("mask"))
    assert lesion.sum() == 100 and lesion[12, 12] and not lesion[62, 62]
    both = allowed_region(GuideContext(rgb, "glaucoma", mask_path=str(tmp_path / "m.png")),
                          GuideSpec("mask", mask_bits=3))
    assert both.sum() == 200
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "empty.png")
    assert allowed_region(GuideContext(rgb, "normal", mask_path=str(tmp_path / "empty.png")), GuideSpec("mask")) is None
    assert allowed_region(GuideContext(rgb, "normal"), GuideSpec("mask")) is None
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="bad.png"):
        allowed_region(GuideContext(rgb, "normal", mask_path=str(tmp_path / "bad.png")), GuideSpec("mask"))
