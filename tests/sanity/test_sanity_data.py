"""The data randomisation test: shuffled labels, the shuffled manifest, the comparison job, the study flag."""
from __future__ import annotations

import shutil
from collections import Counter

import duckdb
import pandas as pd
import pytest

from retcore.sanity import shuffle_labels


def test_shuffle_labels_permutes_train_and_val_only():
    labels = [c for c in "abcd" for _ in range(10)]
    splits = (["train"] * 6 + ["val"] * 2 + ["test"] * 2) * 4
    out = shuffle_labels(labels, splits, seed=0)
    assert out == shuffle_labels(labels, splits, seed=0) and out != shuffle_labels(labels, splits, seed=1)
    for split in ("train", "val", "test"):
        idx = [i for i, s in enumerate(splits) if s == split]
        assert Counter(out[i] for i in idx) == Counter(labels[i] for i in idx)  # class counts kept
    test = [i for i, s in enumerate(splits) if s == "test"]
    assert [out[i] for i in test] == [labels[i] for i in test]
    train = [i for i, s in enumerate(splits) if s == "train"]
    assert sum(out[i] != labels[i] for i in train) > len(train) // 2
    with pytest.raises(ValueError):
        shuffle_labels(labels, splits[:-1], seed=0)


def test_shuffled_manifest_keeps_files_splits_and_columns(tiny_demo):
    from jobs.sanity import shuffled_manifest

    out = shuffled_manifest(tiny_demo, seed=4)
    assert out.parent == tiny_demo.parent and out.name == f"{tiny_demo.stem}-shuffled-s4.csv"
    before = pd.read_csv(tiny_demo, dtype=str, keep_default_na=False)
    after = pd.read_csv(out, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(before.drop(columns="label"), after.drop(columns="label"))
    assert (before.loc[before["split"] == "test", "label"] == after.loc[after["split"] == "test", "label"]).all()
    assert (before["label"] != after["label"]).any()
    mtime = out.stat().st_mtime_ns
    assert shuffled_manifest(tiny_demo, seed=4) == out and out.stat().st_mtime_ns == mtime  # unchanged: not rewritten


@pytest.fixture(scope="module")
def shuffled(tiny_pipeline, tiny_config, tmp_path_factory):
    """tiny_pipeline's database with a second run: the same recipe on shuffled labels."""
    from jobs.finetune import run_finetune
    from jobs.sanity import shuffled_manifest

    root = tmp_path_factory.mktemp("shuffled")
    db = root / "results.duckdb"
    shutil.copy(tiny_pipeline["db"], db)
    other = run_finetune(tiny_config(), shuffled_manifest(tiny_pipeline["manifest"], 0), db=db,
                         results=root / "results")
    return {"db": db, "run_id": tiny_pipeline["run_id"], "shuffled": other, "root": root}


def test_data_randomisation_rows_resume_and_verdict(shuffled):
    from jobs.sanity import run_data_randomisation
    from retcore.results.sanity import sanity_verdicts

    db, run_id = shuffled["db"], shuffled["run_id"]
    kw = dict(db=db, results=shuffled["root"] / "results", images=4, batch_size=3, device="cpu", num_workers=0)
    first = run_data_randomisation(run_id, shuffled["shuffled"], ["gae", "rollout"], **kw)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT * FROM sanity_checks").df()
        config = con.execute("SELECT config FROM runs WHERE run_id = ?", [first]).fetchone()[0]
    assert len(rows) == 4 * 2 and set(rows["mode"]) == {"data"} and set(rows["layer"]) == {"labels"}
    assert set(rows["step"]) == {0} and set(rows["run_id"]) == {run_id}
    assert shuffled["shuffled"] in config
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM sanity_checks WHERE method = 'gae'")
    again = run_data_randomisation(run_id, shuffled["shuffled"], ["gae", "rollout"], **kw)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT * FROM sanity_checks").df()
        table = sanity_verdicts(con, run_id, test="data", n_boot=100)
        model_test = sanity_verdicts(con, run_id, n_boot=100)
    assert len(rows) == 8 and set(rows.loc[rows["sanity_run_id"] == again, "method"]) == {"gae"}
    assert sorted(table["method"]) == ["gae", "rollout"] and table["flagged"].notna().all()
    assert table["verdict"].str.contains("against the model trained on shuffled labels").all()
    assert model_test["flagged"].isna().all()  # no model randomisation rows


def test_data_randomisation_refuses_unrelated_runs(shuffled, tiny_config, tmp_path):
    from jobs.sanity import run_data_randomisation
    from retcore.errors import RetcoreError

    with pytest.raises(RetcoreError, match="no finetune run 'nope'"):
        run_data_randomisation(shuffled["run_id"], "nope", ["gae"], db=shuffled["db"])


def test_study_flag_runs_the_data_test_and_reruns(tmp_path, tiny_config, capsys):
    from jobs.rerun import rerun
    from jobs.study import run_shortcut_study
    from retcore.demo import DemoConfig

    db = tmp_path / "results.duckdb"
    demo = DemoConfig(n_images=48, img_size=64, shortcut="glaucoma", seed=3, workers=1)
    base = tiny_config(epochs=1, warmup_epochs=0, guide="center", guide_form="input_gradient", guide_weight=1.0)
    study = run_shortcut_study(base, demo, seeds=[0], method="gae", data_dir=tmp_path / "demo", db=db,
                               results=tmp_path / "results", batch_size=16, shuffled_labels=True)
    out = capsys.readouterr().out
    assert "seed 0 sanity lrp:" in out and "data randomisation check" in out
    with duckdb.connect(str(db), read_only=True) as con:
        runs = con.execute("SELECT run_id, job, config, status FROM runs").df()
        rows = con.execute("SELECT * FROM sanity_checks").df()
    finetunes = runs[runs["job"] == "finetune"]
    assert len(finetunes) == 3 and finetunes["config"].str.contains("shuffled-s0").sum() == 1
    assert set(rows["mode"]) == {"data"} and len(set(rows["method"])) == 6
    config = runs.loc[runs["run_id"] == study, "config"].item()
    assert '"shuffled_labels": true' in config
    command = rerun("study", config)
    assert "--shuffled-labels" in command.command  # the tiny recipe's Python-only settings are the differences
    assert not [d for d in command.differences if "shuffled" in d]
