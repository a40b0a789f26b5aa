"""Unit tests of the dashboard helpers: rerun commands, colour maps, overlays, downloads."""
from __future__ import annotations

import json

import altair as alt
import numpy as np
import pandas as pd

from dashboard.commands import rerun_command


def test_recorded_command_is_returned_as_is():
    assert rerun_command("predict", "{}", "retcore predict --run r1 --split val", "p1") == \
        "retcore predict --run r1 --split val"


def test_finetune_command_is_rebuilt_from_config():
    cfg = {"finetune": {"model": "demo", "img_size": 64, "epochs": 2, "batch_size": 8, "blr": 1e-3,
                        "auto_augment": None, "crop_scale": [0.8, 1.0], "freeze_backbone": True, "seed": 3},
           "data": "/data/my set/manifest.csv", "val": 0.15, "test": 0.2, "split_seed": 0}
    cmd = rerun_command("finetune", json.dumps(cfg), "", "finetune-1", db="/tmp/r.duckdb")
    assert cmd.startswith("retcore finetune --data '/data/my set/manifest.csv' --model demo")
    for part in ("--epochs 2", "--batch-size 8", "--img-size 64", "--auto-augment none", "--crop-scale-min 0.8",
                 "--freeze-backbone", "--seed 3", "--test 0.2", "--db /tmp/r.duckdb"):
        assert part in cmd, part
    assert "--val" not in cmd and "--split-seed" not in cmd  # defaults are left out


def test_explain_and_unknown_jobs():
    cmd = rerun_command("explain", {"run": "f1", "methods": ["lrp", "gae"], "split": "test", "target": "label",
                                    "batch_size": 8, "faithfulness_images": 4}, None, "e1")
    assert cmd == "retcore explain --run f1 --methods lrp,gae --split test --target label --faithfulness-images 4"
    assert "--help" in rerun_command("pipeline", None, "", "x")


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
