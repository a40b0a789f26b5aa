"""Strata: quantile bins, quality levels, and accuracy across eye / grade / quality tertiles."""
from __future__ import annotations

import pandas as pd

from retcore.results import predictions, strata


def test_quantile_bins_split_ties_and_name_bins():
    values = pd.Series([1.0, 1.0, 1.0, 2.0, 3.0, 4.0], index=list("abcdef"))
    named = strata.quantile_bins(values, 3, strata.TERTILES)
    assert named.tolist() == ["low", "low", "mid", "mid", "high", "high"]
    ranges = strata.quantile_bins(values, 2)
    assert ranges.tolist() == ["Q1 [1, 1]"] * 3 + ["Q2 [2, 4]"] * 3


def test_reference_and_strata_modes():
    assert strata.reference_stratum("blur", ["Q1", "Q2", "Q3"]) == "Q3"
    assert strata.reference_stratum("glare", ["Q1", "Q2", "Q3"]) == "Q1"
    assert strata.reference_stratum("illumination_mean", ["Q1", "Q2", "Q3"]) == "Q2"
    assert strata.reference_stratum("blur", ["poor", "good"]) == "good" and strata.reference_stratum("x", []) is None
    data = pd.DataFrame({"quality_grade": ["good", "poor", None], "blur": [1.0, 2.0, 3.0]})
    s, order = strata.strata(data, "grade", "label")
    assert order == ["good", "poor"] and s.isna().tolist() == [False, False, True]
    s, order = strata.strata(data, "blur", "quantile", k=3)
    assert len(order) == 3 and s.notna().all()


def test_accuracy_strata_of_an_explained_run(explained_con, run_info):
    run, _ = run_info
    meta, _ = predictions.split_predictions(explained_con, run, "test")
    table = strata.accuracy_strata(explained_con, run, "test", meta)
    assert table.has_quality
    assert set(table.tests["stratifier"]) == set(table.table["stratifier"])
    assert {"stratum", "n", "accuracy", "low", "high", "stratifier"} <= set(table.table.columns)
    tertiles = table.table[~table.table["stratifier"].isin(["eye", "quality grade"])]
    assert set(tertiles["stratum"]) <= set(strata.TERTILES)
    labelled = meta["label"].notna().sum()
    assert (table.table.groupby("stratifier")["n"].sum() <= labelled).all()


def test_accuracy_strata_without_quality(plain_con, tiny_pipeline):
    run = tiny_pipeline["run_id"]
    meta, _ = predictions.split_predictions(plain_con, run, "test")
    table = strata.accuracy_strata(plain_con, run, "test", meta)
    assert not table.has_quality and set(table.tests["stratifier"]) <= {"eye"}
