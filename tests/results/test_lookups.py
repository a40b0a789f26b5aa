"""What jobs look up before they work: runs, images, and what is already stored."""
from __future__ import annotations

import json

import duckdb
import pandas as pd

from retcore.results import lookups
from retcore.results.runs import run_classes
from retcore.storage.writes import write_sanity_checks


def _dataset_id(con, run):
    return lookups.finetune_record(con, run).dataset_id


def test_finetune_records(explained_con, tiny_explained):
    run = tiny_explained["run_id"]
    record = lookups.finetune_record(explained_con, run)
    assert record.run_id == run and record.checkpoint and record.dataset_id and record.out_dir
    assert json.loads(record.config)["finetune"]["model"] == "demo"
    assert lookups.latest_checkpointed_run(explained_con) == record
    child = explained_con.execute("SELECT run_id FROM runs WHERE job = 'explain'").fetchone()[0]
    assert lookups.finetune_record(explained_con, child) is None  # not a finetune run
    assert lookups.finetune_record(explained_con, "nope") is None
    runs = lookups.finetune_runs(explained_con)
    assert runs.columns.tolist() == ["run_id", "status", "out_dir", "config"]
    assert runs["run_id"].tolist() == [run] and runs["status"].tolist() == ["succeeded"]
    assert json.loads(runs["config"].iloc[0]) == json.loads(record.config)


def test_missing_values_read_as_none(explained_copy, tiny_explained):
    db = explained_copy()
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO runs (run_id, job, status, started_at, config) "
                    "VALUES ('ft-new', 'finetune', 'running', now() + INTERVAL 1 DAY, '{}')")
    with duckdb.connect(str(db), read_only=True) as con:
        record = lookups.finetune_record(con, "ft-new")
        assert record == lookups.FinetuneRecord("ft-new", None, None, "{}", None)
        # the newest run has no checkpoint: 'latest' is the older one that has
        assert lookups.latest_checkpointed_run(con).run_id == tiny_explained["run_id"]
        runs = lookups.finetune_runs(con)
        assert runs["run_id"].iloc[0] == "ft-new" and runs["out_dir"].iloc[0] is None


def test_dataset_images_and_root(explained_con, tiny_explained):
    dataset = _dataset_id(explained_con, tiny_explained["run_id"])
    assert isinstance(lookups.dataset_root(explained_con, dataset), str)
    assert lookups.dataset_root(explained_con, "nope") is None
    every = lookups.dataset_images(explained_con, dataset)
    assert every.columns.tolist() == ["image_id", "path", "label", "split", "eye", "mask_path"]
    assert every["image_id"].is_monotonic_increasing and len(every) > 0
    test = lookups.dataset_images(explained_con, dataset, "test")
    assert set(test["split"]) == {"test"} and len(test) == (every["split"] == "test").sum()
    left = lookups.dataset_images(explained_con, dataset, None, eye="left")
    assert set(left["eye"]) <= {"left"} and len(left) == (every["eye"] == "left").sum()
    stored = lookups.registered_images(explained_con, dataset)
    assert {"image_id", "sha256", "duplicate_of", "conflicting_label"} <= set(stored.columns)
    assert len(stored) >= len(every)
    assert lookups.registered_images(explained_con, "nope") is None
    assert lookups.ingest_error_paths(explained_con, dataset) == set()


def test_ingest_error_paths(explained_copy, tiny_explained):
    db = explained_copy()
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO ingest_errors (path, reason, dataset_id) VALUES "
                    "('a.png', 'x', 'd1'), ('a.png', 'y', 'd1'), ('b.png', 'x', 'd1'), ('c.png', 'x', 'd2')")
    with duckdb.connect(str(db), read_only=True) as con:
        assert lookups.ingest_error_paths(con, "d1") == {"a.png", "b.png"}


def test_predictions(explained_con, tiny_explained):
    run = tiny_explained["run_id"]
    n = explained_con.execute("SELECT count(*) FROM predictions WHERE run_id = ? AND split = 'test'",
                              [run]).fetchone()[0]
    assert n > 0 and lookups.prediction_count(explained_con, run, "test") == n
    assert lookups.prediction_count(explained_con, run, "train") == 0
    assert lookups.has_predictions(explained_con, run, "test")
    assert not lookups.has_predictions(explained_con, run, "train")
    assert not lookups.has_predictions(explained_con, "nope", "test")
    preds = lookups.predicted_classes(explained_con, run, "test")
    assert len(preds) == n and set(preds.values()) <= set(run_classes(explained_con, run))
    assert lookups.predicted_classes(explained_con, run, "train") == {}


def test_what_is_already_stored(explained_con, tiny_explained):
    run = tiny_explained["run_id"]
    pairs = lookups.explained_pairs(explained_con, run, "pred")
    assert {m for _, m in pairs} == {"lrp", "gae"}
    assert len(pairs) == 2 * lookups.prediction_count(explained_con, run, "test")
    assert lookups.explained_pairs(explained_con, run, "label") == set()


def test_sanity_done(explained_copy, tiny_explained):
    run = tiny_explained["run_id"]
    db = explained_copy()
    with duckdb.connect(str(db), read_only=True) as con:
        assert lookups.sanity_done(con, run, 0) == set()
    rows = pd.DataFrame([{"run_id": run, "sanity_run_id": "s1", "method": "gae", "mode": mode, "seed": seed,
                          "step": step, "layer": "head", "image_id": "img", "target": 0, "spearman": 0.5,
                          "ssim": 0.5} for mode, seed, step in (("cascading", 0, 0), ("cascading", 0, 1),
                                                                 ("independent", 0, 0), ("cascading", 1, 0))])
    write_sanity_checks(db, rows)
    with duckdb.connect(str(db), read_only=True) as con:
        done = lookups.sanity_done(con, run, 0)
    assert done == {("img", "gae", "cascading", 0), ("img", "gae", "cascading", 1), ("img", "gae", "independent", 0)}
    assert all(isinstance(step, int) for *_, step in done)
