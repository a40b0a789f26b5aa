"""Zone scores joined with the predictions, their summaries and tests, and confidence vs focus."""
from __future__ import annotations

import numpy as np
import pytest

from retcore.results import zones
from retcore.stats import holm, kruskal_wallis


@pytest.fixture
def raw_thirds(explained_con, run_info):
    """The thirds zone scores of the predicted class, joined in pandas (an independent reading)."""
    run, classes = run_info
    p = explained_con.execute("SELECT image_id, label, pred, confidence, correct FROM predictions "
                              "WHERE run_id = ? AND split = 'test' AND label IS NOT NULL", [run]).df()
    z = explained_con.execute("SELECT image_id, target, zone, score, mass_share FROM zone_scores WHERE run_id = ? "
                              "AND method = 'lrp' AND zone_set = 'thirds' AND score IS NOT NULL", [run]).df()
    p["target"] = [classes.index(c) for c in p["pred"]]
    return p.merge(z, on=["image_id", "target"])


def test_zone_scores_are_the_predicted_class_rows(explained_con, run_info, raw_thirds):
    run, classes = run_info
    scores = zones.zone_scores(explained_con, run, "test", "lrp", "thirds", classes)
    assert len(scores) == len(raw_thirds) and scores["image_id"].is_monotonic_increasing
    assert list(dict.fromkeys(scores["zone"])) == ["center", "left", "right", "nasal", "temporal"]  # as written
    merged = scores.merge(raw_thirds, on=["image_id", "zone"], suffixes=("", "_raw"))
    assert np.allclose(merged["score"], merged["score_raw"])
    one = zones.zone_scores(explained_con, run, "test", "lrp", "thirds", classes, zone="center", cls=classes[0])
    assert set(one["zone"]) <= {"center"} and set(one["label"]) <= {classes[0]}
    assert zones.zone_list(explained_con, run, "lrp")["zone_set"].unique().tolist() == ["anatomy", "mask", "thirds"]


def test_summary_and_values(explained_con, run_info, raw_thirds):
    run, classes = run_info
    summary = zones.zone_summary(explained_con, run, "test", "lrp", "thirds", classes)
    center = raw_thirds[raw_thirds["zone"] == "center"].groupby("label")["score"]
    got = summary[summary["zone"] == "center"].set_index("class")
    assert np.allclose(got["mean"], center.mean().loc[got.index]) and (got["n"] == center.size().loc[got.index]).all()
    assert np.allclose(got["median"], center.median().loc[got.index])
    values = zones.zone_values(explained_con, run, "test", "lrp", "thirds", classes, per_class=1)
    assert values.groupby("class")["image_id"].nunique().max() == 1
    by_pred = zones.zone_values(explained_con, run, "test", "lrp", "thirds", classes, by="pred", zones=["left"])
    assert set(by_pred["zone"]) == {"left"} and len(by_pred) == (raw_thirds["zone"] == "left").sum()


def test_zone_tests_holm_across_zones(raw_thirds):
    tests = zones.zone_tests(raw_thirds, group="label")
    assert tests["zone"].tolist() == list(dict.fromkeys(raw_thirds["zone"]))
    for row in tests.itertuples():
        part = raw_thirds[raw_thirds["zone"] == row.zone]
        kw = kruskal_wallis({c: g["score"].to_numpy() for c, g in part.groupby("label")})
        assert row.H == pytest.approx(kw.statistic, nan_ok=True) and row.n == kw.n
    assert np.allclose(tests["p_holm"], holm(tests["p_value"].to_numpy()), equal_nan=True)
    assert np.allclose(tests["mw_p_holm"], holm(tests["mw_p_value"].to_numpy()), equal_nan=True)
    no_outcome = zones.zone_tests(raw_thirds, group="label", correct=None)
    assert no_outcome["U"].isna().all()


def test_focus_correlations(explained_con, run_info):
    run, classes = run_info
    res = zones.focus(explained_con, run, "test", "lrp", "thirds", "center", classes, n_boot=50)
    assert res.n == len(res.points) > 0 and res.n_boot == 50
    assert set(res.correlations["scope"]) <= {"overall", "class", "outcome"}
    overall = res.correlations[res.correlations["scope"] == "overall"]
    assert set(overall["method"]) == {"spearman", "pearson"} and (overall["n"] == res.n).all()
    only = zones.focus(explained_con, run, "test", "lrp", "thirds", "center", classes, methods=("spearman",),
                       scopes=("class",), n_boot=50)
    assert set(only.correlations["scope"]) == {"class"} and set(only.correlations["method"]) == {"spearman"}
    assert zones.focus(explained_con, run, "test", "lrp", "thirds", "nowhere", classes).n == 0
