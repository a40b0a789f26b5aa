"""Executors: a connection, a plain callable and a callable with ``grids`` give the same answers."""
from __future__ import annotations

import numpy as np

from retcore.results import executor


class _Plain:
    """A callable executor without ``grids`` (the fallback path)."""

    def __init__(self, con):
        self.con = con
        self.calls = 0

    def __call__(self, sql, params=()):
        self.calls += 1
        return self.con.execute(sql, list(params)).df()


def test_connection_and_callable_agree(explained_con, tiny_explained):
    plain = _Plain(explained_con)
    sql = "SELECT image_id, label FROM predictions WHERE run_id = ? ORDER BY image_id"
    a = executor.frame(explained_con, sql, (tiny_explained["run_id"],))
    b = executor.frame(plain, sql, (tiny_explained["run_id"],))
    assert a.equals(b) and plain.calls == 1
    assert {"runs", "predictions", "explanations", "zone_scores"} <= executor.tables(explained_con)
    assert executor.tables(plain) == executor.tables(explained_con)
    assert {"run_id", "probs"} <= executor.columns(plain, "predictions")
    assert executor.columns(plain, "nope") == set()


def test_grids_keep_their_dtype_on_every_path(explained_con, tiny_explained):
    run = tiny_explained["run_id"]
    sql = "SELECT image_id, probs AS grid FROM predictions WHERE run_id = ? ORDER BY image_id"
    meta, probs = executor.grids(explained_con, sql, (run,))
    meta2, probs2 = executor.grids(_Plain(explained_con), sql, (run,))
    assert probs.dtype == np.float64 and probs.shape == (len(meta), probs.shape[1])
    assert meta.equals(meta2) and np.array_equal(probs, probs2)
    maps = executor.grids(explained_con, "SELECT grid FROM explanations WHERE run_id = ?", (run,))[1]
    assert maps.dtype == np.float32
    empty_meta, empty = executor.grids(explained_con, "SELECT image_id, grid FROM explanations WHERE false")
    assert empty.shape == (0, 0) and list(empty_meta.columns) == ["image_id"]
