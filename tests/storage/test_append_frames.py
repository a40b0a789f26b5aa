"""Bulk appends of prepared rows (the synthetic benchmark databases)."""
from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from retcore.storage.runs import open_db
from retcore.storage.writes import append_frames


def test_appends_frames_and_arrow_tables_by_name(tmp_path):
    db = tmp_path / "r.duckdb"
    open_db(db)

    def frames():
        yield "datasets", pd.DataFrame({"kind": ["folders"], "dataset_id": ["d"], "root": ["/x"],
                                        "classes": [["a", "b"]], "n_images": [2]})
        for k in range(2):  # a generator: one chunk at a time
            yield "metrics", pa.table({"run_id": ["r"], "split": ["test"], "metric": [f"m{k}"],
                                       "class_name": [""], "value": [float(k)]})

    append_frames(db, frames())
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT dataset_id, root, kind, classes, n_images FROM datasets").fetchall() == \
            [("d", "/x", "folders", ["a", "b"], 2)]
        assert con.execute("SELECT metric, value FROM metrics ORDER BY metric").fetchall() == [("m0", 0.0), ("m1", 1.0)]


def test_unknown_table_is_refused(tmp_path):
    db = tmp_path / "r.duckdb"
    open_db(db)
    with pytest.raises(ValueError, match="no table 'nope'"):
        append_frames(db, [("nope", pd.DataFrame({"a": [1]}))])
