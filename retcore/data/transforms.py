"""Field-of-view crop and the RETFound train / eval image transforms.

A colour fundus photo is a bright disk (the field of view, FOV) on a black
border whose width varies between cameras. Cropping to the FOV and padding to
a square first makes every image present the retina at the same scale before
the usual RETFound transforms run.

Transforms take a PIL RGB image and return a float32 tensor (3, S, S),
normalised with the ImageNet mean/std.

timm's posterize ops map the top of the magnitude range to 0 bits
(``PosterizeIncreasing``: ``4 - int(m / 10 * 4)``; with ``mstd0.5`` around
``m9`` the drawn magnitude is clipped to 10 in ~2% of the draws). The pinned
Pillow (13) refuses 0 bits (``ValueError: bits must be between or equal to 1
and 8``; Pillow without that check returned a black image), so RETFound's
policy ``rand-m9-mstd0.5-inc1`` crashed about one training image in 650.
:func:`build_train_transform` therefore clamps the bits of the posterize ops
of the augmentation it builds to [1, 8] (so the strongest magnitude keeps 1
bit, the harshest posterize Pillow performs); timm itself is not patched.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from timm.data import create_transform
from timm.data.auto_augment import AugmentOp, AugMixAugment, AutoAugment, RandAugment
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import transforms as T

__all__ = [
    "DEFAULT_FOV_THRESHOLD",
    "EVAL_CROP_PCT",
    "POSTERIZE_BITS",
    "ClampedPosterizeLevel",
    "FovCrop",
    "build_eval_transform",
    "build_train_transform",
    "clamp_posterize_bits",
    "fov_bbox",
    "fov_crop",
    "fov_square_box",
    "normalize_on_device",
]

DEFAULT_FOV_THRESHOLD = 20.0
"""Brightness (0..255, max over channels, smoothed) above which a pixel is inside the FOV."""

EVAL_CROP_PCT = 0.875
"""RETFound eval crop share for img_size <= 224: resize to int(224 / 0.875) = 256, center-crop 224."""

POSTERIZE_BITS = (1, 8)
"""Bits per channel Pillow's ``ImageOps.posterize`` accepts (1 = two levels, 8 = unchanged)."""

_WORK_SIDE = 512  # the FOV mask is computed on an image subsampled to at most this side
_MIN_FOV_FRACTION = 0.01  # a bright region smaller than this share of the image is not a FOV

Box = tuple[int, int, int, int]


def fov_bbox(rgb: np.ndarray, threshold: float = DEFAULT_FOV_THRESHOLD) -> Box:
    """Bounding box of the fundus field of view.

    The brightness (max over channels, robust to red-free photos) is subsampled
    to at most 512 px a side, box-smoothed (5x5), thresholded, and the largest
    connected bright region is taken, which ignores text or labels burnt into
    the black border; the box bounds the unsmoothed bright pixels of that region.

    Args:
        rgb: image, (H, W, 3) or (H, W), uint8.
        threshold: brightness 0..255 separating the FOV from the dark border.

    Returns:
        (x0, y0, x1, y1) in pixels, exclusive end (PIL crop convention);
        the full image (0, 0, W, H) when no region of at least 1% of the image
        is brighter than `threshold`. Precision: the subsampling step
        (ceil(max(H, W) / 512) px).
    """
    if rgb.ndim not in (2, 3) or (rgb.ndim == 3 and rgb.shape[2] not in (3, 4)):
        raise ValueError(f"fov_bbox needs an (H, W, 3) or (H, W) array, got shape {rgb.shape}")
    height, width = rgb.shape[:2]
    full: Box = (0, 0, width, height)
    if height == 0 or width == 0:
        return full
    step = max(1, math.ceil(max(height, width) / _WORK_SIDE))
    small = rgb[::step, ::step]
    # np.maximum over the three planes: the same values as .max(axis=2), ~20x faster (no strided reduce)
    brightness = np.maximum(np.maximum(small[:, :, 0], small[:, :, 1]), small[:, :, 2]) if small.ndim == 3 else small
    smooth = ndimage.uniform_filter(brightness.astype(np.float32), size=5, mode="nearest")
    labels, n = ndimage.label(smooth > threshold)
    if n == 0:
        return full
    sizes = np.bincount(labels.ravel())[1:]
    largest = int(np.argmax(sizes)) + 1
    if sizes[largest - 1] < _MIN_FOV_FRACTION * brightness.size:
        return full
    # Smoothing widens the region by ~2 samples: take the bbox of the raw bright
    # pixels inside it, so the box is tight while isolated border specks stay out.
    region = (labels == largest) & (brightness > threshold)
    if not region.any():
        region = labels == largest
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    x0, y0 = int(cols[0]) * step, int(rows[0]) * step
    x1, y1 = min(width, (int(cols[-1]) + 1) * step), min(height, (int(rows[-1]) + 1) * step)
    return (x0, y0, x1, y1)


def fov_square_box(img: Image.Image, threshold: float = DEFAULT_FOV_THRESHOLD) -> Box:
    """Square box centred on the FOV, side = the longer FOV side.

    The box may extend past the image; `PIL.Image.crop` fills that part with
    black (0), so the same box crops an aligned mask identically.

    Args:
        img: PIL image (any mode `numpy.asarray` turns into (H, W[, C]) uint8).
        threshold: see `fov_bbox`.

    Returns:
        (x0, y0, x1, y1) in pixels with x1 - x0 == y1 - y0.
    """
    x0, y0, x1, y1 = fov_bbox(np.asarray(img), threshold)
    w, h = x1 - x0, y1 - y0
    side = max(w, h)
    sx0, sy0 = x0 - (side - w) // 2, y0 - (side - h) // 2
    return (sx0, sy0, sx0 + side, sy0 + side)


def fov_crop(img: Image.Image, threshold: float = DEFAULT_FOV_THRESHOLD) -> Image.Image:
    """Crop to the fundus FOV and pad with black to a centred square.

    Args:
        img: PIL RGB image (other modes are converted to RGB).
        threshold: see `fov_bbox`.

    Returns:
        PIL RGB image of size (S, S), S = the longer side of the FOV box.
    """
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img.crop(fov_square_box(img, threshold))


class FovCrop:
    """Picklable transform wrapping `fov_crop` (usable in DataLoader workers)."""

    def __init__(self, threshold: float = DEFAULT_FOV_THRESHOLD) -> None:
        self.threshold = threshold

    def __call__(self, img: Image.Image) -> Image.Image:
        return fov_crop(img, self.threshold)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold={self.threshold})"


class ClampedPosterizeLevel:
    """A timm posterize level function whose bits are clamped to :data:`POSTERIZE_BITS`.

    Call: ``(magnitude: float, hparams: dict) -> (bits: int,)``, the bits of the
    wrapped timm function (e.g. ``PosterizeIncreasing``: 4 at magnitude 0 down
    to 0 at magnitude 10) limited to [1, 8], so the strongest magnitude keeps
    one bit per channel (the harshest posterize Pillow does) instead of
    raising. Picklable (DataLoader workers) as long as the wrapped function is
    a module-level function, as timm's are.
    """

    def __init__(self, level_fn: Callable[[float, dict], tuple[int]]) -> None:
        self.level_fn = level_fn

    def __call__(self, magnitude: float, hparams: dict) -> tuple[int]:
        (bits,) = self.level_fn(magnitude, hparams)
        low, high = POSTERIZE_BITS
        return (min(max(int(bits), low), high),)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self.level_fn, '__name__', self.level_fn)})"


def _augment_ops(step: object) -> list[AugmentOp]:
    """The timm ``AugmentOp`` objects inside one transform step (none for other steps)."""
    if isinstance(step, RandAugment | AugMixAugment):
        return list(step.ops)
    if isinstance(step, AutoAugment):
        return [op for sub_policy in step.policy for op in sub_policy]
    return []


def clamp_posterize_bits(steps: list[Callable]) -> int:
    """Clamp the bits of every timm posterize op inside ``steps`` to [1, 8], in place.

    Only the ``level_fn`` attribute of the ``AugmentOp`` instances found in
    the RandAugment / AutoAugment / AugMix steps of ``steps`` is wrapped in
    :class:`ClampedPosterizeLevel`; timm's module-level tables are untouched,
    so no other transform changes. Idempotent.

    Args:
        steps: transform steps, e.g. ``Compose.transforms``.

    Returns:
        number of posterize ops whose level function is (now) clamped.
    """
    ops = [op for step in steps for op in _augment_ops(step) if op.name.startswith("Posterize")]
    for op in ops:
        if not isinstance(op.level_fn, ClampedPosterizeLevel):
            op.level_fn = ClampedPosterizeLevel(op.level_fn)
    return len(ops)


def build_eval_transform(
    img_size: int = 224, *, crop_pct: float | None = None, fov: bool = True, normalize: bool = True
) -> Callable[[Image.Image], torch.Tensor]:
    """RETFound evaluation transform, preceded by the FOV crop.

    FovCrop -> Resize(int(img_size / crop_pct), bicubic; 256 for 224) ->
    CenterCrop(img_size) -> ToTensor (0..1) -> Normalize(ImageNet mean/std).

    Args:
        img_size: output side in pixels.
        crop_pct: share of the resized image kept by the centre crop; None =
            RETFound's rule, 0.875 for img_size <= 224, else 1.0.
        fov: apply the FOV crop first.
        normalize: False stops before ToTensor and returns the uint8 pixels (3, S, S):
            a quarter of the bytes to move from DataLoader workers to the device, where
            :func:`normalize_on_device` finishes the transform with the same arithmetic.

    Returns:
        Callable mapping a PIL RGB image to a float32 tensor (3, img_size, img_size)
        (uint8 0..255 when ``normalize`` is False).
    """
    if crop_pct is None:
        crop_pct = EVAL_CROP_PCT if img_size <= 224 else 1.0
    steps: list[Callable] = [FovCrop()] if fov else []
    steps += [
        T.Resize(int(img_size / crop_pct), interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop(img_size),
    ]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)] if normalize else [T.PILToTensor()]
    return T.Compose(steps)


def normalize_on_device(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (B, 3, H, W) from ``build_eval_transform(normalize=False)`` -> float32 model
    input, the arithmetic of ToTensor + Normalize (``x / 255``, then ``(x - mean) / std`` per
    channel), on the tensor's own device. Float input is returned unchanged."""
    if images.dtype != torch.uint8:
        return images
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return images.to(torch.float32).div_(255).sub_(mean).div_(std)


def build_train_transform(
    img_size: int = 224,
    *,
    auto_augment: str | None = "rand-m9-mstd0.5-inc1",
    re_prob: float = 0.25,
    re_mode: str = "pixel",
    re_count: int = 1,
    hflip: float = 0.5,
    vflip: float = 0.0,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    color_jitter: float | None = None,
    interpolation: str = "bicubic",
    fov: bool = True,
) -> Callable[[Image.Image], torch.Tensor]:
    """RETFound training transform (timm `create_transform`), preceded by the FOV crop.

    FovCrop -> RandomResizedCrop(img_size, scale, ratio, bicubic) ->
    RandomHorizontalFlip(hflip) -> RandAugment(`auto_augment`) -> ToTensor ->
    Normalize(ImageNet mean/std) -> RandomErasing(re_prob, mode `re_mode`).
    The posterize ops of the augmentation keep 1..8 bits at every magnitude
    (see :func:`clamp_posterize_bits`).

    Args:
        img_size: output side in pixels.
        auto_augment: timm policy string, or None to disable (small demo data).
        re_prob: RandomErasing probability (0 disables it).
        re_mode: RandomErasing fill ('pixel' = per-pixel normal noise).
        re_count: erased boxes per image.
        hflip: horizontal flip probability.
        vflip: vertical flip probability.
        scale: RandomResizedCrop area range (share of the image).
        ratio: RandomResizedCrop aspect-ratio range.
        color_jitter: ColorJitter strength, only used when `auto_augment` is
            None (RETFound: None).
        interpolation: resize interpolation.
        fov: apply the FOV crop first.

    Returns:
        Callable mapping a PIL RGB image to a float32 tensor (3, img_size, img_size).
    """
    timm_transform = create_transform(
        img_size,
        is_training=True,
        scale=scale,
        ratio=ratio,
        hflip=hflip,
        vflip=vflip,
        color_jitter=color_jitter,
        auto_augment=auto_augment,
        interpolation=interpolation,
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        re_prob=re_prob,
        re_mode=re_mode,
        re_count=re_count,
    )
    steps = list(timm_transform.transforms) if isinstance(timm_transform, T.Compose) else [timm_transform]
    clamp_posterize_bits(steps)
    return T.Compose([FovCrop(), *steps] if fov else steps)
