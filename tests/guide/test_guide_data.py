"""Images and allowed masks are augmented together."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from retcore.data.records import ImageRecord
from retcore.guide import GuidedDataset, GuideSpec, JointTrainTransform
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


def test_mask_follows_random_crops_and_flips() -> None:
    torch.manual_seed(0)
    h = w = 96
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    fov = np.hypot(xs - 48, ys - 48) <= 44
    region = fov & (xs < 40)  # the left part of the fundus
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[fov] = (60, 60, 60)
    rgb[region] = (250, 250, 250)  # the image shows exactly where the mask is
    tf = JointTrainTransform(48, scale=(0.3, 1.0), hflip=0.5)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(3, 1, 1)
    for _ in range(20):
        image, allowed = tf(Image.fromarray(rgb), region)
        assert image.shape == (3, 48, 48) and allowed.shape == (1, 48, 48)
        bright = ((image * std + mean).mean(0) > 0.6).float()
        assert set(allowed.unique().tolist()) <= {0.0, 1.0}
        assert (bright != allowed[0]).float().mean() < 0.06  # only the resampled border differs


def test_guided_dataset_items(tmp_path) -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    ys, xs = np.mgrid[0:64, 0:64] + 0.5
    img[np.hypot(xs - 32, ys - 32) <= 30] = (170, 90, 50)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray((np.hypot(xs - 32, ys - 32) <= 8).astype(np.uint8)).save(tmp_path / "m.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "empty.png")
    recs = [ImageRecord(path=str(tmp_path / "a.png"), label="glaucoma", mask_path=str(tmp_path / "m.png")),
            ImageRecord(path=str(tmp_path / "a.png"), label="normal", mask_path=str(tmp_path / "empty.png"))]
    ds = GuidedDataset(recs, ["glaucoma", "normal"], GuideSpec("mask"), JointTrainTransform(32, scale=(1.0, 1.0)),
                       progress=False)
    image, label, index, allowed, weight = ds[0]
    assert image.shape == (3, 32, 32) and label == 0 and index == 0 and weight == 1.0
    assert 0 < float(allowed.mean()) < 0.3
    *_, allowed_empty, weight_empty = ds[1]
    assert weight_empty == 0.0 and float(allowed_empty.mean()) == 1.0
    assert ds.targets == [0, 1]
    center = GuidedDataset(recs, ["glaucoma", "normal"], GuideSpec("center", radius=0.5),
                           JointTrainTransform(32, scale=(1.0, 1.0), hflip=0.0), progress=False)
    _, _, _, allowed_c, _ = center[0]
    assert 0.15 < float(allowed_c.mean()) < 0.25  # pi/4 * 0.5^2 of the square FOV crop ~ 0.196
