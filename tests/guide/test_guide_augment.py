"""JointRandAugment: RandAugment for an image and its mask, and the guided transform that uses it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from retcore.guide import JointTrainTransform
from retcore.guide.augment import GEOMETRIC_OPS, PHOTOMETRIC_OPS, JointRandAugment, _geometric, _magnitude, _photometric
from torchvision.transforms import InterpolationMode


def _square(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """An image whose red channel is 255 exactly where the mask is, plus texture elsewhere."""
    mask = torch.zeros(1, size, size, dtype=torch.uint8)
    mask[:, 16:40, 20:48] = 255
    image = torch.randint(0, 100, (3, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    image[0][mask[0] > 0] = 255
    return image, mask


@pytest.mark.parametrize("op", GEOMETRIC_OPS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_geometric_ops_move_image_and_mask_alike(op: str, sign: float) -> None:
    image, mask = _square()
    m = sign * _magnitude(op, 9 / 30, 64, 64)
    moved_image = _geometric(image, op, m, InterpolationMode.NEAREST, 0.0)
    moved_mask = _geometric(mask, op, m, InterpolationMode.NEAREST, 0.0)
    assert not torch.equal(moved_mask, mask)  # the op did move something
    a, b = moved_image[0] == 255, moved_mask[0] > 0
    assert (a & b).sum() / (a | b).sum() > 0.95


@pytest.mark.parametrize("op", PHOTOMETRIC_OPS)
def test_photometric_ops_change_the_image_only(op: str) -> None:
    image, mask = _square()
    out = _photometric(image, op, _magnitude(op, 9 / 30, 64, 64))
    assert out.shape == image.shape and out.dtype == torch.uint8
    joint = JointRandAugment(num_ops=1)
    joint.ops = (op,)
    _, same_mask = joint(image, mask)
    assert torch.equal(same_mask, mask)


def test_posterize_bits_stay_in_range_at_every_magnitude() -> None:
    for magnitude in range(31):
        bits = _magnitude("Posterize", magnitude / 30, 64, 64)
        assert 1 <= bits <= 8


def test_joint_rand_augment_never_raises_and_keeps_masks_binary() -> None:
    torch.manual_seed(0)
    image, mask = _square()
    joint = JointRandAugment(num_ops=2, magnitude=9)
    for _ in range(600):
        out, m = joint(image, mask)
        assert out.shape == image.shape and m.shape == mask.shape
        assert set(m.unique().tolist()) <= {0, 255}


def test_guided_transform_with_auto_augment_runs_on_an_image_and_mask() -> None:
    """torchvision's v2.RandAugment refused the mask: the guided recipe's default (auto augment) crashed."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8))
    allowed = np.zeros((80, 96), dtype=bool)
    allowed[20:60, 30:70] = True
    tf = JointTrainTransform(48, scale=(0.5, 1.0), auto_augment=True, re_prob=0.25)
    for _ in range(200):
        x, m = tf(img, allowed)
        assert x.shape == (3, 48, 48) and x.dtype == torch.float32 and torch.isfinite(x).all()
        assert m.shape == (1, 48, 48) and set(m.unique().tolist()) <= {0.0, 1.0}
