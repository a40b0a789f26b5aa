import json

import duckdb
import pytest

from retcore.storage import connect
from retcore.storage.runs import mark_stale_runs, record_run


def _runs(db):
    with connect(db, read_only=True) as con:
        return con.execute("SELECT run_id, status, progress, error, config, finished_at FROM runs").fetchall()


def test_successful_run_is_marked_succeeded_with_config(tmp_path):
    db = tmp_path / "r.duckdb"
    with record_run(db, "finetune", config={"epochs": 3}, seed=7, model="demo") as rec:
        rec.progress(0.5, "half", force=True)
        with connect(db, read_only=True) as con:
            status, progress, note = con.execute(
                "SELECT status, progress, progress_note FROM runs").fetchone()
        assert (status, progress, note) == ("running", 0.5, "half")
        rec.update(checkpoint="/x.pth")
    (run_id, status, progress, error, config, finished), = _runs(db)
    assert run_id.startswith("finetune-") and status == "succeeded" and progress == 1.0 and error is None
    assert json.loads(config) == {"epochs": 3} and finished is not None


def test_failing_run_is_marked_failed_with_one_line_error(tmp_path):
    db = tmp_path / "r.duckdb"
    with pytest.raises(ValueError):
        with record_run(db, "predict", config={}):
            raise ValueError("bad thing\nsecond line")
    (_, status, _, error, _, _), = _runs(db)
    assert status == "failed" and error == "ValueError: bad thing"


def test_stale_running_runs_become_interrupted_with_a_resume_hint(tmp_path):
    db = tmp_path / "r.duckdb"
    with record_run(db, "finetune", config={}, run_id="killed", command="retcore finetune --data x --db r.duckdb"):
        pass
    with connect(db) as con:  # simulate a process killed mid-run an hour ago
        con.execute("UPDATE runs SET status = 'running', heartbeat_at = heartbeat_at - INTERVAL 1 HOUR")
    assert mark_stale_runs(db) == 1
    (_, status, _, error, _, finished), = _runs(db)
    assert status == "interrupted" and error.startswith("interrupted: no heartbeat since ")
    assert "retcore finetune --resume killed --db r.duckdb" in error
    assert finished is not None
    assert mark_stale_runs(db) == 0
    assert duckdb
