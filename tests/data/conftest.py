"""Fixtures for retcore.data tests: tiny synthetic images written under tmp_path."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _fundus(
    size: tuple[int, int] = (300, 200),
    center: tuple[int, int] = (170, 95),
    radius: int = 80,
    color: tuple[int, int, int] = (200, 90, 40),
) -> Image.Image:
    """Black image (W, H) = size with a bright reddish disk: a synthetic fundus photo."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    inside = (xx - center[0]) ** 2 + (yy - center[1]) ** 2 < radius**2
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[inside] = color
    return Image.fromarray(rgb, "RGB")


@pytest.fixture
def make_fundus() -> Callable[..., Image.Image]:
    """Factory: make_fundus(size=(W, H), center=(x, y), radius=r, color=(r, g, b)) -> PIL RGB."""
    return _fundus


@pytest.fixture
def write_image(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write_image(relpath, img=None, **save_kwargs) saves under tmp_path and returns the path."""

    def write(relpath: str, img: Image.Image | None = None, **save_kwargs: object) -> Path:
        path = tmp_path / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        (img if img is not None else _fundus(size=(64, 48), center=(32, 24), radius=20)).save(path, **save_kwargs)
        return path

    return write
