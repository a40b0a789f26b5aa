"""Where original-image pixels land in the model input (the eval transform's geometry).

The evaluation transform is FOV square crop -> resize to ``R = int(S /
crop_pct)`` -> centre crop ``S``. Explanation maps live in that ``S x S``
input frame; landmarks are detected on the original photo. :class:`InputFrame`
maps points and radii between the two, and :func:`to_input_view` renders an
image or mask into the input frame exactly as the model saw it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from retcore.data.transforms import EVAL_CROP_PCT, fov_square_box

__all__ = ["InputFrame", "input_frame", "to_input_view"]


@dataclass(frozen=True)
class InputFrame:
    """Geometry of one image's eval transform.

    ``box`` is the square FOV box ``(x0, y0, x1, y1)`` in original pixels,
    ``resized`` the side after resizing (pixels), ``size`` the input side.
    """

    box: tuple[int, int, int, int]
    resized: int
    size: int

    @property
    def scale(self) -> float:
        """Input pixels per original pixel."""
        return self.resized / (self.box[2] - self.box[0])

    @property
    def offset(self) -> float:
        """Pixels cut on each side by the centre crop (in resized pixels)."""
        return (self.resized - self.size) / 2

    def point_to_input(self, x: float, y: float) -> tuple[float, float]:
        """Original pixel coordinates -> input pixel coordinates (float)."""
        return ((x - self.box[0]) * self.scale - self.offset, (y - self.box[1]) * self.scale - self.offset)

    def length_to_input(self, r: float) -> float:
        """A length (e.g. a radius) in original pixels -> input pixels."""
        return r * self.scale


def input_frame(img: Image.Image, img_size: int, crop_pct: float | None = None) -> InputFrame:
    """The :class:`InputFrame` of ``img`` under ``build_eval_transform(img_size, crop_pct)``."""
    if crop_pct is None:
        crop_pct = EVAL_CROP_PCT if img_size <= 224 else 1.0
    return InputFrame(fov_square_box(img), int(img_size / crop_pct), img_size)


def to_input_view(img: Image.Image, frame: InputFrame, *, nearest: bool = False) -> np.ndarray:
    """Render ``img`` (RGB photo or single-channel mask aligned with it) in the input frame.

    Uses the photo's FOV box (so a mask follows its photo). Returns (S, S, C)
    or (S, S) uint8. ``nearest`` keeps mask values exact; photos use bicubic
    resampling like the model's transform.
    """
    square = img.crop(frame.box)
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BICUBIC
    resized = square.resize((frame.resized, frame.resized), resample)
    off = int(round(frame.offset))
    return np.asarray(resized.crop((off, off, off + frame.size, off + frame.size)))
