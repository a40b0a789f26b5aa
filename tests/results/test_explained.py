"""The explained-class rule: one map per image and method, of its predicted class (its label when the
run was explained for labels only), in every reader."""
from __future__ import annotations

import duckdb
import pytest

from retcore.results import cases, drift, explained, study, zones


def _add_other_target(db, run: str, classes: list[str]) -> int:
    """Give every test image a second map and zone scores of another class (target_kind 'label',
    scores 999): readers must keep ignoring them. Returns the images changed."""
    con = duckdb.connect(str(db))
    c = len(classes)
    cte = ("WITH t AS (SELECT p.image_id, (list_position(?::VARCHAR[], p.pred) % ?) AS other FROM predictions p "
           "WHERE p.run_id = ? AND p.split = 'test') ")
    con.execute(cte + "INSERT INTO explanations SELECT e.* REPLACE (t.other AS target, 'label' AS target_kind, "
                "list_transform(e.grid, lambda x: (x * 0 + 123)::FLOAT) AS grid) FROM explanations e "
                "JOIN t USING (image_id) WHERE e.run_id = ?", [classes, c, run, run])
    con.execute(cte + "INSERT INTO zone_scores SELECT z.* REPLACE (t.other AS target, 999.0 AS score) "
                "FROM zone_scores z JOIN t USING (image_id) WHERE z.run_id = ?", [classes, c, run, run])
    con.execute(cte + "INSERT INTO localisation SELECT l.* REPLACE (t.other AS target, 999.0 AS pointing_game) "
                "FROM localisation l JOIN t USING (image_id) WHERE l.run_id = ?", [classes, c, run, run])
    n = con.execute("SELECT count(*) FROM predictions WHERE run_id = ? AND split = 'test'", [run]).fetchone()[0]
    con.close()
    return n


def _only_labels(db, run: str, classes: list[str]) -> None:
    """Rewrite the run's maps as if explained with ``--target label`` only (same values, target = label);
    like ``write_explanation_batch``, drop the summaries of the maps."""
    con = duckdb.connect(str(db))
    for table in ("zone_summaries", "gallery_rows"):
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run])
    for table, extra in (("explanations", ", 'label' AS target_kind"), ("zone_scores", ""), ("localisation", "")):
        con.execute(f"CREATE TEMP TABLE moved AS SELECT x.* REPLACE (list_position(?::VARCHAR[], p.label) - 1 "
                    f"AS target{extra}) FROM {table} x JOIN predictions p ON p.run_id = x.run_id "
                    "AND p.image_id = x.image_id WHERE x.run_id = ? AND p.label IS NOT NULL", [classes, run])
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run])
        con.execute(f"INSERT INTO {table} SELECT * FROM moved")
        con.execute("DROP TABLE moved")
    con.close()


def test_kind_is_pred_by_default_and_label_for_label_only_runs(explained_copy, run_info, plain_con):
    run, classes = run_info
    assert explained.explained_kind(plain_con, run, "lrp") == "pred"  # no maps at all
    db = explained_copy()
    with duckdb.connect(str(db), read_only=True) as con:
        assert explained.explained_kind(con, run, "lrp") == "pred"
    _add_other_target(db, run, classes)
    with duckdb.connect(str(db), read_only=True) as con:
        assert explained.explained_kind(con, run, "lrp") == "pred"  # both kinds: the prediction wins
    db2 = explained_copy()
    _only_labels(db2, run, classes)
    with duckdb.connect(str(db2), read_only=True) as con:
        assert explained.explained_kind(con, run, "lrp") == "label"
    with pytest.raises(ValueError, match="explained class"):
        explained.target_sql("guess")


def test_every_reader_ignores_maps_of_other_classes(explained_copy, run_info, explained_con):
    run, classes = run_info
    before = {
        "scores": zones.zone_scores(explained_con, run, "test", "lrp", "thirds", classes),
        "grids": drift.class_grids(explained_con, run, "test", "lrp", classes),
        "study": study.per_image(explained_con, run, "lrp"),
    }
    db = explained_copy()
    n = _add_other_target(db, run, classes)
    assert n > 0
    con = duckdb.connect(str(db), read_only=True)
    scores = zones.zone_scores(con, run, "test", "lrp", "thirds", classes)
    assert (scores["score"] < 999).all()
    assert scores.equals(before["scores"])
    meta, values, shape = drift.class_grids(con, run, "test", "lrp", classes)
    assert meta.equals(before["grids"][0]) and (values == before["grids"][1]).all()
    per_image = study.per_image(con, run, "lrp")
    assert per_image.equals(before["study"])  # not the maximum over targets
    ids = meta["image_id"].tolist()
    grids = cases.image_grids(con, run, ids, "lrp", classes)
    assert grids["image_id"].tolist() == ids and set(grids["target_kind"]) == {"pred"}
    gallery = cases.case_list(con, run, "test", "lrp", classes[0], "FP", "lowest center score", classes, limit=50)
    assert (gallery["center"].dropna() < 999).all()
    summary = zones.zone_summary(con, run, "test", "lrp", "thirds", classes)
    assert (summary["mean"] < 999).all()
    con.close()


def test_label_only_runs_use_every_labelled_image(explained_copy, run_info):
    run, classes = run_info
    db = explained_copy()
    _only_labels(db, run, classes)
    con = duckdb.connect(str(db), read_only=True)
    labelled = con.execute("SELECT count(*) FROM predictions WHERE run_id = ? AND split = 'test' "
                           "AND label IS NOT NULL", [run]).fetchone()[0]
    scores = zones.zone_scores(con, run, "test", "lrp", "anatomy", classes)
    assert scores["image_id"].nunique() == labelled  # misclassified images included
    meta, _, _ = drift.class_grids(con, run, "test", "lrp", classes)
    assert len(meta) == labelled
    grids = cases.image_grids(con, run, meta["image_id"].tolist(), "lrp", classes)
    assert set(grids["target_kind"]) == {"label"} and len(grids) == labelled
    con.close()
