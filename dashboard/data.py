"""Cached, read-only queries for the dashboard.

Every query opens a read-only connection and closes it at once, so the
dashboard never blocks a job. The cache key includes the database file's
modification time, so cached results refresh when a job writes.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from retcore.errors import DatabaseError
from retcore.storage import connect, resolve_db_path

__all__ = ["DatabaseBusy", "db_path", "db_stamp", "query"]


class DatabaseBusy(Exception):
    """A job holds the write lock right now; show a note and retry."""


def db_path() -> Path:
    """The database the dashboard reads (``$RETCORE_DB`` or ./results.duckdb)."""
    return resolve_db_path(os.environ.get("RETCORE_DB"))


def db_stamp(path: Path) -> float:
    """Last-modified time of the database and its WAL (0 when missing)."""
    stamps = [p.stat().st_mtime for p in (path, path.with_name(path.name + ".wal")) if p.exists()]
    return max(stamps, default=0.0)


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_query(path: str, stamp: float, sql: str, params: tuple[Any, ...]) -> pd.DataFrame:
    del stamp  # part of the cache key only
    for attempt in range(6):
        try:
            with connect(path, read_only=True, timeout_s=0.5) as con:
                return con.execute(sql, list(params)).df()
        except DatabaseError as exc:
            if "locked" not in str(exc) or attempt == 5:
                raise
            time.sleep(0.25 * (attempt + 1))
    raise AssertionError("unreachable")


def query(sql: str, params: tuple[Any, ...] = ()) -> pd.DataFrame:
    """Run parametrised ``sql`` read-only; cached until the database changes.

    Raises :class:`DatabaseBusy` while a job holds the lock for more than ~5 s.
    """
    path = db_path()
    try:
        return _cached_query(str(path), db_stamp(path), sql, tuple(params))
    except DatabaseError as exc:
        if "locked" in str(exc):
            raise DatabaseBusy(str(exc)) from exc
        raise


def has_schema() -> bool:
    """True when the database exists and holds retcore's tables."""
    path = db_path()
    if not path.exists():
        return False
    tables = query("SELECT table_name FROM information_schema.tables")
    return {"runs", "predictions", "metrics"} <= set(tables["table_name"])
