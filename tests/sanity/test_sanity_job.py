"""``retcore sanity`` on the tiny pipeline: rows, resume without duplicates, a killed job, errors, the read layer."""
from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pytest

METHODS = ["gae", "rollout"]
STEPS = 6  # demo ViT, depth 4: head, blocks.3 .. blocks.0, patch_embed


def _q(db, sql, params=()):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def _copy(tiny_pipeline, tmp_path):
    db = tmp_path / "results.duckdb"
    shutil.copy(tiny_pipeline["db"], db)
    return db


def _run(db, run_id, **kw):
    from jobs.sanity import run_sanity

    options = dict(images=3, mode="both", batch_size=2, device="cpu", num_workers=0, results=db.parent / "results")
    options.update(kw)
    methods = options.pop("methods", METHODS)
    return run_sanity(run_id, methods, "test", db=db, **options)


@pytest.fixture(scope="module")
def checked(tiny_pipeline, tmp_path_factory):
    db = _copy(tiny_pipeline, tmp_path_factory.mktemp("sanity"))
    sanity_run = _run(db, tiny_pipeline["run_id"])
    return {"db": db, "run_id": tiny_pipeline["run_id"], "sanity_run": sanity_run}


def test_rows_for_every_method_mode_step_and_image(checked):
    db, run_id = checked["db"], checked["run_id"]
    rows = _q(db, "SELECT * FROM sanity_checks")
    assert len(rows) == 3 * len(METHODS) * 2 * STEPS
    assert set(rows["run_id"]) == {run_id} and set(rows["sanity_run_id"]) == {checked["sanity_run"]}
    assert set(rows["mode"]) == {"cascading", "independent"} and set(rows["seed"]) == {0}
    layers = rows[(rows["mode"] == "cascading")].drop_duplicates("step").sort_values("step")["layer"].tolist()
    assert layers == ["head", "blocks.3", "blocks.2", "blocks.1", "blocks.0", "patch_embed"]
    assert rows["spearman"].between(-1, 1).all() and rows["ssim"].between(-1, 1).all()
    # the images are the first three test images by id, explained for their stored prediction
    pred = _q(db, "SELECT p.image_id, list_position(d.classes, p.pred) - 1 AS target FROM predictions p "
                  "JOIN runs r ON r.run_id = p.run_id JOIN datasets d ON d.dataset_id = r.dataset_id "
                  "WHERE p.run_id = ? AND p.split = 'test' ORDER BY p.image_id LIMIT 3", [run_id])
    assert set(rows["image_id"]) == set(pred["image_id"])
    merged = rows.merge(pred, on="image_id", suffixes=("", "_pred"))
    assert (merged["target"] == merged["target_pred"]).all()
    # step 0 of both modes is the same model (only the head randomised)
    first = rows[rows["step"] == 0].pivot_table(index=["method", "image_id"], columns="mode", values="spearman")
    assert (first["cascading"] - first["independent"]).abs().max() < 1e-9
    runs = _q(db, "SELECT status, parent_run_id, config FROM runs WHERE job = 'sanity'")
    assert runs["status"].tolist() == ["succeeded"] and runs["parent_run_id"].tolist() == [run_id]


def test_rerun_computes_only_missing_rows_and_the_same_values(checked):
    db, run_id = checked["db"], checked["run_id"]
    with duckdb.connect(str(db)) as con:
        gone = con.execute("SELECT * FROM sanity_checks WHERE method = 'gae' AND step >= 3 AND mode = 'cascading'").df()
        con.execute("DELETE FROM sanity_checks WHERE method = 'gae' AND step >= 3 AND mode = 'cascading'")
    again = _run(db, run_id)
    rows = _q(db, "SELECT * FROM sanity_checks")
    assert len(rows) == 3 * len(METHODS) * 2 * STEPS
    assert not rows.duplicated(["method", "mode", "seed", "step", "image_id"]).any()
    redone = rows[rows["sanity_run_id"] == again]
    assert len(redone) == len(gone)  # nothing else was recomputed
    back = redone.merge(gone, on=["method", "mode", "step", "image_id"], suffixes=("", "_old"))
    assert len(back) == len(gone)
    assert (back["spearman"] - back["spearman_old"]).abs().max() < 1e-6  # seeded: the same randomised model
    assert (back["ssim"] - back["ssim_old"]).abs().max() < 1e-6
    assert _run(db, run_id) and len(_q(db, "SELECT * FROM sanity_checks")) == len(rows)  # complete: nothing to do


def test_a_killed_job_continues(tiny_pipeline, tmp_path, monkeypatch):
    import retcore.storage.writes as writes

    db = _copy(tiny_pipeline, tmp_path)
    real, calls = writes.write_sanity_checks, []

    def dying(path, frame):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(len(frame))
        real(path, frame)

    monkeypatch.setattr(writes, "write_sanity_checks", dying)
    with pytest.raises(KeyboardInterrupt):
        _run(db, tiny_pipeline["run_id"], methods=["rollout"], mode="cascading")
    assert len(_q(db, "SELECT * FROM sanity_checks")) == sum(calls) > 0
    assert _q(db, "SELECT status FROM runs WHERE job = 'sanity'")["status"].tolist() == ["interrupted"]
    monkeypatch.setattr(writes, "write_sanity_checks", real)
    _run(db, tiny_pipeline["run_id"], methods=["rollout"], mode="cascading")
    rows = _q(db, "SELECT * FROM sanity_checks")
    assert len(rows) == 3 * STEPS and not rows.duplicated(["method", "mode", "step", "image_id"]).any()


def test_errors_are_one_line(checked, tmp_path):
    from typer.testing import CliRunner

    from jobs.cli import app
    from jobs.sanity import run_sanity
    from retcore.errors import RetcoreError

    db, run_id = checked["db"], checked["run_id"]
    with pytest.raises(RetcoreError, match="no finetune run 'nope'"):
        run_sanity("nope", METHODS, db=db)
    with pytest.raises(RetcoreError, match=f"run {run_id} has no stored predictions on 'train'; run "
                                           f"`retcore predict --run {run_id} --split train` first"):
        run_sanity(run_id, METHODS, "train", db=db)
    with pytest.raises(RetcoreError, match="unknown explanation method 'nope': choose one of .*lrp_pixels"):
        run_sanity(run_id, ["gae", "nope"], db=db)
    with pytest.raises(RetcoreError, match="--mode 'random' must be one of cascading, independent, both"):
        run_sanity(run_id, METHODS, db=db, mode="random")
    result = CliRunner().invoke(app, ["sanity", "--run", run_id, "--methods", "nope", "--db", str(db)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: unknown explanation method 'nope'")


def test_read_layer_summary_and_verdicts(checked):
    from retcore.results.sanity import sanity_rows, sanity_seeds, sanity_summary, sanity_verdicts

    db, run_id = checked["db"], checked["run_id"]
    with duckdb.connect(str(db), read_only=True) as con:
        assert sanity_seeds(con, run_id) == [0]
        rows = sanity_rows(con, run_id, methods=["gae"], mode="independent")
        summary = sanity_summary(con, run_id, n_boot=100)
        table = sanity_verdicts(con, run_id, n_boot=100)

    def q(sql, params):  # a plain executor, as the dashboard passes
        return _q(db, sql, params)

    assert set(rows["method"]) == {"gae"} and set(rows["mode"]) == {"independent"} and len(rows) == 3 * STEPS
    assert len(summary) == len(METHODS) * 2 * STEPS and (summary["n_images"] == 3).all()
    pd.testing.assert_frame_equal(summary, sanity_summary(q, run_id, n_boot=100))
    assert sorted(table["method"]) == sorted(METHODS)
    assert table["flagged"].notna().all() and (table["layer"] == "patch_embed").all()
    assert sanity_rows(q, "no-such-run").empty and sanity_verdicts(q, "no-such-run").empty
    with duckdb.connect(":memory:") as con:  # a database older than the table
        assert sanity_seeds(con, run_id) == [] and sanity_summary(con, run_id).empty


def test_reading_the_table_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, retcore.results.sanity, retcore.sanity; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
