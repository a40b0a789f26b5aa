"""Display helpers: bilinear upsampling and per-map normalisation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from retcore.explain import clip_percentile, normalize_minmax, normalize_sum, upsample


def test_upsample_is_bilinear() -> None:
    grid = torch.arange(24, dtype=torch.float32).view(2, 3, 4)
    up = upsample(grid, (48, 64))
    assert up.shape == (2, 48, 64)
    expected = F.interpolate(grid[:, None], size=(48, 64), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(up, expected)
    assert upsample(grid[0], (6, 8)).shape == (6, 8)
    torch.testing.assert_close(upsample(torch.ones(1, 2, 2), (9, 7)), torch.ones(1, 9, 7))


def test_normalize_minmax() -> None:
    maps = torch.tensor([[[1.0, 3.0], [2.0, -1.0]], [[5.0, 5.0], [5.0, 5.0]]])
    out = normalize_minmax(maps)
    torch.testing.assert_close(out[0], torch.tensor([[0.5, 1.0], [0.75, 0.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))  # a constant map has no range


def test_normalize_sum() -> None:
    maps = torch.tensor([[[1.0, 3.0], [-2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    out = normalize_sum(maps)
    torch.testing.assert_close(out[0], torch.tensor([[0.25, 0.75], [0.0, 0.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))
    torch.testing.assert_close(normalize_sum(maps, positive=False)[0].sum(), torch.tensor(1.0))


def test_clip_percentile() -> None:
    maps = torch.arange(101, dtype=torch.float32).view(1, 1, 101)
    torch.testing.assert_close(clip_percentile(maps, 90.0).max(), torch.tensor(90.0))
    out = clip_percentile(maps, upper=99.0, lower=10.0)
    assert float(out.min()) == 10.0 and float(out.max()) == 99.0
    with pytest.raises(ValueError, match="outside"):
        clip_percentile(maps, 120.0)
