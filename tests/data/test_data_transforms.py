from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from retcore.data import build_eval_transform, build_train_transform, fov_bbox, fov_crop, fov_square_box

MakeFundus = Callable[..., Image.Image]


def bright_bbox(img: Image.Image, level: int = 20) -> tuple[int, int, int, int]:
    """Exclusive bbox of pixels brighter than `level`."""
    bright = np.asarray(img).max(axis=2) > level
    rows, cols = np.flatnonzero(bright.any(axis=1)), np.flatnonzero(bright.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def test_fov_bbox_of_synthetic_disk_ignores_border_text(make_fundus: MakeFundus) -> None:
    img = make_fundus(size=(300, 200), center=(170, 95), radius=80)
    rgb = np.asarray(img).copy()
    rgb[185:195, 5:40] = 255  # burnt-in label text in the black border
    bbox = fov_bbox(rgb)
    assert np.allclose(bbox, (90, 15, 250, 175), atol=2)


def test_fov_crop_is_square_and_tight(make_fundus: MakeFundus) -> None:
    img = make_fundus(size=(300, 200), center=(170, 95), radius=80)
    crop = fov_crop(img)
    assert crop.mode == "RGB"
    assert abs(crop.size[0] - 160) <= 2 and crop.size[0] == crop.size[1]
    x0, y0, x1, y1 = bright_bbox(crop)
    assert max(x0, y0, crop.size[0] - x1, crop.size[1] - y1) <= 2  # the disk fills the square


def test_fov_crop_pads_a_clipped_disk_with_black(make_fundus: MakeFundus) -> None:
    # FOV wider than the image is tall: top and bottom of the disk are cut off
    img = make_fundus(size=(400, 300), center=(200, 150), radius=180)
    box = fov_square_box(img)
    assert box[2] - box[0] == box[3] - box[1]
    crop = fov_crop(img)
    assert abs(crop.size[0] - 360) <= 2 and crop.size[0] == crop.size[1]
    rgb = np.asarray(crop)
    pad = (crop.size[1] - 300) // 2
    assert (rgb[: pad - 1] == 0).all() and (rgb[-(pad - 1):] == 0).all()  # black bands, centred
    assert abs(bright_bbox(crop)[1] - pad) <= 1


def test_fov_bbox_falls_back_to_full_image() -> None:
    assert fov_bbox(np.zeros((50, 80, 3), np.uint8)) == (0, 0, 80, 50)
    speck = np.zeros((50, 80, 3), np.uint8)
    speck[10, 10] = 255  # far below 1% of the image
    assert fov_bbox(speck) == (0, 0, 80, 50)
    assert fov_bbox(np.full((50, 80), 128, np.uint8)) == (0, 0, 80, 50)


def test_fov_bbox_real_fundus_photo() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    rgb = skimage_data.retina()  # 1411 x 1411, FOV disk spans about x 8..1401, y 6..1400
    assert rgb.shape == (1411, 1411, 3)
    x0, y0, x1, y1 = fov_bbox(rgb)
    assert np.allclose((x0, y0, x1, y1), (8, 6, 1401, 1400), atol=6)
    crop = fov_crop(Image.fromarray(rgb))
    assert crop.size[0] == crop.size[1] and abs(crop.size[0] - 1394) <= 12


def test_eval_transform_shape_and_normalisation() -> None:
    transform = build_eval_transform(224)
    gray = Image.new("RGB", (300, 200), (128, 128, 128))  # no dark border: FOV = whole image
    out = transform(gray)
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    expected = (128 / 255 - torch.tensor(IMAGENET_DEFAULT_MEAN)) / torch.tensor(IMAGENET_DEFAULT_STD)
    centre = out[:, 80:144, 80:144].mean(dim=(1, 2))  # away from the black padding bands
    assert torch.allclose(centre, expected, atol=1e-2)
    assert "Resize(size=256" in repr(transform) and "CenterCrop(size=(224, 224))" in repr(transform)


def test_uint8_eval_transform_normalised_on_device_is_the_float_transform() -> None:
    """What predict sends to the device (uint8, a quarter of the bytes) becomes, bit for bit, the
    float input of the plain transform; on a real fundus photograph."""
    from skimage.data import retina

    from retcore.data import normalize_on_device

    photo = Image.fromarray(retina()).resize((512, 512), Image.Resampling.BICUBIC)
    pixels = build_eval_transform(224, normalize=False)(photo)
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 224, 224)
    expected = build_eval_transform(224)(photo)
    assert torch.equal(normalize_on_device(pixels.unsqueeze(0))[0], expected)
    assert normalize_on_device(expected) is expected  # float input passes through


def test_eval_transform_other_size(make_fundus: MakeFundus) -> None:
    out = build_eval_transform(64)(make_fundus())
    assert out.shape == (3, 64, 64)
    assert repr(build_eval_transform(384)).count("Resize(size=384") == 1  # RETFound: crop_pct 1.0 above 224


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"auto_augment": None, "scale": (0.6, 1.0), "re_prob": 0.0}],
)
def test_train_transform_shape(make_fundus: MakeFundus, kwargs: dict) -> None:
    torch.manual_seed(0)
    transform = build_train_transform(96, **kwargs)
    img = make_fundus()
    for _ in range(3):
        out = transform(img)
        assert out.shape == (3, 96, 96) and out.dtype == torch.float32
    text = repr(transform)
    assert text.startswith("Compose(\n    FovCrop")
    assert ("RandAugment" in text) == ("auto_augment" not in kwargs)


def test_transforms_pickle_for_dataloader_workers() -> None:
    for transform in (build_eval_transform(64), build_train_transform(64)):
        assert pickle.loads(pickle.dumps(transform)) is not None
