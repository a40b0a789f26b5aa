"""Fixtures for the results layer: read-only connections to the tiny databases, and editable copies."""
from __future__ import annotations

import shutil

import duckdb
import pytest


@pytest.fixture
def explained_con(tiny_explained):
    """A read-only connection to ``tiny_explained`` (predictions, two methods explained on test)."""
    con = duckdb.connect(str(tiny_explained["db"]), read_only=True)
    yield con
    con.close()


@pytest.fixture
def plain_con(tiny_pipeline):
    """A read-only connection to ``tiny_pipeline`` (predictions only)."""
    con = duckdb.connect(str(tiny_pipeline["db"]), read_only=True)
    yield con
    con.close()


@pytest.fixture
def explained_copy(tiny_explained, tmp_path):
    """``copy()``: a writable copy of the ``tiny_explained`` database, returned as its path."""
    def copy():
        db = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}.duckdb"
        shutil.copy(tiny_explained["db"], db)
        return db

    return copy


@pytest.fixture
def run_info(tiny_explained):
    """(run id, classes) of the tiny runs."""
    con = duckdb.connect(str(tiny_explained["db"]), read_only=True)
    from retcore.results.runs import run_classes

    classes = run_classes(con, tiny_explained["run_id"])
    con.close()
    return tiny_explained["run_id"], classes
