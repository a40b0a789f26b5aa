from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from retcore.data import FundusDataset, ImageRecord, build_eval_transform
from retcore.errors import DataError


def test_items(write_image: Callable[..., Path]) -> None:
    paths = [write_image(f"{i}.png") for i in range(3)]
    records = [ImageRecord(path=str(p), label=label) for p, label in zip(paths, ["b", "a", "unlabelled"])]
    ds = FundusDataset(records, ["a", "b"], build_eval_transform(32))
    assert len(ds) == 3 and ds.targets == [1, 0, -1]
    image, label, index = ds[2]
    assert isinstance(image, torch.Tensor) and image.dtype == torch.float32 and image.shape == (3, 32, 32)
    assert (type(label), type(index), label, index) == (int, int, -1, 2)

    images, labels, indices = next(iter(DataLoader(ds, batch_size=3)))
    assert images.shape == (3, 3, 32, 32)
    assert labels.tolist() == [1, 0, -1] and indices.tolist() == [0, 1, 2]


def test_without_transform_gives_unit_range_pixels(write_image: Callable[..., Path]) -> None:
    path = write_image("x.png")
    image, label, _ = FundusDataset([ImageRecord(path=str(path), label="a")], ["a"])[0]
    assert image.shape == (3, 48, 64) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0 and label == 0


def test_bad_image_raises_data_error(tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_text("nope")
    ds = FundusDataset([ImageRecord(path=str(tmp_path / "bad.jpg"), label="a")], ["a"])
    with pytest.raises(DataError, match="bad.jpg"):
        ds[0]
