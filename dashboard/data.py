"""Cached, read-only queries for the dashboard.

Every query opens a read-only connection and closes it at once, so the
dashboard never blocks a job for long. Inside :func:`held` (``app.py`` wraps each page
run in it) the first query that reaches the database also keeps one read-only
connection open until the page is drawn: DuckDB then shares that open database with
the page's other queries, which skip the cost of opening a large file (about 60 ms at
a million images) and find its blocks cached. A job that wants to write meanwhile waits
for the page (jobs retry for 30 s). The cache key includes the database file's
modification time, so cached results refresh when a job writes. The SQL itself
lives in :mod:`retcore.results`; :data:`DB` is the executor the dashboard passes to it.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from retcore.errors import DatabaseError
from retcore.results.executor import fetch_grids, frame
from retcore.results.executor import tables as list_tables
from retcore.storage import connect, resolve_db_path

__all__ = ["DB", "DatabaseBusy", "db_path", "db_stamp", "grids", "has_schema", "held", "is_busy", "query", "tables"]

_RETRIES = 5  # about 2.5 s of retrying before the page says a job is writing


class DatabaseBusy(Exception):
    """A job holds the write lock right now; show a note and retry."""


def db_path() -> Path:
    """The database the dashboard reads (``$RETCORE_DB`` or ./results.duckdb)."""
    return resolve_db_path(os.environ.get("RETCORE_DB"))


def db_stamp(path: Path) -> float:
    """Last-modified time of the database and its WAL (0 when missing)."""
    stamps = []
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            stamps.append(p.stat().st_mtime_ns / 1e9)
        except OSError:
            continue
    return max(stamps, default=0.0)


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "being written" in text


_HOLD = threading.local()  # per script run (one thread each): the ExitStack of the held connection


@contextmanager
def held() -> Iterator[None]:
    """Within the block, the first database read of this thread keeps a read-only connection open
    until the block ends, so the block's queries share one open database (see the module docstring)."""
    if getattr(_HOLD, "stack", None) is not None:  # nested: the outer block holds
        yield
        return
    _HOLD.stack, _HOLD.paths = ExitStack(), set()
    try:
        yield
    finally:
        stack, _HOLD.stack = _HOLD.stack, None
        stack.close()


def _hold(path: str) -> None:
    """Inside :func:`held`: open the connection kept for the rest of the block (once per file)."""
    stack = getattr(_HOLD, "stack", None)
    if stack is None or path in _HOLD.paths:
        return
    _HOLD.paths.add(path)
    try:
        stack.enter_context(connect(path, read_only=True, timeout_s=0.0))
    except (DatabaseError, duckdb.Error):  # a job is writing: each query retries on its own
        pass


def _read(path: str, sql: str, params: tuple[Any, ...], fetch) -> Any:
    """Open read-only, ``fetch(con, sql, params)``, close; retry while locked."""
    _hold(path)
    for attempt in range(_RETRIES):
        try:
            with connect(path, read_only=True, timeout_s=0.3) as con:
                return fetch(con, sql, list(params))
        except DatabaseError as exc:
            if not _is_busy(exc) or attempt == _RETRIES - 1:
                raise
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            # a writer checkpointing under us: treat like the lock, retry
            if attempt == _RETRIES - 1:
                raise DatabaseBusy(str(exc).splitlines()[0]) from exc
        time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


@st.cache_data(show_spinner=False, max_entries=512)
def _cached_query(path: str, stamp: float, sql: str, params: tuple[Any, ...]) -> pd.DataFrame:
    del stamp  # part of the cache key only
    return _read(path, sql, params, frame)


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_grids(path: str, stamp: float, sql: str, params: tuple[Any, ...]) -> tuple[pd.DataFrame, np.ndarray]:
    del stamp
    return _read(path, sql, params, fetch_grids)


def _guard(fn, *args):
    try:
        return fn(*args)
    except DatabaseError as exc:
        if _is_busy(exc):
            raise DatabaseBusy(str(exc)) from exc
        raise


def query(sql: str, params: tuple[Any, ...] | list[Any] = ()) -> pd.DataFrame:
    """Run parametrised ``sql`` read-only; cached until the database changes.

    Raises :class:`DatabaseBusy` while a job holds the lock for more than ~2.5 s.
    """
    path = db_path()
    return _guard(_cached_query, str(path), db_stamp(path), sql, tuple(params))


def grids(sql: str, params: tuple[Any, ...] | list[Any] = ()) -> tuple[pd.DataFrame, np.ndarray]:
    """Run ``sql`` selecting a list column ``grid`` (all rows the same length) and other columns.

    Returns:
        (the other columns as a DataFrame, the grids as an (n, width) array of the column's dtype);
        see ``retcore.results.executor.fetch_grids``.
    """
    path = db_path()
    return _guard(_cached_grids, str(path), db_stamp(path), sql, tuple(params))


class _Executor:
    """The dashboard's executor for :mod:`retcore.results`: cached, read-only :func:`query` and :func:`grids`."""

    def __call__(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> pd.DataFrame:
        return query(sql, params)

    def grids(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> tuple[pd.DataFrame, np.ndarray]:
        return grids(sql, params)


#: Pass to every ``retcore.results`` function: ``runs.trained_runs(DB)``.
DB = _Executor()


def tables() -> set[str]:
    """Names of the tables in the database (empty when it does not exist)."""
    if not db_path().exists():
        return set()
    return list_tables(DB)


def is_busy() -> bool:
    """One quick try: True while another process (a job) holds the database's write lock."""
    try:
        with connect(db_path(), read_only=True, timeout_s=0.0):
            return False
    except DatabaseError as exc:
        return _is_busy(exc)


def has_schema() -> bool:
    """True when the database exists and holds retcore's tables."""
    return {"runs", "predictions", "metrics"} <= tables()
