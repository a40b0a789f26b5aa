"""Means over images with bootstrap intervals, and the verdict per method."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retcore.sanity import SURVIVAL_THRESHOLD, summarize, verdicts
from retcore.stats import bootstrap_mean


def _rows(method: str, last: float, n: int = 20, modes=("cascading",), seed: int = 0) -> pd.DataFrame:
    """Rows of one method: similarity falls linearly from ~1 at the head to ``last`` at the stem."""
    rng = np.random.default_rng(seed)
    layers = ["head", "blocks.1", "blocks.0", "patch_embed"]
    out = []
    for mode in modes:
        for step, layer in enumerate(layers):
            centre = 1.0 + (last - 1.0) * step / (len(layers) - 1)
            for i in range(n):
                out.append({"method": method, "mode": mode, "step": step, "layer": layer, "image_id": f"im{i}",
                            "spearman": centre + rng.normal(0, 0.03), "ssim": centre + rng.normal(0, 0.03)})
    return pd.DataFrame(out)


def test_summary_is_the_bootstrap_mean_per_step():
    rows = _rows("lrp", 0.05)
    rows.loc[0, "ssim"] = np.nan  # a NaN (grid too small) is dropped
    table = summarize(rows, n_boot=200)
    assert list(table["layer"]) == ["head", "blocks.1", "blocks.0", "patch_embed"]
    assert (table["n_images"] == 20).all()
    first = rows[(rows["step"] == 0)]
    est = bootstrap_mean(first["ssim"].to_numpy(), n_boot=200, seed=0)
    assert table.loc[0, "ssim"] == pytest.approx(est.value)
    assert (table.loc[0, "ssim_low"], table.loc[0, "ssim_high"]) == pytest.approx((est.low, est.high))
    assert (table["spearman_low"] <= table["spearman"]).all() and (table["spearman"] <= table["spearman_high"]).all()
    assert summarize(rows.iloc[:0]).empty


def test_methods_whose_maps_survive_are_flagged():
    rows = pd.concat([_rows("edge", 0.9), _rows("good", 0.02), _rows("half", 0.45, modes=("cascading",)),
                      _rows("indep", 0.9, modes=("independent",))])
    table = verdicts(summarize(rows, n_boot=200)).set_index("method")
    assert table.loc["edge", "flagged"] == True  # noqa: E712
    assert "fails the randomisation check" in table.loc["edge", "verdict"]
    assert table.loc["good", "flagged"] == False  # noqa: E712
    assert table.loc["good", "verdict"].startswith("passes the randomisation check: spearman 0.0")
    assert table.loc["half", "flagged"] == False  # noqa: E712  (below the threshold)
    assert pd.isna(table.loc["indep", "flagged"])  # no cascading run to the end
    assert table.loc["edge", "layer"] == "patch_embed" and table.loc["edge", "spearman_low"] > SURVIVAL_THRESHOLD
    assert verdicts(summarize(rows.iloc[:0])).empty
