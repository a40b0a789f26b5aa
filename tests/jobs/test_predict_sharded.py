"""Sharded predict under torchrun (2 gloo processes): the rows of a single-process run, Parquet shards,
one merge; a lost shard is named by `retcore merge` and redone, alone, by the same command."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]


def _predictions(db: Path, run: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT image_id, label, pred, probs FROM predictions WHERE run_id = ? AND split = 'test' "
                           "ORDER BY image_id", [run]).fetchall()


def _torchrun_predict(db: Path, run: str, cwd: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "jobs.cli", "predict", "--run", run, "--split", "test", "--db", str(db),
           "--device", "cpu", "--num-workers", "0", "--batch-size", "4", "--nproc", "2"]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def sharded(tiny_pipeline, tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    db = root / "results.duckdb"
    shutil.copy(tiny_pipeline["db"], db)
    with duckdb.connect(str(db)) as con:  # start from no test predictions
        con.execute("DELETE FROM predictions WHERE split = 'test'")
    _torchrun_predict(db, tiny_pipeline["run_id"], root)
    return {"db": db, "root": root, "run": tiny_pipeline["run_id"]}


def test_two_ranks_give_the_single_process_rows(sharded, tiny_pipeline):
    one = _predictions(tiny_pipeline["db"], tiny_pipeline["run_id"])
    two = _predictions(sharded["db"], sharded["run"])
    assert [r[:3] for r in one] == [r[:3] for r in two] and len(one) > 4
    np.testing.assert_allclose(np.array([r[3] for r in two]), np.array([r[3] for r in one]), rtol=1e-5, atol=1e-6)
    with duckdb.connect(str(sharded["db"]), read_only=True) as con:
        runs = con.execute("SELECT job, status, config FROM runs WHERE job = 'predict' ORDER BY started_at").fetchall()
        metrics = con.execute("SELECT count(*) FROM metrics WHERE run_id = ? AND split = 'test'",
                              [sharded["run"]]).fetchone()[0]
    assert runs[-1][1] == "succeeded" and json.loads(runs[-1][2])["world_size"] == 2
    assert metrics > 0
    shards = sorted((tiny_pipeline["root"] / "results" / "shards" / sharded["run"] / "predict-test").glob("*.parquet"))
    assert [s.name.split("-rank")[1] for s in shards][-2:] == ["0.parquet", "1.parquet"]


def test_a_lost_shard_is_named_and_redone_alone(sharded, tiny_pipeline):
    from jobs.cli import app

    folder = tiny_pipeline["root"] / "results" / "shards" / sharded["run"] / "predict-test"
    saved = sharded["root"] / "saved"
    shutil.copytree(folder, saved)
    lost = sorted(folder.glob("*-rank1.parquet"))[-1]
    lost.unlink()
    runner = CliRunner()
    out = runner.invoke(app, ["merge", "--run", sharded["run"], "--db", str(sharded["db"])])
    assert out.exit_code == 2 and "have no prediction shard" in out.stderr and "rerun the same" in out.stderr
    before = _predictions(sharded["db"], sharded["run"])  # the failed merge changed nothing
    _torchrun_predict(sharded["db"], sharded["run"], sharded["root"])
    import pandas as pd

    newest = max(folder.glob("*.parquet"), key=lambda f: f.stat().st_mtime_ns)
    redone = pd.read_parquet(newest)
    assert 0 < len(redone) < len(before)  # only the lost share was predicted again
    after = _predictions(sharded["db"], sharded["run"])
    assert [r[:3] for r in after] == [r[:3] for r in before] and len({r[0] for r in after}) == len(after)
    # --from other folders, twice: the same rows, written once
    for _ in range(2):
        ok = runner.invoke(app, ["merge", "--run", sharded["run"], "--db", str(sharded["db"]), "--from", str(saved)])
        assert ok.exit_code == 0, ok.output
    assert [r[:3] for r in _predictions(sharded["db"], sharded["run"])] == [r[:3] for r in before]
