"""Unit tests of the dashboard helpers: colour maps, overlays, downloads (rerun commands: tests/jobs/test_rerun.py)."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd


def test_colorize_and_overlay():
    from dashboard.images import COLORMAPS, colorize, overlay

    ramp = np.linspace(0, 1, 11)[None]
    for name, anchors in COLORMAPS.items():
        rgb = colorize(ramp, name)
        assert rgb.shape == (1, 11, 3) and rgb.dtype == np.uint8
        assert tuple(rgb[0, 0]) == anchors[0] and tuple(rgb[0, -1]) == anchors[-1]
    photo = np.full((4, 4, 3), 100, np.uint8)
    assert (overlay(photo, np.zeros((4, 4)), alpha=1.0) == photo).all()  # a cold map leaves the photo
    hot = overlay(photo, np.ones((4, 4)), "gray", alpha=1.0)
    assert (hot == 255).all()


def test_display_map_upsamples_and_normalises():
    from dashboard.images import display_map

    grid = np.zeros((4, 4), np.float32)
    grid[1, 2] = 5.0
    grid[0, 0] = -3.0
    heat = display_map(grid, 32)
    assert heat.shape == (32, 32) and heat.min() >= 0 and heat.max() <= 1
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert 8 <= y < 16 and 16 <= x < 24
    assert display_map(np.zeros((4, 4)), 8).max() == 0


def test_download_renderers_produce_each_format():
    from dashboard.ui import _renderer, slug

    chart = alt.Chart(pd.DataFrame({"x": [1, 2], "y": [3, 4]})).mark_point().encode(x="x:Q", y="y:Q")
    assert _renderer(chart, "svg")().lstrip().startswith(b"<svg")
    assert _renderer(chart, "png")()[:4] == b"\x89PNG"
    assert _renderer(chart, "pdf")()[:4] == b"%PDF"
    assert slug("Drift matrix: lrp/run 1") == "drift-matrix-lrp-run-1"
