"""The explain job's per-image faithfulness on the tiny pipeline: rows, reads, verdicts, resume."""
from __future__ import annotations

import duckdb
import numpy as np
import pytest

METHODS = ["gae", "lrp_pixels"]
N = 4


@pytest.fixture(scope="module")
def faithful(tiny_pipeline, tmp_path_factory):
    import shutil

    from jobs.explain import run_explain

    root = tmp_path_factory.mktemp("faithful")
    db = root / "results.duckdb"
    shutil.copy(tiny_pipeline["db"], db)
    run_explain(tiny_pipeline["run_id"], METHODS, "test", db=db, results=root / "results", batch_size=3,
                device="cpu", faithfulness_images=N, num_workers=0)
    return {"db": db, "root": root, "run_id": tiny_pipeline["run_id"]}


def _con(db):
    return duckdb.connect(str(db), read_only=True)


def test_rows_per_image_method_map_unit_test_and_fraction(faithful):
    from retcore.faithfulness import FRACTIONS, TESTS
    from retcore.results.faithfulness import AUC_COLUMNS, CURVE_COLUMNS, faithfulness_aucs, faithfulness_curves

    with _con(faithful["db"]) as con:
        curves = faithfulness_curves(con, faithful["run_id"])
        aucs = faithfulness_aucs(con, faithful["run_id"])
    assert list(curves.columns) == CURVE_COLUMNS and list(aucs.columns) == AUC_COLUMNS
    assert len(curves) == N * len(METHODS) * 2 * 2 * len(TESTS) * len(FRACTIONS)
    assert set(curves["map"]) == {"method", "random"} and set(curves["unit"]) == {"token", "pixel"}
    assert set(curves["baseline"]) == {"blur"}
    assert len(aucs) == N * len(METHODS) * 2 * len(TESTS) and aucs["auc"].between(0, 1).all()
    # deletion at 0% is the unperturbed image for the method's map and the random map alike
    start = curves[(curves["fraction"] == 0) & curves["test"].str.startswith("deletion")]
    spread = start.groupby("image_id")["probability"].agg(lambda p: p.max() - p.min())
    assert (spread < 1e-5).all()
    # the AUC stored is the trapezoid of the stored curve
    one = curves[(curves["method"] == "gae") & (curves["map"] == "method") & (curves["unit"] == "token")
                 & (curves["test"] == "insertion")]
    img = one["image_id"].iloc[0]
    c = one[one["image_id"] == img].sort_values("fraction")
    stored = aucs[(aucs["method"] == "gae") & (aucs["unit"] == "token") & (aucs["test"] == "insertion")
                  & (aucs["image_id"] == img)]["auc"].item()
    assert stored == pytest.approx(np.trapezoid(c["probability"], c["fraction"]))
    # token methods share one random map (same resolution); lrp_pixels draws a pixel-resolution one
    rnd = aucs.pivot_table(index=["image_id", "unit", "test"], columns="method", values="random_auc")
    assert not np.allclose(rnd["gae"], rnd["lrp_pixels"])


def test_summary_verdicts_and_mean_curves(faithful):
    from retcore.results.faithfulness import SUMMARY_COLUMNS, faithfulness_mean_curves, faithfulness_summary

    with _con(faithful["db"]) as con:
        summary = faithfulness_summary(con, faithful["run_id"])
        mean = faithfulness_mean_curves(con, faithful["run_id"], methods=["gae"], unit="token", n_boot=50)
        legacy = con.execute("SELECT * FROM faithfulness WHERE run_id = ?", [faithful["run_id"]]).df()
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == len(METHODS) * 2 * 3 and (summary["n_images"] == N).all()
    assert np.allclose(summary["difference"], summary["auc"] - summary["random_auc"])
    assert summary["verdict"].str.match(r"^(beats random|does not beat random|worse than random) on ").all()
    assert (summary["seconds_per_image"] > 0).all()
    assert set(mean["map"]) == {"method", "random"} and (mean["low"] <= mean["probability"] + 1e-12).all()
    assert set(legacy["test"]) == {"positive", "negative"} and set(legacy["method"]) == set(METHODS)


def test_rerun_computes_nothing_new_and_mean_baseline_adds_rows(faithful):
    from jobs.explain import run_explain

    db = faithful["db"]
    with _con(db) as con:
        before = con.execute("SELECT count(*), sum(probability) FROM faithfulness_curves").fetchone()
    run_explain(faithful["run_id"], METHODS, "test", db=db, results=faithful["root"] / "results", batch_size=3,
                device="cpu", faithfulness_images=N, num_workers=0)
    with _con(db) as con:
        assert con.execute("SELECT count(*), sum(probability) FROM faithfulness_curves").fetchone() == before
    run_explain(faithful["run_id"], ["gae"], "test", db=db, results=faithful["root"] / "results", batch_size=4,
                device="cpu", faithfulness_images=2, num_workers=0, faithfulness_baseline="mean",
                faithfulness_units="token")
    with _con(db) as con:
        rows = con.execute("SELECT baseline, unit, count(DISTINCT image_id) FROM faithfulness_aucs "
                           "WHERE baseline = 'mean' GROUP BY ALL").fetchall()
    assert rows == [("mean", "token", 2)]


def test_bad_options_are_clear_errors(faithful):
    from jobs.explain import run_explain
    from retcore.errors import RetcoreError

    with pytest.raises(RetcoreError, match="faithfulness-baseline"):
        run_explain(faithful["run_id"], METHODS, db=faithful["db"], faithfulness_baseline="black")
    with pytest.raises(RetcoreError, match="faithfulness-units"):
        run_explain(faithful["run_id"], METHODS, db=faithful["db"], faithfulness_units="patch")
