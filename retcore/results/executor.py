"""How :mod:`retcore.results` runs its SQL: an executor passed in by the caller.

Every read function takes an executor first. An executor is either

- any callable ``q(sql, params) -> pandas.DataFrame`` that runs parametrised, read-only
  SQL (the dashboard passes its cached ``dashboard.data.DB``), or
- an open ``duckdb.DuckDBPyConnection`` (jobs pass the connection they opened with
  ``retcore.storage.connect(path, read_only=True)``).

An executor may also offer ``grids(sql, params) -> (DataFrame, ndarray)`` for queries
selecting a list column ``grid`` (heatmap grids, class probabilities); connections use
:func:`fetch_grids` (Arrow, no per-row Python objects), other callables a slower
fallback that stacks the column's arrays.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Union

import duckdb
import numpy as np
import pandas as pd

__all__ = ["Executor", "Source", "columns", "fetch_grids", "frame", "grids", "tables"]


class Executor(Protocol):
    """A callable running parametrised SQL (``?`` placeholders) and returning a DataFrame."""

    def __call__(self, sql: str, params: Sequence[Any] = ..., /) -> pd.DataFrame: ...


#: What every read function accepts as its first argument.
Source = Union[Executor, duckdb.DuckDBPyConnection]


def frame(q: Source, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    """Run ``sql`` with ``params`` on ``q``; the result as a DataFrame."""
    if isinstance(q, duckdb.DuckDBPyConnection):
        return q.execute(sql, list(params)).df()
    return q(sql, tuple(params))


def fetch_grids(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()
                ) -> tuple[pd.DataFrame, np.ndarray]:
    """Run ``sql`` on ``con``: its list column ``grid`` (every row the same length) as an (n, width)
    array of the column's own dtype (float32 for FLOAT[], float64 for DOUBLE[]), the other
    columns as a DataFrame. An empty result gives a (0, 0) float32 array."""
    table = con.sql(sql, params=list(params)).to_arrow_table()
    cols = [c for c in table.column_names if c != "grid"]
    meta = table.select(cols).to_pandas()
    if table.num_rows == 0:
        return meta, np.zeros((0, 0), np.float32)
    values = table.column("grid").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return meta, values.reshape(table.num_rows, len(values) // table.num_rows)


def grids(q: Source, sql: str, params: Sequence[Any] = ()) -> tuple[pd.DataFrame, np.ndarray]:
    """Run ``sql`` selecting a list column ``grid``: (the other columns, grids (n, width)); see :func:`fetch_grids`."""
    if isinstance(q, duckdb.DuckDBPyConnection):
        return fetch_grids(q, sql, params)
    fast = getattr(q, "grids", None)
    if fast is not None:
        return fast(sql, tuple(params))
    out = frame(q, sql, params)
    meta = out.drop(columns="grid").reset_index(drop=True)
    if out.empty:
        return meta, np.zeros((0, 0), np.float32)
    return meta, np.stack([np.asarray(g) for g in out["grid"]])


def tables(q: Source) -> set[str]:
    """Names of the database's tables."""
    return set(frame(q, "SELECT table_name FROM information_schema.tables")["table_name"])


def columns(q: Source, table: str) -> set[str]:
    """Column names of ``table`` (empty when it does not exist)."""
    return set(frame(q, "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                     (table,))["column_name"])
