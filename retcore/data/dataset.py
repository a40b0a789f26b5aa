"""PyTorch dataset over `ImageRecord`s."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from retcore.data.ingest import load_rgb
from retcore.data.records import ImageRecord

__all__ = ["FundusDataset"]


def _to_float_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float32 tensor (3, H, W) in 0..1 (used when no transform is given)."""
    return pil_to_tensor(img).float().div_(255.0)


class FundusDataset(Dataset[tuple[torch.Tensor, int, int]]):
    """Images of `records`, decoded with `load_rgb` and passed through `transform`.

    Item i is ``(image, label_index, i)``:
        image: float32 tensor (3, H, W) from `transform` (e.g.
            `build_eval_transform`), or uint8 when the transform returns uint8
            (``build_eval_transform(normalize=False)``); without a transform the
            RGB pixels in 0..1.
        label_index: position of the record's label in `class_names`, or -1
            when the label is not one of them (e.g. unlabelled images).
        i: the item's index in `records`, to map predictions back.

    Raises (on access): `retcore.errors.DataError` for an unusable image.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        class_names: Sequence[str],
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
    ) -> None:
        self.records = list(records)
        self.class_names = list(class_names)
        self.transform = transform
        self._index = {name: i for i, name in enumerate(self.class_names)}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def targets(self) -> list[int]:
        """Label index of every record (-1 for labels outside `class_names`), e.g. for samplers."""
        return [self._index.get(r.label, -1) for r in self.records]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        record = self.records[index]
        img = load_rgb(record.path)
        image = self.transform(img) if self.transform is not None else _to_float_tensor(img)
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"transform must return a torch.Tensor, got {type(image).__name__}")
        if image.dtype != torch.uint8:  # uint8 pixels stay uint8 (normalised on the device)
            image = image.float()
        return image, self._index.get(record.label, -1), index
