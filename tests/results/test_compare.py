"""Two runs or two methods on the same images."""
from __future__ import annotations

import numpy as np

from retcore.results import compare


def test_a_run_against_itself(explained_con, run_info):
    run, classes = run_info
    pairs = compare.compare_predictions(explained_con, run, run, "test")
    assert (pairs["pred_a"] == pairs["pred_b"]).all() and pairs["image_id"].is_monotonic_increasing
    assert compare.compare_cases(explained_con, run, run, "test").empty
    res = compare.compare_runs(explained_con, run, run, "test", classes)
    assert res["n"] == len(pairs) and np.allclose(res["deltas"]["difference"], 0)
    assert compare.single_target(explained_con, run)


def test_two_methods_zone_shifts(explained_con, run_info):
    run, classes = run_info
    scores = compare.compare_zone_scores(explained_con, run, "lrp", run, "gae", "test", "thirds", classes, classes)
    assert set(scores["zone"]) == {"center", "left", "right", "nasal", "temporal"}
    res = compare.compare_zones(explained_con, run, "lrp", run, "gae", "test", "thirds", classes, classes)
    shifts = res["shifts"].set_index("item")
    assert set(shifts.index) == {"center", "left", "right"}  # aliases left out
    center = scores[scores["zone"] == "center"]
    assert np.isclose(shifts.loc["center", "difference"], (center["score_b"] - center["score_a"]).mean())
    moved = res["moved"]
    assert res["moved_zone"] == "center" and moved["delta"].abs().is_monotonic_decreasing
    same = compare.compare_zone_moved(explained_con, run, "lrp", run, "lrp", "test", "thirds", "center", classes,
                                      classes)
    assert np.allclose(same["delta"], 0)
