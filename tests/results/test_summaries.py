"""Summaries (schema v7): stored by the jobs, equal to the queries the readers ran on the fly before
them, removed by the writes that change their inputs, filled in by ``retcore summarize``; samples by
image id."""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from retcore.results import cases, headline, predictions, sample, summaries, zones
from retcore.results.explained import explained_target

# The readers' SQL before the summaries (commit d88cc2b), kept here as the reference.
OLD_CONFUSION = ("SELECT label AS true_label, pred AS pred_label, count(*)::INTEGER AS count FROM predictions "
                 "WHERE run_id = ? AND split = ? AND label IS NOT NULL GROUP BY ALL")
OLD_CLASS_COUNTS = ("SELECT {g} AS class, count(*)::INTEGER AS n FROM predictions WHERE run_id = ? "
                    "AND split = ? AND {g} IS NOT NULL GROUP BY 1 ORDER BY 1")
OLD_ZONE_SUMMARY = (
    "SELECT {g} AS class, z.zone, count(*)::INTEGER AS n, avg(z.score) AS mean, "
    "stddev_samp(z.score) AS sd, quantile_cont(z.score, [0.05, 0.25, 0.5, 0.75, 0.95]) AS q "
    "FROM predictions p JOIN zone_scores z ON z.run_id = p.run_id AND z.image_id = p.image_id "
    "WHERE p.run_id = ? AND p.split = ? AND z.method = ? AND z.zone_set = ? AND {explained} "
    "AND z.score IS NOT NULL AND {g} IS NOT NULL GROUP BY ALL ORDER BY ALL")
OLD_ZONE_LIST = ("SELECT DISTINCT zone_set, zone FROM zone_scores WHERE run_id = ? AND method = ? "
                 "ORDER BY zone_set, zone")
OLD_GALLERY_DRIFT = (  # every image's drift, as the old gallery computed it (window over the split)
    "WITH p AS (SELECT p.image_id, p.label, p.pred FROM predictions p WHERE p.run_id = ? AND p.split = ?), "
    "z AS (SELECT z.image_id, max(z.score) FILTER (WHERE z.zone = 'center') AS center, "
    "max(z.mass_share) FILTER (WHERE z.zone = 'center') AS m_c, "
    "max(z.mass_share) FILTER (WHERE z.zone = 'left') AS m_l, "
    "max(z.mass_share) FILTER (WHERE z.zone = 'right') AS m_r "
    "FROM zone_scores z JOIN p ON p.image_id = z.image_id WHERE z.run_id = ? AND z.method = ? "
    "AND z.zone_set = 'thirds' AND z.zone IN ('center', 'left', 'right') AND {explained} GROUP BY 1) "
    "SELECT p.image_id, z.center, 0.5 * (abs(m_c - avg(m_c) OVER w) + abs(m_l - avg(m_l) OVER w) "
    "+ abs(m_r - avg(m_r) OVER w)) AS drift FROM p LEFT JOIN z ON z.image_id = p.image_id "
    "WINDOW w AS (PARTITION BY p.label)")


def _count(con, table: str, run: str, split: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ? AND split = ?", [run, split]).fetchone()[0]


def _without_summaries(db) -> None:
    """Delete every stored summary (a database as written before schema v7, migrated)."""
    with duckdb.connect(str(db)) as con:
        for table in summaries.SUMMARY_TABLES:
            con.execute(f"DELETE FROM {table}")


def test_jobs_store_every_summary(explained_con, run_info):
    run, _ = run_info
    for split in ("val", "test"):
        for table in ("class_counts", "sample_cutoffs", "split_reports"):
            assert _count(explained_con, table, run, split) > 0, (table, split)
    assert _count(explained_con, "zone_summaries", run, "test") > 0  # explained on test only
    assert _count(explained_con, "zone_summaries", run, "val") == 0


def test_counts_equal_the_old_queries(explained_con, run_info):
    run, classes = run_info
    for split in ("val", "test"):
        old = explained_con.execute(OLD_CONFUSION, [run, split]).df()
        new = predictions.confusion(explained_con, run, split, classes)
        merged = new.merge(old, on=["true_label", "pred_label"], how="left", suffixes=("", "_old")).fillna(0)
        assert (merged["count"] == merged["count_old"]).all() and new["count"].sum() == old["count"].sum()
        for by in ("label", "pred"):
            old = explained_con.execute(OLD_CLASS_COUNTS.format(g=by), [run, split]).df().set_index("class")["n"]
            new = predictions.class_counts(explained_con, run, split, by)
            assert new.to_dict() == old.to_dict()
        stored = explained_con.execute("SELECT label, pred, n, n_correct FROM class_counts WHERE run_id = ? AND "
                                       "split = ? ORDER BY ALL", [run, split]).df()
        sql, params = summaries.class_counts_sql(run, split)
        fresh = explained_con.execute(f"SELECT label, pred, n, n_correct FROM ({sql}) ORDER BY ALL", params).df()
        pd.testing.assert_frame_equal(stored, fresh)


def test_zone_summaries_equal_the_old_query(explained_con, run_info):
    run, classes = run_info
    for zone_set in ("thirds", "anatomy"):
        for by, g in (("label", "p.label"), ("pred", "p.pred")):
            explained, eparams = explained_target(explained_con, run, "lrp", classes)
            old = explained_con.execute(OLD_ZONE_SUMMARY.format(g=g, explained=explained),
                                        [run, "test", "lrp", zone_set, *eparams]).df()
            new = zones.zone_summary(explained_con, run, "test", "lrp", zone_set, classes, by=by)
            assert new[["class", "zone"]].values.tolist() == old[["class", "zone"]].values.tolist()
            assert new["n"].tolist() == old["n"].tolist()
            quantiles = np.vstack(old["q"].to_numpy())
            for i, name in enumerate(("q05", "q25", "median", "q75", "q95")):
                assert np.allclose(new[name], quantiles[:, i])
            assert np.allclose(new["mean"], old["mean"]) and np.allclose(new["sd"], old["sd"], equal_nan=True)
    old_list = explained_con.execute(OLD_ZONE_LIST, [run, "lrp"]).df()
    pd.testing.assert_frame_equal(zones.zone_list(explained_con, run, "lrp"), old_list)


def test_gallery_drift_equals_the_old_window(explained_con, run_info):
    run, classes = run_info
    explained, eparams = explained_target(explained_con, run, "lrp", classes)
    old = explained_con.execute(OLD_GALLERY_DRIFT.format(explained=explained),
                                [run, "test", run, "lrp", *eparams]).df().set_index("image_id")
    for cls in classes:
        for kind in cases.KINDS:
            for order in cases.ORDERS:
                rows = cases.case_list(explained_con, run, "test", "lrp", cls, kind, order, classes, limit=100)
                if rows.empty:
                    continue
                ref = old.loc[rows["image_id"]]
                assert np.allclose(rows["drift"], ref["drift"], equal_nan=True)
                assert np.allclose(rows["center"], ref["center"], equal_nan=True)


def test_stored_report_equals_the_computed_one(explained_con, run_info):
    run, classes = run_info
    fresh = headline.compute(explained_con, run, "test", classes, **headline.STORED_SETTINGS)
    key = headline.report_params(classes, fresh.n_boot, fresh.n_boot_images, 0, 0.95)
    stored = summaries.stored_report(explained_con, run, "test", headline.REPORT, key)
    assert stored is not None and set(stored) == set(headline.REPORT_PARTS)
    for part in headline.REPORT_PARTS:
        pd.testing.assert_frame_equal(stored[part], getattr(fresh, part), check_dtype=False)
    read = headline.classification(explained_con, run, "test", classes, **headline.STORED_SETTINGS)
    pd.testing.assert_frame_equal(read.headline, fresh.headline, check_dtype=False)
    assert read.n == fresh.n and read.n_boot_images == fresh.n_boot_images
    pd.testing.assert_frame_equal(read.confusion, fresh.confusion)


def test_readers_compute_on_read_without_summaries(explained_copy, explained_con, run_info):
    run, classes = run_info
    db = explained_copy()
    _without_summaries(db)
    with duckdb.connect(str(db), read_only=True) as con:
        assert summaries.stored_report(con, run, "test", headline.REPORT, {}) is None
        for split in ("val", "test"):
            pd.testing.assert_frame_equal(predictions.confusion(con, run, split, classes),
                                          predictions.confusion(explained_con, run, split, classes))
            a = headline.classification(con, run, split, classes, **headline.STORED_SETTINGS)
            b = headline.classification(explained_con, run, split, classes, **headline.STORED_SETTINGS)
            pd.testing.assert_frame_equal(a.headline, b.headline, check_dtype=False)
        for zone_set in ("thirds", "anatomy"):
            a = zones.zone_summary(con, run, "test", "lrp", zone_set, classes)
            b = zones.zone_summary(explained_con, run, "test", "lrp", zone_set, classes)
            pd.testing.assert_frame_equal(a[["class", "zone", "n"]], b[["class", "zone", "n"]], check_dtype=False)
            assert np.allclose(a["mean"], b["mean"])
        pd.testing.assert_frame_equal(zones.zone_list(con, run, "lrp"), zones.zone_list(explained_con, run, "lrp"))
        for kind in cases.KINDS:
            a = cases.case_list(con, run, "test", "lrp", classes[0], kind, "highest drift", classes, limit=50)
            b = cases.case_list(explained_con, run, "test", "lrp", classes[0], kind, "highest drift", classes, limit=50)
            assert a["image_id"].tolist() == b["image_id"].tolist() and np.allclose(a["drift"], b["drift"],
                                                                                     equal_nan=True)
        assert sample.split_sample(con, run, "test", 3) == sample.split_sample(explained_con, run, "test", 3)


def test_writes_remove_the_summaries_they_change(explained_copy, run_info):
    from retcore.storage.writes import write_explanation_batch, write_predictions

    run, _ = run_info
    db = explained_copy()
    with duckdb.connect(str(db)) as con:
        preds = con.execute("SELECT image_id, label, probs, pred, confidence, correct FROM predictions "
                            "WHERE run_id = ? AND split = 'val'", [run]).df()
        zone = con.execute("SELECT * FROM zone_scores WHERE run_id = ? AND method = 'gae' LIMIT 1", [run]).df()
        expl = con.execute("SELECT * FROM explanations WHERE run_id = ? AND method = 'gae' AND image_id = ?",
                           [run, zone["image_id"].iloc[0]]).df()
    write_explanation_batch(db, expl, zone, pd.DataFrame())
    with duckdb.connect(str(db), read_only=True) as con:
        left = con.execute("SELECT DISTINCT method FROM zone_summaries WHERE run_id = ? AND split = 'test'",
                           [run]).df()["method"].tolist()
        assert left == ["lrp"]  # gae's test summaries went with the batch; lrp's stay
        assert _count(con, "class_counts", run, "test") > 0
    write_predictions(db, run, "val", preds, predict_run_id="again")
    with duckdb.connect(str(db), read_only=True) as con:
        for table in ("class_counts", "sample_cutoffs", "split_reports"):
            assert _count(con, table, run, "val") == 0 and _count(con, table, run, "test") > 0


def test_summarize_fills_in_what_is_missing(explained_copy, explained_con, run_info):
    from jobs.summarize import run_summarize

    run, classes = run_info
    db = explained_copy()
    _without_summaries(db)
    lines: list[str] = []
    assert run_summarize(db, echo=lines.append) == 2 and all("report" in line for line in lines)
    with duckdb.connect(str(db), read_only=True) as con:
        for table in summaries.SUMMARY_TABLES:
            old = explained_con.execute(f"SELECT * EXCLUDE (computed_at) FROM {table} ORDER BY ALL"
                                        if table == "split_reports" else f"SELECT * FROM {table} ORDER BY ALL").df()
            new = con.execute(f"SELECT * EXCLUDE (computed_at) FROM {table} ORDER BY ALL"
                              if table == "split_reports" else f"SELECT * FROM {table} ORDER BY ALL").df()
            if table == "split_reports":
                old, new = old.drop(columns=["frame"]), new.drop(columns=["frame"])
            cols = [c for c in old.columns if old[c].dtype.kind != "f"]
            pd.testing.assert_frame_equal(new[cols], old[cols], check_dtype=False)
            floats = [c for c in old.columns if old[c].dtype.kind == "f"]
            assert np.allclose(new[floats].to_numpy(float), old[floats].to_numpy(float), equal_nan=True)
    assert run_summarize(db, echo=lines.append) == 0 and lines[-1].startswith("every summary is stored")


def test_samples_are_the_first_images_by_id(explained_con, run_info):
    run, classes = run_info
    ids = sorted(explained_con.execute("SELECT image_id FROM predictions WHERE run_id = ? AND split = 'test'",
                                       [run]).df()["image_id"])
    whole = sample.split_sample(explained_con, run, "test")
    assert whole.n == len(ids) and not whole.sampled and whole.cutoff == ids[-1]
    small = sample.split_sample(explained_con, run, "test", 3)
    assert small.sampled and small.cutoff == ids[2]
    # the focus statistics on more images than allowed use those among the first three
    res = zones.focus(explained_con, run, "test", "lrp", "thirds", "center", classes, n_boot=50, max_images=3)
    full = zones.focus(explained_con, run, "test", "lrp", "thirds", "center", classes, n_boot=50)
    assert res.sampled and res.total == full.n and set(res.points["image_id"]) <= set(ids[:3])
    labels = explained_con.execute("SELECT image_id, label FROM predictions WHERE run_id = ? AND split = 'test' "
                                   "ORDER BY image_id", [run]).df()
    firsts = labels.groupby("label").head(1)
    assert sample.class_cutoffs(explained_con, run, "test", "label", 1) == dict(zip(firsts["label"],
                                                                                   firsts["image_id"]))
    values = zones.zone_values(explained_con, run, "test", "lrp", "thirds", classes, per_class=1)
    assert set(values["image_id"]) <= set(firsts["image_id"])


@pytest.mark.parametrize("table", summaries.SUMMARY_TABLES)
def test_summary_tables_are_in_the_schema(explained_con, table):
    assert table in set(explained_con.execute("SELECT table_name FROM information_schema.tables").df()["table_name"])


def test_stored_galleries_equal_the_on_the_fly_ones(explained_copy, explained_con, run_info):
    run, classes = run_info
    db = explained_copy()
    _without_summaries(db)
    with duckdb.connect(str(db), read_only=True) as fresh:
        for cls in classes:
            for kind in cases.KINDS:
                for order in cases.ORDERS:
                    for limit, offset in ((8, 0), (3, 2)):
                        stored = cases.case_list(explained_con, run, "test", "lrp", cls, kind, order, classes,
                                                 limit=limit, offset=offset)
                        computed = cases.case_list(fresh, run, "test", "lrp", cls, kind, order, classes,
                                                   limit=limit, offset=offset)
                        assert list(stored.columns) == list(computed.columns)
                        assert stored["image_id"].tolist() == computed["image_id"].tolist(), (cls, kind, order)
                        for col in ("confidence", "center", "drift"):
                            assert np.allclose(stored[col].astype(float), computed[col].astype(float),
                                               equal_nan=True)
                        assert (stored["n_total"] == computed["n_total"]).all()
                        assert stored["path"].tolist() == computed["path"].tolist()
                        ids = stored["image_id"].tolist()
                        maps = cases.image_grids(explained_con, run, ids, "lrp", classes)  # from gallery_rows
                        again = cases.image_grids(fresh, run, ids, "lrp", classes)
                        pd.testing.assert_frame_equal(maps, again, check_dtype=False)
    deep = cases.case_list(explained_con, run, "test", "lrp", classes[0], "TP", "most confident", classes,
                           limit=cases.GALLERY_DEPTH, offset=1)  # beyond the stored depth: computed
    assert len(deep) <= cases.GALLERY_DEPTH


def test_stored_drift_defaults_equal_the_computed_ones(explained_copy, explained_con, run_info):
    from retcore.results import drift

    run, classes = run_info
    db = explained_copy()
    _without_summaries(db)
    reference = drift.default_reference(classes)
    settings = dict(per_class=sample.CLASS_SAMPLE, n_permutations=drift.PERMUTATIONS)
    assert summaries.stored_report(explained_con, run, "test", "class_maps",
                                   {"classes": classes, "by": "label", "seed": 0, **settings}, "lrp") is not None
    with duckdb.connect(str(db), read_only=True) as fresh:
        for zone_set in ("thirds", "anatomy"):
            a = drift.zone_drift(explained_con, run, "test", "lrp", zone_set, classes, reference=reference, **settings)
            b = drift.zone_drift(fresh, run, "test", "lrp", zone_set, classes, reference=reference, **settings)
            for part in ("values", "drift", "tests"):
                pd.testing.assert_frame_equal(getattr(a, part).reset_index(drop=True),
                                              getattr(b, part).reset_index(drop=True), check_dtype=False)
        a = drift.class_maps(explained_con, run, "test", "lrp", classes, **settings)
        b = drift.class_maps(fresh, run, "test", "lrp", classes, **settings)
        assert list(a.means) == list(b.means) and a.counts == b.counts and a.shape == b.shape
        assert all(np.array_equal(a.means[c], b.means[c]) for c in a.means) and a.capped == b.capped
        pd.testing.assert_frame_equal(a.matrix, b.matrix, check_dtype=False)
