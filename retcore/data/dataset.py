"""PyTorch dataset over `ImageRecord`s."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from retcore.data.ingest import load_rgb
from retcore.data.records import ImageRecord
from retcore.errors import DataError

__all__ = ["FundusDataset", "collate_skipping"]


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

    Raises (on access): `retcore.errors.DataError` for an unusable image — or, with
    ``skip_unreadable=True``, item i of such an image is ``(None, label_index, i, reason)``
    (a missing, empty, corrupt or truncated file; reason is one line), to be dropped by
    :func:`collate_skipping`.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        class_names: Sequence[str],
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        *,
        skip_unreadable: bool = False,
    ) -> None:
        self.records = list(records)
        self.class_names = list(class_names)
        self.transform = transform
        self.skip_unreadable = skip_unreadable
        self._index = {name: i for i, name in enumerate(self.class_names)}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def targets(self) -> list[int]:
        """Label index of every record (-1 for labels outside `class_names`), e.g. for samplers."""
        return [self._index.get(r.label, -1) for r in self.records]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        record = self.records[index]
        try:
            img = load_rgb(record.path)
        except DataError as exc:
            if not self.skip_unreadable:
                raise
            return None, self._index.get(record.label, -1), index, str(exc).splitlines()[0]  # type: ignore[return-value]
        image = self.transform(img) if self.transform is not None else _to_float_tensor(img)
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"transform must return a torch.Tensor, got {type(image).__name__}")
        if image.dtype != torch.uint8:  # uint8 pixels stay uint8 (normalised on the device)
            image = image.float()
        return image, self._index.get(record.label, -1), index


def collate_skipping(items: list[tuple]) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, list[tuple[int, str]]]:
    """``collate_fn`` for a ``FundusDataset(skip_unreadable=True)``.

    Returns ``(images, labels, indices, failed)``: the stacked images (b, 3, H, W) of the readable
    items (None when none is), their label indices and dataset indices (b,), and ``(index, reason)``
    of every unreadable item of the batch.
    """
    ok = [it for it in items if it[0] is not None]
    failed = [(int(it[2]), str(it[3])) for it in items if it[0] is None]
    images = torch.stack([it[0] for it in ok]) if ok else None
    labels = torch.tensor([it[1] for it in ok], dtype=torch.long)
    indices = torch.tensor([it[2] for it in ok], dtype=torch.long)
    return images, labels, indices, failed
