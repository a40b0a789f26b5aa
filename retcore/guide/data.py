"""Training data of guided fine-tuning: images with their allowed regions, augmented together."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from tqdm.auto import tqdm

from retcore.anatomy import detect_landmarks, fov_circle, fov_mask
from retcore.data.ingest import load_rgb
from retcore.data.records import ImageRecord
from timm.data.constants import IMAGENET_DEFAULT_MEAN as IMAGENET_MEAN
from timm.data.constants import IMAGENET_DEFAULT_STD as IMAGENET_STD

from retcore.data.transforms import fov_square_box
from retcore.guide.augment import JointRandAugment
from retcore.guide.regions import NEEDS_FOV, NEEDS_LANDMARKS, GuideContext, GuideSpec, allowed_region

__all__ = ["GuidedDataset", "JointTrainTransform"]


class JointTrainTransform:
    """The training augmentation applied to an image and its allowed mask alike.

    FOV square crop -> RandomResizedCrop(img_size, scale, ratio; bicubic for the
    image, nearest for the mask) -> RandomHorizontalFlip -> [RandAugment(2, 9) as
    :class:`~retcore.guide.augment.JointRandAugment`: its geometric ops move the
    mask too, its photometric ops touch the image only] -> float, ImageNet normalisation ->
    [RandomErasing on the image only]. Same geometry as
    ``retcore.data.build_train_transform`` (torchvision v2 instead of timm, so
    the mask follows every random crop and flip).

    Call: ``(PIL RGB image, (H, W) bool mask) -> (image (3, S, S) float32, mask (1, S, S) float32)``.
    """

    def __init__(self, img_size: int, *, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip: float = 0.5,
                 auto_augment: bool = False, re_prob: float = 0.0) -> None:
        ops: list[object] = [
            v2.RandomResizedCrop(img_size, scale=scale, ratio=ratio, interpolation=InterpolationMode.BICUBIC,
                                 antialias=True),
            v2.RandomHorizontalFlip(hflip),
        ]
        self.geometry = v2.Compose(ops)
        self.rand_augment = JointRandAugment(num_ops=2, magnitude=9) if auto_augment else None
        self.normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
        self.erase = v2.RandomErasing(p=re_prob, value=0) if re_prob > 0 else None

    def __call__(self, img: Image.Image, allowed: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        box = fov_square_box(img)
        img = img.crop(box)
        mask = Image.fromarray(allowed.astype(np.uint8) * 255, mode="L").crop(box)
        image = tv_tensors.Image(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
        m = tv_tensors.Mask(torch.from_numpy(np.asarray(mask).copy())[None])
        image, m = self.geometry(image, m)
        if self.rand_augment is not None:
            image, m = self.rand_augment(image.as_subclass(torch.Tensor), m.as_subclass(torch.Tensor))
        out = self.normalize(image.as_subclass(torch.Tensor))
        if self.erase is not None:
            out = self.erase(out)
        return out, (m.as_subclass(torch.Tensor) > 127).float()


class GuidedDataset(Dataset):
    """Training images with the allowed region of a guide (``retcore.guide.regions``).

    Item i: ``(image (3, S, S) float32, label index, i, allowed (1, S, S) float32 in {0, 1},
    weight float)``; weight is 0 for an image without a region (e.g. an empty mask),
    so it contributes no penalty. Landmarks (``anatomy``) and FOV circles
    (``center``) are computed once at construction (progress bar), not per epoch.
    """

    def __init__(self, records: Sequence[ImageRecord], class_names: Sequence[str], spec: GuideSpec,
                 transform: JointTrainTransform, *, progress: bool = True) -> None:
        self.records = list(records)
        self.class_names = list(class_names)
        self.spec = spec
        self.transform = transform
        self._index = {name: i for i, name in enumerate(self.class_names)}
        self._landmarks: list[object | None] = [None] * len(self.records)
        self._fov: list[tuple[float, float, float] | None] = [None] * len(self.records)
        if spec.kind in NEEDS_FOV:
            for i, rec in enumerate(tqdm(self.records, desc=f"guide {spec.kind}: landmarks", unit="img",
                                         disable=not progress, leave=False)):
                rgb = np.asarray(load_rgb(rec.path))
                if spec.kind in NEEDS_LANDMARKS:
                    lm = detect_landmarks(rgb)
                    self._landmarks[i], self._fov[i] = lm, lm.fov
                else:
                    self._fov[i] = fov_circle(fov_mask(rgb))

    def __len__(self) -> int:
        return len(self.records)

    @property
    def targets(self) -> list[int]:
        """Label index of every record (-1 for labels outside ``class_names``)."""
        return [self._index.get(r.label, -1) for r in self.records]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, torch.Tensor, float]:
        rec = self.records[index]
        img = load_rgb(rec.path)
        rgb = np.asarray(img)
        ctx = GuideContext(rgb=rgb, label=rec.label, mask_path=str(rec.mask_path) if rec.mask_path else None,
                           landmarks=self._landmarks[index], fov=self._fov[index])  # type: ignore[arg-type]
        region = allowed_region(ctx, self.spec)
        weight = 1.0 if region is not None else 0.0
        if region is None:
            region = np.ones(rgb.shape[:2], bool)
        image, allowed = self.transform(img, region)
        return image, self._index.get(rec.label, -1), index, allowed, weight
