"""Runs, classes, splits, methods and training curves."""
from __future__ import annotations

import pytest

from retcore.errors import RetcoreError
from retcore.results import runs


def test_run_lists(explained_con, tiny_explained):
    run = tiny_explained["run_id"]
    all_runs = runs.runs(explained_con)
    assert {"finetune", "predict", "explain"} <= set(all_runs["job"])
    assert (all_runs["status"] == all_runs["recorded_status"]).all()
    trained = runs.trained_runs(explained_con)
    assert trained["run_id"].tolist() == [run] and trained["label"].iloc[0].startswith(run)
    assert runs.run_splits(explained_con, run) == ["test", "val"]
    assert runs.run_methods(explained_con, run) == ["gae", "lrp"]
    assert runs.split_methods(explained_con, run, "test") == ["gae", "lrp"]
    assert runs.split_methods(explained_con, run, "val") == []
    jobs = runs.jobs(explained_con)
    assert {"seconds", "log_path", "parent_out_dir", "command"} <= set(jobs.columns)


def test_classes_epochs_and_sizes(explained_con, tiny_explained):
    run = tiny_explained["run_id"]
    assert runs.run_classes(explained_con, run) == ["cataract", "diabetic_retinopathy", "glaucoma", "normal"]
    epochs = runs.epochs(explained_con, run)
    assert epochs["epoch"].tolist() == [0, 1] and "run_id" not in epochs
    assert runs.run_img_size(explained_con, run) == 64
    assert runs.run_out_dir(explained_con, run)
    assert set(runs.dataset_roots(explained_con).columns) == {"dataset_id", "root", "kind"}


def test_finetune_run_resolves_latest_children_and_errors(explained_con, tiny_explained):
    run = tiny_explained["run_id"]
    assert runs.finetune_run(explained_con, "latest", "test")["run_id"] == run
    child = explained_con.execute("SELECT run_id FROM runs WHERE job = 'explain'").fetchone()[0]
    info = runs.finetune_run(explained_con, child, "test")
    assert info["run_id"] == run and info["job"] == "finetune" and info["model"] == "demo"
    with pytest.raises(RetcoreError, match="no run 'nope' in here"):
        runs.finetune_run(explained_con, "nope", "test", where="here")
    with pytest.raises(RetcoreError, match="predictions for split 'train'"):
        runs.finetune_run(explained_con, "latest", "train")


def test_stale_running_run_shows_interrupted():
    import pandas as pd

    frame = pd.DataFrame({"status": ["running", "running", "succeeded"],
                          "heartbeat_at": [pd.Timestamp("2000-01-01"), pd.Timestamp.now(), None],
                          "started_at": [pd.Timestamp("2000-01-01")] * 3})
    out = runs.live_status(frame)
    assert out["status"].tolist() == ["interrupted", "running", "succeeded"]
    assert out["recorded_status"].tolist() == ["running", "running", "succeeded"]
