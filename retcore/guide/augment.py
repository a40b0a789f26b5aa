"""RandAugment for an image and its mask together (guided fine-tuning).

torchvision's ``v2.RandAugment`` refuses ``Mask`` inputs (its photometric ops
are undefined on labels), and applying it to the image alone would let its
geometric ops move the image away from the mask. :class:`JointRandAugment`
draws ops the way ``RandAugment(num_ops, magnitude)`` does (same 14 ops, same
magnitude table, random sign) and applies the geometric ones (shear,
translate, rotate) to both, the mask with nearest-neighbour interpolation and
fill 0 (outside the image nothing is allowed), the photometric ones to the
image only.
"""
from __future__ import annotations

import math

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

__all__ = ["GEOMETRIC_OPS", "PHOTOMETRIC_OPS", "JointRandAugment"]

GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
PHOTOMETRIC_OPS = ("Identity", "Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
                   "AutoContrast", "Equalize")


def _magnitude(op: str, level: float, height: int, width: int) -> float:
    """Magnitude of ``op`` at ``level`` in [0, 1] (RandAugment's table: ``magnitude / (bins - 1)``)."""
    table = {"ShearX": 0.3, "ShearY": 0.3, "TranslateX": 150.0 / 331.0 * width,
             "TranslateY": 150.0 / 331.0 * height, "Rotate": 30.0, "Brightness": 0.9, "Color": 0.9,
             "Contrast": 0.9, "Sharpness": 0.9}
    if op in table:
        return table[op] * level
    if op == "Posterize":
        return float(max(1, round(8 - 4 * level)))  # 8 bits at level 0 .. 4 bits at level 1, never 0
    if op == "Solarize":
        return 1.0 - level
    return 0.0


def _geometric(x: torch.Tensor, op: str, m: float, interpolation: InterpolationMode, fill: float) -> torch.Tensor:
    if op == "Rotate":
        return F.rotate(x, angle=m, interpolation=interpolation, fill=fill)
    shear = {"ShearX": [math.degrees(math.atan(m)), 0.0], "ShearY": [0.0, math.degrees(math.atan(m))]}.get(op)
    if shear is not None:
        return F.affine(x, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, interpolation=interpolation,
                        fill=fill, center=[0, 0])
    translate = [int(m), 0] if op == "TranslateX" else [0, int(m)]
    return F.affine(x, angle=0.0, translate=translate, scale=1.0, shear=[0.0, 0.0], interpolation=interpolation,
                    fill=fill)


def _photometric(img: torch.Tensor, op: str, m: float) -> torch.Tensor:
    if op == "Brightness":
        return F.adjust_brightness(img, 1.0 + m)
    if op == "Color":
        return F.adjust_saturation(img, 1.0 + m)
    if op == "Contrast":
        return F.adjust_contrast(img, 1.0 + m)
    if op == "Sharpness":
        return F.adjust_sharpness(img, 1.0 + m)
    if op == "Posterize":
        return F.posterize(img, bits=int(m))
    if op == "Solarize":
        return F.solarize(img, threshold=255.0 * m)
    if op == "AutoContrast":
        return F.autocontrast(img)
    if op == "Equalize":
        return F.equalize(img)
    return img


class JointRandAugment(torch.nn.Module):
    """``(image (3, H, W) uint8, mask (1, H, W) uint8) -> (image, mask)``, both augmented by the same ops.

    ``num_ops`` ops per call from :data:`GEOMETRIC_OPS` + :data:`PHOTOMETRIC_OPS`
    (uniformly, as RandAugment), each at ``magnitude / (num_magnitude_bins - 1)``
    of its range, signed ops negated with probability 0.5. Randomness comes
    from ``torch``'s global generator (seeded per DataLoader worker).
    """

    ops = GEOMETRIC_OPS + PHOTOMETRIC_OPS
    signed = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
              "Sharpness"}

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31,
                 interpolation: InterpolationMode = InterpolationMode.NEAREST) -> None:
        super().__init__()
        if num_ops < 0 or not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"need num_ops >= 0 and 0 <= magnitude < {num_magnitude_bins}, "
                             f"got {num_ops}, {magnitude}")
        self.num_ops, self.level = num_ops, magnitude / (num_magnitude_bins - 1)
        self.interpolation = interpolation

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = image.shape[-2:]
        for _ in range(self.num_ops):
            op = self.ops[int(torch.randint(len(self.ops), ()))]
            m = _magnitude(op, self.level, height, width)
            if op in self.signed and torch.rand(()) <= 0.5:
                m = -m
            if op in GEOMETRIC_OPS:
                image = _geometric(image, op, m, self.interpolation, 0.0)
                mask = _geometric(mask, op, m, InterpolationMode.NEAREST, 0.0)
            else:
                image = _photometric(image, op, m)
        return image, mask
