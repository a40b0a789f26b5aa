"""Sharded explain under torchrun (2 gloo processes): the rows of a single-process run (explanations,
zone scores, landmarks, quality, heatmap files), per-batch Parquet shards, one merge; a lost shard is
named by `retcore merge --stage explain` and redone, alone, by the same command."""
from __future__ import annotations

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
METHODS = "lrp,gae"


def _rows(db: Path, sql: str, run: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, [run]).fetchall()


def _explanations(db: Path, run: str) -> list[tuple]:
    return _rows(db, "SELECT image_id, method, target, target_kind, grid, heatmap_path, heatmap_sha256, entropy "
                     "FROM explanations WHERE run_id = ? ORDER BY image_id, method", run)


def _zones(db: Path, run: str) -> list[tuple]:
    return _rows(db, "SELECT image_id, method, target, zone_set, zone, score FROM zone_scores WHERE run_id = ? "
                     "ORDER BY ALL", run)


def _analysis(db: Path, _run: str) -> tuple[list[tuple], list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as con:
        marks = con.execute("SELECT image_id, disc_x, disc_y, fov_r, quality_grade FROM landmarks ORDER BY 1").fetchall()
        quality = con.execute("SELECT image_id, metric, value FROM image_quality ORDER BY 1, 2").fetchall()
    return marks, quality


def _explain(db: Path, run: str, cwd: Path, results: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "jobs.cli", "explain", "--run", run, "--split", "test", "--db", str(db),
           "--methods", METHODS, "--device", "cpu", "--num-workers", "0", "--batch-size", "4",
           "--faithfulness-images", "0", "--results", str(results), "--nproc", str(nproc)]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def explained(tiny_pipeline, tiny_explained, tmp_path_factory):
    """The same run explained by one process (``tiny_explained``: lrp and gae, batch 8, results under its
    ``results/``) and by two ranks (batch 4 each) into a copy of the unexplained database."""
    root = tmp_path_factory.mktemp("explain-sharded")
    two = root / "two.duckdb"
    shutil.copy(tiny_pipeline["db"], two)
    run = tiny_pipeline["run_id"]
    assert ",".join(tiny_explained["methods"]) == METHODS
    _explain(two, run, root, root / "two")
    return {"one": tiny_explained["db"], "one_results": tiny_explained["root"] / "results", "two": two,
            "root": root, "run": run}


def test_two_ranks_give_the_single_process_rows(explained):
    run = explained["run"]
    one, two = _explanations(explained["one"], run), _explanations(explained["two"], run)
    assert len(one) == len(two) > 8
    assert [r[:4] for r in one] == [r[:4] for r in two]
    # the same heatmap files, each under its run's --results folder
    paths_one = [Path(r[5]).relative_to(explained["one_results"]) for r in one]
    assert paths_one == [Path(r[5]).relative_to(explained["root"] / "two") for r in two]
    grids_one, grids_two = np.array([r[4] for r in one]), np.array([r[4] for r in two])
    np.testing.assert_allclose(grids_two, grids_one, rtol=1e-3, atol=1e-4 * float(np.abs(grids_one).max()))
    for rel in paths_one:
        a = np.load(explained["one_results"] / rel)
        b = np.load(explained["root"] / "two" / rel)
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3 * float(np.abs(a).max()))  # batch 8 vs 4: float32 order
    z1, z2 = _zones(explained["one"], run), _zones(explained["two"], run)
    assert [r[:5] for r in z1] == [r[:5] for r in z2] and len(z1) > 0
    def scores(rows):
        return np.array([np.nan if r[5] is None else r[5] for r in rows], dtype=float)

    np.testing.assert_allclose(scores(z2), scores(z1), rtol=1e-3, atol=2e-3)  # zone score ~1; maps agree to ~0.2%
    assert _analysis(explained["one"], run) == _analysis(explained["two"], run)
    runs = _rows(explained["two"], "SELECT status, config->>'world_size' FROM runs WHERE job = 'explain' "
                                   "AND parent_run_id = ?", run)
    assert runs == [("succeeded", "2")]
    shards = explained["root"] / "two" / "shards" / run / "explain-test" / "explanations"
    assert {p.name.split("-rank")[1][0] for p in shards.glob("*.parquet")} == {"0", "1"}


def test_a_lost_shard_is_named_and_redone_alone(explained):
    from jobs.cli import app

    run, db, root = explained["run"], explained["two"], explained["root"]
    folder = root / "two" / "shards" / run / "explain-test"
    before = _explanations(db, run)
    lost = sorted((folder / "explanations").glob("*-rank1-*.parquet"))[0]
    lost_ids = set(__import__("pandas").read_parquet(lost)["image_id"])
    for table in ("explanations", "zone_scores", "localisation", "landmarks", "image_quality"):
        (folder / table / lost.name).unlink(missing_ok=True)
    with duckdb.connect(str(db)) as con:  # as if the merge never happened
        con.execute("DELETE FROM explanations WHERE run_id = ?", [run])
        con.execute("DELETE FROM zone_scores WHERE run_id = ?", [run])
    runner = CliRunner()
    out = runner.invoke(app, ["merge", "--stage", "explain", "--run", run, "--db", str(db),
                              "--results", str(root / "two")])
    assert out.exit_code == 2 and "have no explanation shard" in out.stderr and "rerun the same" in out.stderr
    assert _explanations(db, run) == []  # the failed merge wrote nothing
    proc = _explain(db, run, root, root / "two")
    assert f"explain test: {len(lost_ids)} of" in proc.stdout  # only the lost share was explained again
    after = _explanations(db, run)
    assert [r[:4] for r in after] == [r[:4] for r in before]
    # merging the same shards again, twice: the same rows, written once
    for _ in range(2):
        ok = runner.invoke(app, ["merge", "--stage", "explain", "--run", run, "--db", str(db),
                                 "--from", str(folder)])
        assert ok.exit_code == 0, ok.output
    again = _explanations(db, run)
    assert [r[:4] for r in again] == [r[:4] for r in before] and len({r[:3] for r in again}) == len(again)
