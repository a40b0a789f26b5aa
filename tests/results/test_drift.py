"""Mean maps and drift between classes; zone-score drift from a reference class."""
from __future__ import annotations

import numpy as np

from retcore.results import drift
from retcore.stats import normalise_heatmaps


def test_class_grids_and_maps(explained_con, run_info):
    run, classes = run_info
    meta, values, shape = drift.class_grids(explained_con, run, "test", "lrp", classes)
    labelled = explained_con.execute("SELECT count(*) FROM predictions WHERE run_id = ? AND split = 'test' "
                                     "AND label IS NOT NULL", [run]).fetchone()[0]
    assert len(meta) == labelled and meta["image_id"].is_monotonic_increasing
    assert values.shape == (len(meta), shape[0] * shape[1]) and values.dtype == np.float32
    maps = drift.class_maps(explained_con, run, "test", "lrp", classes, n_permutations=19)
    assert list(maps.means) == [c for c in classes if c in set(meta["class"])]
    assert sum(maps.counts.values()) == len(meta) and not maps.capped
    first = next(iter(maps.means))
    mine = normalise_heatmaps(values[(meta["class"] == first).to_numpy()].reshape(-1, *shape))
    assert np.allclose(maps.means[first], np.nanmean(mine[np.isfinite(mine).all(axis=(1, 2))], axis=0))
    k = len(maps.means)
    assert len(maps.matrix) == (k * (k - 1) // 2 if k > 1 else 0)
    capped = drift.class_maps(explained_con, run, "test", "lrp", classes, per_class=1, n_permutations=19)
    assert set(capped.counts.values()) == {1} and capped.capped == (max(maps.counts.values()) > 1)


def test_zone_drift(explained_con, run_info):
    run, classes = run_info
    present = explained_con.execute("SELECT DISTINCT label FROM predictions WHERE run_id = ? AND split = 'test' "
                                    "AND label IS NOT NULL ORDER BY 1", [run]).df()["label"].tolist()
    reference = present[0]
    res = drift.zone_drift(explained_con, run, "test", "lrp", "thirds", classes, reference=reference,
                           n_permutations=19)
    assert set(res.values["zone"]) == {"center", "left", "right", "nasal", "temporal"}
    assert {"q05", "median", "q95"} <= set(res.summary.columns)
    assert res.tests["zone"].tolist() == sorted(res.tests["zone"])
    if len(present) > 1:
        assert set(res.drift["group_b"]) == {reference} and len(res.drift) == 5 * (len(present) - 1)
        assert (res.drift["p_holm"] >= res.drift["p_value"] - 1e-12).all()
